"""12. The Gaussian denoiser's cheap levers. Issue 10 asks for 22.0 dB at σ = 0.5; section 11
shows that removing the bottleneck alone does not reach it. Before a bigger model, this section
tries what costs no new architecture, on the shipped denoiser itself, scored on the same test
digits and seeded noise as `python -m aecore evaluate`:

- the same model on training digits: how much of the gap is generalisation;
- test-time self-ensembles (Timofte et al. 2016; EDSR+, Lim et al. 2017): the mean of its
  outputs for shifted or mirrored copies of the input, each shifted or mirrored back;
- the mean with the blind denoiser's output (an ensemble of two shipped models);
- two more epochs at a tenth of the learning rate, on the recipe's objective (binary
  cross-entropy) and on the metric itself: the mean over images of 10·log10 of each image's
  MSE, which is minus the mean PSNR the target is measured in (the per-pixel objectives weigh
  every pixel alike, so the images with the largest errors dominate them).

None of these is what the app ships; the rows say what each is worth."""
from __future__ import annotations

import copy
import time

import torch

import aecore
from aecore.metrics import mse
from aecore.noise_kinds import BLIND
from aecore.models.base import Autoencoder
from aecore.shipped import shipped_models
from aecore.trainer import TrainConfig, as_unit, train

from .ceiling import KIND, LEVEL, TARGET, target_psnr   # issue 10's target, as section 11 measures it
from .common import Table

SHIFTS_4 = [(0, 0), (0, 1), (1, 0), (1, 1)]
SHIFTS_9 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
MORE_EPOCHS, LR = 2, 2e-4            # the recipe's rate is 2e-3, decayed to 0
PSNR_EPS = 1e-4                      # keeps log10 finite for a perfect image (MSE 0)


class SelfEnsemble:
    """A method whose estimate is the mean of `method.reconstruct` over copies of the input
    rolled by each (dy, dx) of `shifts` (and, with `mirror`, also mirrored left to right),
    each output put back where it came from. MNIST's 4-pixel empty border makes a 1-pixel
    roll lose no ink."""

    def __init__(self, method, shifts=((0, 0),), mirror: bool = False):
        self.method, self.shifts, self.mirror = method, list(shifts), mirror

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for dy, dx in self.shifts:
            for flip in (False, True) if self.mirror else (False,):
                y = torch.roll(x, (dy, dx), (2, 3))
                y = y.flip(3) if flip else y
                r = self.method.reconstruct(y)
                r = r.flip(3) if flip else r
                outs.append(torch.roll(r, (-dy, -dx), (2, 3)))
        return torch.stack(outs).mean(0)

    @property
    def passes(self) -> int:
        return len(self.shifts) * (2 if self.mirror else 1)


class Blend:
    """The weighted mean of two methods' estimates."""

    def __init__(self, a, b, weight: float):
        self.a, self.b, self.weight = a, b, weight

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * self.a.reconstruct(x) + (1 - self.weight) * self.b.reconstruct(x)


class PSNRObjective(Autoencoder):
    """`model` trained on minus its mean PSNR: its loss is the mean over the batch of
    10·log10(each image's MSE + PSNR_EPS), on the sigmoid output. Shares `model`'s layers,
    so training this trains `model`."""

    def __init__(self, model: Autoencoder):
        super().__init__()
        self.inner = model
        self.code_size, self.config, self.name = model.code_size, model.config, model.name
        self.encoder, self.decoder = model.encoder, model.decoder
        if hasattr(model, "history"):   # a trained model: the trainer keeps its output bias
            self.history = model.history

    def encode(self, x):
        return self.inner.encode(x)

    def decode(self, z):
        return self.inner.decode(z)

    def loss(self, x, target, objective="bce"):
        recon = self.inner.decode(self.inner.encode(x)).float()
        return 10 * torch.log10(mse(recon, target) + PSNR_EPS).mean(), recon


