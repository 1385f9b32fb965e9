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

Not a model the app offers: a U-Net is not an autoencoder. Its skips let the noise bypass
the code, while the lesson is that a code too small to hold the noise is what removes it."""
from __future__ import annotations

import shlex
import time
from typing import Callable

import torch
from torch import nn

import aecore
from aecore.cli import build_parser
from aecore.evaluation import evaluate
from aecore.models.base import Autoencoder
from aecore.shipped import shipped_models
from aecore.trainer import TrainConfig, train

from .common import Table, line_chart, parameter_count

KIND, LEVEL, TARGET = "gaussian", 0.5, 22.0   # issue 10's target
WIDTH, EPOCHS, EVERY = 32, 50, 10   # the U-Net's channels at full resolution; its epochs (the shipped
LR = 1e-3                           # denoiser's 50) and how often it is scored; Adam's rate


def target_psnr(method, images: torch.Tensor) -> float:
    """Mean PSNR of `method` on `images` under issue 10's noise, seeded as `python -m aecore evaluate`."""
    return evaluate(method, images, noise=KIND, level=LEVEL, metrics=("psnr",))["psnr"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
    """Three resolutions (28, 14, 7) of two 3x3 convolutions, `width`, 2 and 4 times `width`
    channels; max-pooling down, nearest-neighbour upsampling up, each level's features
    concatenated into the decoder at the same resolution. (B,1,28,28) -> logits.

    `code` > 0 adds a dense code at the bottom (section 13): the 7x7 features, squeezed to
    `squeeze` channels by a 1x1 convolution, go through a linear layer to `code` numbers and
    back, and are added to the features that go up, so every output pixel can depend on the
    whole digit as an autoencoder's do, while the skips still carry the local detail."""

    def __init__(self, width: int, code: int = 0, squeeze: int = 16):
        super().__init__()
        w = width
        self.down1, self.down2, self.bottom = _block(1, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        if code:   # built between the bottom and the way up: without it (code 0) a seed builds section 11's weights as before
            self.code = nn.Sequential(
                nn.Conv2d(4 * w, squeeze, 1), nn.ReLU(), nn.Flatten(), nn.Linear(squeeze * 49, code), nn.ReLU(),
                nn.Linear(code, squeeze * 49), nn.ReLU(), nn.Unflatten(1, (squeeze, 7, 7)), nn.Conv2d(squeeze, 4 * w, 1))
        self.up2, self.up1 = _block(4 * w + 2 * w, 2 * w), _block(2 * w + w, w)
        self.out = nn.Conv2d(w, 1, 1)
        self.pool, self.upsample = nn.MaxPool2d(2), nn.Upsample(scale_factor=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down1(x)
        b = self.down2(self.pool(a))
        c = self.bottom(self.pool(b))
        if hasattr(self, "code"):
            c = torch.relu(c + self.code(c))
        d = self.up2(torch.cat([self.upsample(c), b], 1))
        return self.out(self.up1(torch.cat([self.upsample(d), a], 1)))


class UNetDenoiser(Autoencoder):
    """The U-Net in the Autoencoder interface, so aecore.train and evaluate take it as they
    are: it has no code of its own (the encoder passes the image through; the 'decoder' is
    the whole network, a dense code at its bottom included), and the trainer's loss, BCE on
    the logits, applies unchanged."""

    def __init__(self, width: int, code: int = 0, squeeze: int = 16):
        super().__init__()
        self.code_size = 28 * 28
        self.config = {"width": width} | ({"code": code, "squeeze": squeeze} if code else {})
        self.encoder = nn.Identity()
        self.decoder = UNet(width, code, squeeze)


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
    shipped = {s.name: s for s in shipped_models() if s.model is not None and s.entry["metrics"]["noise"] == KIND}
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
