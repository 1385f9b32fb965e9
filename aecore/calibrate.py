"""How fast this machine trains: a short measured run, so the Train page's "expected time"
is this machine's and not a table's. UI-free; the app caches them.

The measurement goes through `train()` itself (same precision, memory layout and optimizer
as a real run) on a few batches, timing the batches after the first two, plus one
evaluation pass (a real run evaluates the test images after every epoch)."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from .models import create_model
from .precision import torch_threads
from .trainer import TrainConfig, evaluate, train

WARM_BATCHES, TIMED_BATCHES = 2, 6
SETUP_S = 0.5   # building the model, the optimizer and the first batch's kernels


@dataclass(frozen=True)
class Throughput:
    train_images_per_s: float
    eval_images_per_s: float
    precision: str

    def seconds(self, config: TrainConfig, n_train: int = 60_000, n_test: int = 10_000) -> float:
        """Wall time of a run of `config` at these rates."""
        n = min(config.train_size or n_train, n_train)
        m = min(config.test_size or n_test, n_test)
        batches = n // min(config.batch_size, n)
        return SETUP_S + config.epochs * (batches * config.batch_size / self.train_images_per_s
                                          + m / self.eval_images_per_s)


def measure(model_name: str, code_size: int, config: TrainConfig, images: torch.Tensor,
            threads: int = 1) -> Throughput:
    """Train a fresh `model_name` for a few batches of `images` as `config` would, on
    `threads` torch threads (the app's jobs use one)."""
    with torch_threads(threads):
        bs = min(config.batch_size, len(images))
        n = bs * (WARM_BATCHES + TIMED_BATCHES)
        data = images[:n].repeat(-(-n // len(images)), 1, 1, 1)[:n]
        times = []
        model = create_model(model_name, code_size=code_size)
        run = replace(config, epochs=1, train_size=n, test_size=None, warmup=0)
        result = train(model, data, None, run, callback=lambda p: times.append(time.perf_counter())
                       if p.event == "batch" else None)
        train_rate = TIMED_BATCHES * bs / (times[-1] - times[WARM_BATCHES - 1])
        test = images[:min(500, len(images))]
        start = time.perf_counter()
        evaluate(model, test, run)
        eval_rate = len(test) / (time.perf_counter() - start)
        return Throughput(train_rate, eval_rate, result.precision)
