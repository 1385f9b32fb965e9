"""The training loop. It knows nothing about a UI: it reports `Progress` through a
callback, checks a stop event between batches, and returns the history."""
from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import torch

from . import evaluation
from .fastimport import eager_optimizers
from .models import Autoencoder, recommended_lr
from .noise import TRAINING_NOISES, add_noise
from .precision import PRECISIONS, autocast, is_convolutional, resolve_precision

LIMITS = {  # allowed ranges, also used by the CLI and the app to validate input
    "epochs": (1, 1000), "batch_size": (1, 4096), "lr": (1e-6, 1.0),
    "weight_decay": (0.0, 1.0), "noise_level": (0.0, 1.0), "warmup": (0, 100_000),
}
INTEGERS = ("epochs", "batch_size", "warmup")
WEIGHTS_DTYPES = ("float32", "float16")


class ConfigError(ValueError):
    """A training setting is out of range."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model holds the weights of the last good epoch."""


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 128
    lr: float | None = None      # Adam; None: the model's recommended rate (registry)
    warmup: int = 50             # steps of linear warm-up (at most a tenth of the run), then cosine decay to 0
    init_bias: bool = True       # a fresh model's decoder output bias starts at the logit of the mean pixel
    weight_decay: float = 0.0
    seed: int = 0                # shuffling, noise and sampling
    noise: str | None = None     # denoising objective: None or one of TRAINING_NOISES ("blind": all kinds)
    noise_level: float = 0.0
    train_size: int | None = None  # use the first N training images
    test_size: int | None = None   # evaluate on the first N test images
    loss: str = "bce"            # "bce" or "mse" (the VAE always uses its ELBO)
    device: str = "auto"         # "auto" = CUDA when present, else CPU
    precision: str = "auto"      # "auto", "fp32" or "bf16" autocast (aecore.precision)
    channels_last: bool = True   # convolutional models train in the channels-last memory layout
    weights_dtype: str = "float32"  # what a checkpoint stores: "float16" rounds the trained weights (half the file)

    def validate(self) -> "TrainConfig":
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            if name == "lr" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi \
                    or (name in INTEGERS and not isinstance(value, int)):
                kind = "an integer" if name in INTEGERS else "a number"
                raise ConfigError(f"{name} must be {kind} from {lo:g} to {hi:g}, got {value!r}")
        if self.noise not in (None, *TRAINING_NOISES):
            raise ConfigError(f"noise must be one of {', '.join(TRAINING_NOISES)} (or none), got {self.noise!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.weights_dtype not in WEIGHTS_DTYPES:
            raise ConfigError(f"weights_dtype must be one of {', '.join(WEIGHTS_DTYPES)}, got {self.weights_dtype!r}")
        if self.loss not in ("bce", "mse"):
            raise ConfigError(f"loss must be 'bce' or 'mse', got {self.loss!r}")
        for name in ("train_size", "test_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        return self


@dataclass(kw_only=True)
class Progress:
    event: str                  # "batch" or "epoch"
    epoch: int                  # 1-based
    epochs: int
    batch: int                  # batches done in this epoch
    batches: int                # batches per epoch
    loss: float                 # batch loss ("batch") or epoch mean ("epoch")
    images_per_s: float
    elapsed_s: float
    eta_s: float
    test_loss: float | None = None
    test_mse: float | None = None

    @property
    def fraction(self) -> float:
        return ((self.epoch - 1) * self.batches + self.batch) / (self.epochs * self.batches)


@dataclass
class TrainResult:
    history: dict = field(default_factory=lambda: {k: [] for k in (
        "epoch", "train_loss", "test_loss", "test_mse", "images_per_s", "seconds")})
    stopped: bool = False
    config: dict = field(default_factory=dict)
    precision: str = "fp32"      # what the run used ("auto" resolved)
    note: str | None = None      # e.g. why bf16 fell back to fp32
    final: dict | None = None    # the last epoch's test pass with `final_metrics` (None if it did not run)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor at `step` of `total`: linear warm-up over `warmup` steps (at most
    a tenth of the run; early large Adam steps kill ReLU units), then cosine decay to 0."""
    warmup = min(warmup, total // 10)
    return min(1.0, (step + 1) / (warmup + 1)) * 0.5 * (1 + math.cos(math.pi * step / total))


def as_unit(images: torch.Tensor) -> torch.Tensor:
    """Images as floats in [0, 1]: uint8 ones (0-255, as MNIST is stored) divided by 255."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


@torch.no_grad()
def init_output_bias(model: Autoencoder, images: torch.Tensor) -> bool:
    """Set the bias of the decoder's last layer to the logit of the mean training pixel
    (per pixel for a 784-unit layer, one value for a one-channel convolution), so training
    starts at the mean image instead of grey and spends no steps getting there. False when
    the decoder ends in no such layer."""
    layers = [m for m in model.decoder.modules()
              if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.bias is not None]
    if not layers:
        return False
    bias, mean = layers[-1].bias, as_unit(images).float().mean(0).reshape(-1)
    if bias.numel() == 1:
        mean = mean.mean().reshape(1)
    elif bias.numel() != mean.numel():
        return False
    p = mean.clamp(1e-3, 1 - 1e-3)
    bias.copy_(torch.log(p / (1 - p)).to(bias))
    return True


def corrupt(x: torch.Tensor, config: TrainConfig, g: torch.Generator) -> torch.Tensor:
    return add_noise(x, config.noise, config.noise_level, g) if config.noise else x


def evaluate(model: Autoencoder, images: torch.Tensor, config: TrainConfig,
             batch_size: int = 1000, extra: tuple[str, ...] = ()) -> tuple[float, float, dict]:
    """(mean objective, per-pixel MSE of the reconstruction, everything measured) on
    `images`, with `extra` metrics besides; noisy inputs are drawn from evaluate's fixed
    seed, so the figure is comparable across epochs and with `aecore evaluate`'s."""
    r = evaluation.evaluate(model, images, noise=config.noise, level=config.noise_level,
                            metrics=("loss", "mse", *(m for m in extra if m != "mse")),
                            objective=config.loss, batch_size=batch_size)
    return r["loss"], r["mse"], r


def resolved(config: TrainConfig, model: Autoencoder) -> TrainConfig:
    """`config` with its learning rate filled in (None: the architecture's recommended rate)."""
    return config if config.lr is not None else replace(config, lr=recommended_lr(getattr(model, "name", None)))


def train(model: Autoencoder, train_images: torch.Tensor, test_images: torch.Tensor | None,
          config: TrainConfig, callback: Callable[[Progress], None] | None = None,
          stop: threading.Event | None = None, final_metrics: tuple[str, ...] = (),
          resume: dict | None = None, snapshot: Callable[[dict], None] | None = None) -> TrainResult:
    """Train `model` in place on images (N,1,28,28) in [0,1], clean targets (training images
    may also be uint8, 0-255: each batch is converted, as load_mnist(as_uint8=True) gives them).

    The last epoch's test pass also measures `final_metrics` (aecore.evaluation's names)
    on the finished weights (rounded to `weights_dtype`) into `result.final`: one pass over
    the test set gives both the chart's last point and the checkpoint's figures.

    After every epoch but the last, `snapshot` (if given) receives the whole state of the run
    (aecore.resume saves it); `resume`, such a state, continues that run after its epoch, with
    the same steps and numbers as a run never interrupted (aecore.resume.mismatch checks it
    belongs to this model and config first).

    Stops early (keeping the weights so far, `stopped=True`) when `stop` is set; raises
    TrainingDiverged on a non-finite loss after restoring the last good epoch. However it
    ends, the model is left in eval mode on the CPU in the default memory layout."""
    config.validate()
    device = pick_device(config.device)
    precision, note = resolve_precision(config.precision, device, model=model)
    channels_last = config.channels_last and is_convolutional(model)
    flushing = torch.set_flush_denormal(True)  # near-zero activations are common here and slow on CPU
    try:
        model.to(device).train()
        if channels_last:
            model.to(memory_format=torch.channels_last)
        return _train(model, train_images, test_images, config, callback, stop, device,
                      TrainResult(precision=precision, note=note), channels_last, final_metrics, resume, snapshot)
    finally:
        if flushing:
            torch.set_flush_denormal(False)
        model.eval().cpu().to(memory_format=torch.contiguous_format)
        round_weights(model, config.weights_dtype)


def round_weights(model: Autoencoder, dtype: str) -> None:
    """Round the weights to `dtype` (they stay float32 tensors) and mark the model so its
    checkpoint stores them in `dtype`: the metrics measured afterwards are the file's."""
    model.weights_dtype = dtype
    if dtype == "float32":
        return
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(getattr(torch, dtype)))


