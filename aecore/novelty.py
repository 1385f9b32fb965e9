"""Is it a digit at all? Novelty detection by reconstruction error.

An autoencoder trained on digits rebuilds digits well and other shapes badly, so the
error of a new image, placed among the errors of the MNIST test digits, says how
digit-like it is (Japkowicz et al. 1995; Sakurada & Yairi 2014). A model with much
capacity (the convolutional ones) rebuilds almost anything, letters included, and
tells little; a dense model with a 32-number code has learned digit shapes.

The error is *relative*: the squared error over the image's own energy (sum of squared
pixels), the inverse of the reconstruction's SNR. A plain MSE ranks a thin "1" as
well rebuilt because it has little ink to get wrong, and a big letter as badly
rebuilt partly because it has much; dividing by the ink compares shapes, not amounts
of ink. Measured on the shipped weights (deep-32, float16): a letter A sits at the
99.3rd percentile of the test digits' relative errors (97.3rd with plain MSE, under
the "unlike MNIST" cut), H, X, a box and random scribbles at the 98.8th or above, a
drawn 7 at the 4th; conv_upsample-32 puts an "A" near the median either way.

The reference is the per-image relative error of every test digit, computed once per
model (the caller caches it); a new error becomes the percentage of test digits
rebuilt at least as well."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .metrics import mse
from .models import in_batches

# Best separation of digits from non-digits first (see the module docstring).
PREFERRED_MODELS = ("deep-32", "simple-32", "vae-16")
# Percentile cut-offs of the verdicts: heuristics, one in ten digits scores above the first.
USUAL, UNUSUAL = 90.0, 97.5
# Mean squared pixel below which an image counts as blank (the faintest test digit has 0.017).
INK_FLOOR = 1e-3


@dataclass(frozen=True)
class Novelty:
    error: float         # the image's relative squared error (see `errors`)
    percentile: float    # % of test digits whose error is at most `error`
    median: float        # median test error, for "x times the typical error"
    verdict: str         # plain-language hint

    @property
    def is_digit_like(self) -> bool:
        return self.percentile < USUAL


def pick_model(names) -> tuple[str | None, bool]:
    """(the label to judge with, whether it is one of PREFERRED_MODELS) among `names`;
    without a preferred one the first name, whose verdicts are unchecked."""
    names = list(names)
    for name in PREFERRED_MODELS:
        if name in names:
            return name, True
    return (names[0] if names else None), False


@torch.no_grad()
def errors(model, images: torch.Tensor, batch: int = 1000, reconstructions: torch.Tensor | None = None) -> np.ndarray:
    """Per-image relative squared error of `model.reconstruct` on (N,1,28,28) images in
    [0,1]: sum((x̂ - x)²) / sum(x²), -> (N,) float64. An image with (almost) no ink is
    divided by INK_FLOOR instead, so a blank image gives a finite number. `reconstructions`:
    the model's own, where the caller has them already (the model does not run again)."""
    if reconstructions is None:
        model.eval()
        reconstructions = in_batches(model.reconstruct, images, batch)
    err = mse(reconstructions.clamp(0, 1), images).double()
    energy = images.double().pow(2).flatten(1).mean(1)
    return (err / energy.clamp_min(INK_FLOOR)).numpy()


def reference_errors(model, images: torch.Tensor) -> np.ndarray:
    """The sorted errors of `images` (the test set): the distribution a new error is placed in."""
    return np.sort(errors(model, images))


def percentile_of(error: float, reference: np.ndarray) -> float:
    """Percentage of `reference` (sorted) at or below `error`, in [0, 100]."""
    if len(reference) == 0:
        raise ValueError("the reference distribution is empty")
    return 100.0 * np.searchsorted(reference, error, side="right") / len(reference)


def verdict(percentile: float) -> str:
    if percentile < USUAL:
        return "looks like a digit"
    if percentile < UNUSUAL:
        return "an unusual digit: few test digits are rebuilt this badly"
    return "unlike anything in MNIST: probably not a digit"


def judge(model, digit, reference: np.ndarray, reconstruction: torch.Tensor | None = None) -> Novelty:
    """Where the reconstruction error of one (28,28) image in [0,1] falls among `reference`
    (`reconstruction`: the model's own of `digit`, if the caller has it: the Draw page)."""
    x = torch.as_tensor(np.asarray(digit, dtype=np.float32)).reshape(1, 1, 28, 28)
    again = None if reconstruction is None else reconstruction.reshape(1, 1, 28, 28)
    error = float(errors(model, x, reconstructions=again)[0])
    p = percentile_of(error, reference)
    return Novelty(error, p, float(np.median(reference)), verdict(p))
