"""11. The Gaussian denoiser against a network without a bottleneck. Issue 10 asks for 22.0 dB
at σ = 0.5; the shipped denoiser, an autoencoder whose every output pixel comes from its
128-number code, stays under it. Is the code what holds it back? A U-Net (Ronneberger et
al. 2015) has skip connections that carry the input's detail around any code; it is trained
here by the same trainer (aecore.train: Adam, warm-up then cosine decay, bf16 where the CPU
has the units) on the same noise for as many epochs, and scored with the autoencoder on the
same test digits and seeded noise as `python -m aecore evaluate`. If it also stays under the target,
the noise (σ = 0.5 clipped to [0, 1]: it leaves half the background exactly 0 and half the
strokes' cores exactly 1, and swamps the grey edges between) sets the ceiling at this
training budget, not the code.

The U-Net is aecore's (`--model unet`, aecore/models/unet.py), here without the dense code
the shipped one has (section 13). A U-Net is not an autoencoder: its skips let the image
bypass the code, so the app offers it on the Denoise page only."""
from __future__ import annotations

import shlex
import time
from typing import Callable

import torch

import aecore
from aecore.cli import build_parser
from aecore.evaluation import evaluate
from aecore.models import create_model
from aecore.shipped import shipped_models
from aecore.trainer import TrainConfig, train

from .common import Table, line_chart, parameter_count

KIND, LEVEL, TARGET = "gaussian", 0.5, 22.0   # issue 10's target
WIDTH, EPOCHS, EVERY = 32, 50, 10   # the U-Net's channels at full resolution; its epochs (the shipped
LR = 1e-3                           # denoiser's 50) and how often it is scored; Adam's rate


def target_psnr(method, images: torch.Tensor) -> float:
    """Mean PSNR of `method` on `images` under issue 10's noise, seeded as `python -m aecore evaluate`."""
    return evaluate(method, images, noise=KIND, level=LEVEL, metrics=("psnr",))["psnr"]


def UNetDenoiser(width: int, code: int = 0, squeeze: int = 16):
    """The app's U-Net (aecore/models/unet.py) at `width`, with a dense code of `code` numbers
    at its bottom (0: none, this section's; section 13: 256), as `aecore train --model unet` builds it."""
    return create_model("unet", code_size=code, width=width, squeeze=squeeze)


def trained_epochs(command: str) -> int:
    """The --epochs of a manifest entry's recorded `python -m aecore train ...` command, read
    by the CLI's own parser."""
    argv = shlex.split(command)
    return build_parser().parse_args(argv[argv.index("train"):]).epochs


def scored_along(score: Callable[[], float], every: int, last: int,
                 record: Callable[[int, float, float], None]) -> Callable:
    """A training callback: after every `every`-th epoch and the last, record(epoch, score(),
    training minutes so far), the time spent scoring left out of the minutes. (evaluate leaves
    a model in training mode, so scoring mid-run is safe.)"""
    clock = {"start": time.perf_counter(), "scoring": 0.0}

    def callback(progress) -> None:
        if progress.event != "epoch" or (progress.epoch % every and progress.epoch != last):
            return
        trained_s = time.perf_counter() - clock["start"] - clock["scoring"]
        began = time.perf_counter()
        value = score()
        clock["scoring"] += time.perf_counter() - began
        record(progress.epoch, value, trained_s / 60)

    return callback


def run(quick: bool = False) -> list[Table]:
    test, _ = aecore.load_mnist("test")
    train_images, _ = aecore.load_mnist("train", as_uint8=True)
    width, epochs, every = (WIDTH, EPOCHS, EVERY) if not quick else (4, 2, 1)
    if quick:
        test, train_images = test[:200], train_images[:1024]
    psnr = lambda method: target_psnr(method, test)

    column = f"PSNR dB, Gaussian σ={LEVEL:g}"
    t = Table("Gaussian denoising with and without a bottleneck" + (" (quick: 200 images)" if quick else ""),
              ["method", "code", "parameters", "epochs", column, "training minutes (this run)"],
              formats={column: ".2f", "training minutes (this run)": ".1f"})
    t.add("noisy input", "—", None, None, psnr(lambda x: x), None)
    shipped = {s.name: s for s in shipped_models() if s.is_autoencoder and s.entry["metrics"]["noise"] == KIND}
    scores = {name: psnr(s.model) for name, s in shipped.items()}
    for name, s in shipped.items():
        t.add(f"{name} (shipped autoencoder)", s.model.code_size, parameter_count(s.model),
              trained_epochs(s.entry["command"]), scores[name], None)

    torch.manual_seed(0)
    unet = UNetDenoiser(width)
    curve: list[tuple[int, float]] = []

    def record(epoch: int, value: float, minutes: float) -> None:
        curve.append((epoch, value))
        t.add(f"U-Net, width {width} (skip connections)", "none", parameter_count(unet), epoch, value, minutes)

    train(unet, train_images, None, TrainConfig(epochs=epochs, noise=KIND, noise_level=LEVEL, lr=LR),
          callback=scored_along(lambda: psnr(unet), every, epochs, record))
    t.add("issue 10's target", "—", None, None, TARGET, None)

    best = max([*scores.values(), *(p for _, p in curve)])
    t.notes += [
        f"{len(test):,} test digits, the noise of `python -m aecore evaluate` (seed 0). The U-Net trains on the "
        f"{len(train_images):,} training digits with fresh noise each epoch (aecore.train, lr {LR:g}, batch "
        f"{TrainConfig.batch_size}); it is scored every {every} epoch(s) along one run, so a row before the last "
        f"is the {epochs}-epoch schedule stopped early, not a shorter schedule.",
        f"Best here: {best:.2f} dB against the target's {TARGET:.1f} dB.",
        *([] if shipped else [f"No shipped {KIND} denoiser could be loaded: its row is missing."]),
    ]
    t.headline = (f"Gaussian σ={LEVEL:g} without a bottleneck: a U-Net (width {width}, {curve[-1][0]} epochs) "
                  f"{curve[-1][1]:.2f} dB, " + ", ".join(f"{n} {p:.2f} dB" for n, p in scores.items())
                  + f"; issue 10's target {TARGET:.1f} dB.")
    series = {f"U-Net, width {width}": curve}
    series.update({name: [(1, p), (epochs, p)] for name, p in scores.items()})
    series["target"] = [(1, TARGET), (epochs, TARGET)]
    t.figure = ("bench-ceiling.svg", line_chart(series, title=f"Gaussian σ={LEVEL:g}: PSNR against training epochs",
                                                x_label="epochs (U-Net)", y_label="PSNR dB"))
    return [t]