def _train(model, train_images, test_images, config, callback, stop, device, result, channels_last, final_metrics,
           resume=None, snapshot=None):
    torch.manual_seed(config.seed)
    data = train_images[: config.train_size]
    test = None if test_images is None else test_images[: config.test_size]
    n, bs = len(data), min(config.batch_size, len(data))
    batches = n // bs                          # drop the ragged last batch
    total = batches * config.epochs
    config = resolved(config, model)
    if config.init_bias and not hasattr(model, "history") and resume is None:   # a loaded model keeps what it learnt
        init_output_bias(model, data[:10_000])
    eager_optimizers()   # torch.optim without importing torch._dynamo (aecore.fastimport)
    # fused: the whole update in one kernel, half the optimizer's time for small models
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s, total, config.warmup))
    g_shuffle = torch.Generator().manual_seed(config.seed)
    g_noise = torch.Generator().manual_seed(config.seed + 1)
    result.config = asdict(config)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    first = 1 if resume is None else _restore(resume, model, opt, sched, g_shuffle, g_noise, result) + 1
    good_state = copy.deepcopy(model.state_dict())
    start, done = time.perf_counter() - (resume or {}).get("elapsed_s", 0.0), (first - 1) * batches
    for epoch in range(first, config.epochs + 1):
        epoch_start, running = time.perf_counter(), 0.0
        order = torch.randperm(n, generator=g_shuffle)
        for b in range(batches):
            if stop is not None and stop.is_set():
                result.stopped = True
                return result
            idx = order[b * bs:(b + 1) * bs]
            clean = as_unit(data.index_select(0, idx))   # a third of data[idx]'s time on a CPU
            x = corrupt(clean, config, g_noise).to(device).contiguous(memory_format=layout)
            with autocast(result.precision, device):
                loss, _ = model.loss(x, clean.to(device), config.loss)
            if not torch.isfinite(loss):
                model.load_state_dict(good_state)
                raise TrainingDiverged(
                    f"the loss became {loss.item()} in epoch {epoch}, batch {b + 1} (precision "
                    f"{result.precision}); try a lower learning rate (was {config.lr:g})"
                    + (" or --precision fp32" if result.precision != "fp32" else "")
                    + ". The model keeps the weights of the last good epoch.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            value = loss.item()
            running += value
            done += 1
            elapsed = time.perf_counter() - start
            if callback:
                callback(Progress(event="batch", epoch=epoch, epochs=config.epochs, batch=b + 1, batches=batches,
                                  loss=value, images_per_s=(b + 1) * bs / (time.perf_counter() - epoch_start),
                                  elapsed_s=elapsed, eta_s=elapsed / done * (total - done)))
        seconds = time.perf_counter() - epoch_start
        last = epoch == config.epochs
        if last:
            round_weights(model, config.weights_dtype)   # the figures below are the checkpoint's
        test_loss, test_mse, measured = (evaluate(model, test, config, extra=final_metrics if last else ())
                                         if test is not None else (None, None, None))
        if last and final_metrics and measured is not None:
            result.final = {k: v for k, v in measured.items() if k != "loss"}
        model.train()
        good_state = copy.deepcopy(model.state_dict())
        h = result.history
        for key, value in (("epoch", epoch), ("train_loss", running / max(batches, 1)),
                           ("test_loss", test_loss), ("test_mse", test_mse),
                           ("images_per_s", batches * bs / seconds), ("seconds", seconds)):
            h[key].append(value)
        if callback:
            elapsed = time.perf_counter() - start
            callback(Progress(event="epoch", epoch=epoch, epochs=config.epochs, batch=batches, batches=batches,
                              loss=h["train_loss"][-1], images_per_s=h["images_per_s"][-1], elapsed_s=elapsed,
                              eta_s=elapsed / done * (total - done), test_loss=test_loss, test_mse=test_mse))
        if snapshot is not None and not last:
            snapshot(_state(epoch, model, opt, sched, g_shuffle, g_noise, result, time.perf_counter() - start))
    return result


def _state(epoch, model, opt, sched, g_shuffle, g_noise, result, elapsed_s) -> dict:
    """Everything the run after `epoch` depends on (aecore.resume writes it; plain tensors and
    values, so it loads with weights_only=True)."""
    return {"epoch": epoch, "model": model.name, "model_config": dict(model.config), "config": dict(result.config),
            "weights": {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(opt.state_dict()), "scheduler": sched.state_dict(),
            "rng": {"shuffle": g_shuffle.get_state(), "noise": g_noise.get_state(), "torch": torch.get_rng_state()},
            "history": copy.deepcopy(result.history), "elapsed_s": float(elapsed_s)}


def _restore(state, model, opt, sched, g_shuffle, g_noise, result) -> int:
    """Put the run back where `_state` saw it; the epoch it had finished. A state whose
    parts do not fit (aecore.resume.mismatch checks the weights and Adam's moments first)
    raises ConfigError."""
    try:
        model.load_state_dict(state["weights"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        g_shuffle.set_state(state["rng"]["shuffle"])
        g_noise.set_state(state["rng"]["noise"])
        torch.set_rng_state(state["rng"]["torch"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"the saved training state cannot be restored: {e}") from e
    result.history = copy.deepcopy(state["history"])
    return state["epoch"]