def run(quick: bool = False) -> list[Table]:
    test, _ = aecore.load_mnist("test")
    train_images, _ = aecore.load_mnist("train", as_uint8=True)
    more_epochs = MORE_EPOCHS if not quick else 1
    if quick:
        test, train_images = test[:200], train_images[:1024]
    psnr = lambda method, images=test: target_psnr(method, images)

    column = f"PSNR dB, Gaussian σ={LEVEL:g}"
    t = Table("The shipped Gaussian denoiser's cheap levers" + (" (quick: 200 images)" if quick else ""),
              ["method", column, "change dB", "passes per image", "training minutes (this run)"],
              formats={column: ".2f", "change dB": "+.2f", "training minutes (this run)": ".1f"})
    shipped = shipped_models()
    models = {s.entry["metrics"]["noise"]: s for s in shipped if s.is_autoencoder}
    blind = next((s for s in shipped if s.model is not None and s.entry["metrics"]["noise"] == BLIND), None)
    if KIND not in models:
        t.notes.append(f"No shipped {KIND} denoiser could be loaded: nothing to measure.")
        return [t]
    name, model = models[KIND].name, models[KIND].model
    base = psnr(model)
    add = lambda label, value, passes=1, minutes=None: t.add(label, value, value - base, passes, minutes)

    add(f"{name}, as shipped", base)
    seen = as_unit(train_images[:len(test)])
    add(f"{name}, scored on {len(seen):,} of its training digits", psnr(model, seen))
    for label, ensemble in (("mean over 4 shifts (0 or 1 pixel down and right)", SelfEnsemble(model, SHIFTS_4)),
                            ("mean over 9 shifts (−1, 0 or 1 pixel each way)", SelfEnsemble(model, SHIFTS_9)),
                            ("mean with its mirror image", SelfEnsemble(model, mirror=True))):
        add(f"{name}, {label}", psnr(ensemble), ensemble.passes)
    if blind is not None:   # an autoencoder or a U-Net: whichever blind denoiser ships
        for weight in (0.5, 0.8):
            add(f"{weight:g} × {name} + {1 - weight:g} × {blind.name}", psnr(Blend(model, blind.model, weight)), 2)

    for objective in ("bce", "psnr"):
        tuned = copy.deepcopy(model).float()
        learner = PSNRObjective(tuned) if objective == "psnr" else tuned
        began = time.perf_counter()
        train(learner, train_images, None, TrainConfig(epochs=more_epochs, noise=KIND, noise_level=LEVEL, lr=LR,
                                                        warmup=0, seed=1))
        minutes = (time.perf_counter() - began) / 60
        what = "binary cross-entropy (the recipe's)" if objective == "bce" else "minus the mean PSNR (the metric)"
        add(f"{name} + {more_epochs} epoch(s) at lr {LR:g} on {what}", psnr(tuned), 1, minutes)
    t.add("issue 10's target", TARGET, TARGET - base, None, None)

    best = max(t.rows[2:-1], key=lambda r: r[1])   # the levers: not the reference rows, not the target
    t.notes += [
        f"{len(test):,} test digits, the noise of `python -m aecore evaluate` (seed 0); the training-digit row "
        f"scores the first {len(seen):,} training digits with the same seeded noise. 'change' is against the "
        f"shipped model on the test digits. The two trainings start from the shipped weights (in float32) with "
        f"fresh noise on the {len(train_images):,} training digits (aecore.train, batch "
        f"{TrainConfig.batch_size}, cosine decay from lr {LR:g}, no warm-up).",
        f"Best lever here: {best[0]}, {best[2]:+.2f} dB; the target needs {TARGET - base:+.2f} dB.",
    ]
    t.headline = (f"Gaussian σ={LEVEL:g}, cheap levers on {name} ({base:.2f} dB): the best, {best[0]}, "
                  f"{best[2]:+.2f} dB; issue 10's target needs {TARGET - base:+.2f} dB.")
    return [t]
