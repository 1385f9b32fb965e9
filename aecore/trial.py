"""One training from plain data to plain data: `run_trial(config)` builds the model,
trains it with aecore.trainer, scores it with aecore.evaluation and returns the checkpoint
as bytes with its metrics. Nothing here writes a file or knows where it runs, so the same
function serves `aecore train` (cli.py), a sweep's Ray task (aecore.sweep) and any other
back end that ships a config to a worker and gets bytes back.

    config = {"model": "simple", "options": {"code_size": 32},
              "train": {"epochs": 1, "train_size": 512}}      # TrainConfig's settings
"""
from __future__ import annotations

import datetime
import platform
import threading
import time
from dataclasses import dataclass
from typing import Callable

import torch

from . import __version__
from .checkpoint import checkpoint_bytes
from .data import load_mnist
from .evaluation import ALL_METRICS, IMAGE_METRICS, evaluate
from .fastimport import eager_optimizers
from .models import Autoencoder, create_model, is_autoencoder, training_error
from .shipped import make_example
from .trainer import ConfigError, Progress, TrainConfig, TrainResult, train


@dataclass
class Fitted:
    model: Autoencoder
    result: TrainResult
    metrics: dict           # on the test images, corrupted as in training (what a checkpoint records)
    seconds: float
    test_images: torch.Tensor


def build_model(name: str, options: dict, seed: int) -> Autoencoder:
    torch.manual_seed(seed)   # the initial weights
    return create_model(name, **options)


def fit(model: Autoencoder, tc: TrainConfig, callback: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None, resume: dict | None = None,
        snapshot: Callable[[dict], None] | None = None) -> Fitted:
    """Train `model` on MNIST as `tc` says and score it with THE evaluator (`resume`,
    `snapshot`: aecore.trainer.train's, for a run continued after an interruption)."""
    if error := training_error(getattr(model, "name", None), tc.noise):
        raise ConfigError(error)
    eager_optimizers()   # no torch._dynamo import for an eager training (aecore.fastimport)
    train_x, _ = load_mnist("train", as_uint8=True)   # the trainer converts each batch
    test_x, _ = load_mnist("test")
    started = time.time()
    result = train(model, train_x, test_x, tc, callback=callback, stop=stop, final_metrics=ALL_METRICS,
                   resume=resume, snapshot=snapshot)
    # a run stopped early has no final pass: measure what it left
    metrics = result.final or evaluate(model, test_x[: tc.test_size], noise=tc.noise, level=tc.noise_level,
                                       metrics=ALL_METRICS)
    # a continued run's seconds include the epochs its earlier processes trained
    return Fitted(model, result, metrics, time.time() - started + (resume["elapsed_s"] if resume else 0.0), test_x)


def training_record(command: str, fitted: Fitted) -> dict:
    """What a checkpoint records about how it was trained (global options such as --threads
    do not change the result and are left out of `command`)."""
    r = fitted.result
    return {"command": command, "config": r.config, "precision": r.precision, "seconds": round(fitted.seconds, 1),
            "stopped": r.stopped, "torch": str(torch.__version__), "aecore": __version__,
            "threads": torch.get_num_threads(), "date": datetime.date.today().isoformat()}


def run_trial(config: dict, command: str = "", progress: Callable[[Progress], None] | None = None,
              stop: threading.Event | None = None) -> dict:
    """Train and score one config (module docstring). Returns plain data:

    checkpoint (bytes, aecore.checkpoint's format), metrics (as the checkpoint records them:
    on inputs corrupted as in training), clean (mse/psnr/ssim on clean inputs), denoise_psnr
    (None without noise), example (the manifest's picture), seconds, stopped, node (host name);
    with config["rate_bits"], bytes_per_digit and rate_psnr: the test digits compressed with
    aecore.compress at that many bits per code number, and the PSNR of what decodes.
    Raises what the trainer and the model raise (ConfigError, ValueError, TrainingDiverged)."""
    tc = TrainConfig(**config.get("train", {})).validate()
    model = build_model(config["model"], dict(config.get("options", {})), tc.seed)
    fitted = fit(model, tc, progress, stop)
    images = fitted.test_images[: tc.test_size]
    clean = (evaluate(model, images, metrics=IMAGE_METRICS) if tc.noise
             else {k: fitted.metrics[k] for k in IMAGE_METRICS})
    return {"checkpoint": checkpoint_bytes(model, metrics=fitted.metrics, history=fitted.result.history,
                                           training=training_record(command, fitted)),
            "metrics": fitted.metrics, "clean": {k: clean[k] for k in IMAGE_METRICS},
            "denoise_psnr": fitted.metrics["psnr"] if tc.noise else None,
            "example": make_example(model, fitted.test_images), "seconds": round(fitted.seconds, 2),
            "stopped": fitted.result.stopped, "node": platform.node(),
            # a model that is not an autoencoder has no code to compress with (a U-Net)
            **(rate_point(model, images, config["rate_bits"]) if config.get("rate_bits") and is_autoencoder(model)
               else {})}


def rate_point(model: Autoencoder, images: torch.Tensor, bits: int) -> dict:
    """Bytes per digit of `images` compressed by `model` (one file, header included) and the
    PSNR of the digits decoded from it."""
    from . import compress
    size = len(compress.compress_images(model, images, bits)) / len(images)
    roundtrip = lambda x: compress.decompress_bytes(compress.compress_images(model, x, bits), model)
    psnr = evaluate(roundtrip, images, metrics=("psnr",), batch_size=len(images))["psnr"]
    return {"bytes_per_digit": size, "rate_psnr": psnr}
