"""Side-by-side scores of denoising methods: autoencoders and classic filters applied
to the same seeded noisy digits, scored against the clean ones.

A *method* is anything that maps a noisy batch (B,1,28,28) to an estimate of the
clean batch: a model (its `reconstruct`) or a plain function such as
`filters.median`. With `kind=None` nothing is corrupted and `compare` scores
plain reconstructions (the Draw page)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from . import metrics
from .filters import FILTERS
from .noise import LEVEL_RANGE, NOISE_KINDS, NOISE_LABELS, add_noise

NOISY = "noisy input"   # label of the corrupted input itself, the baseline every method must beat

# The classic filters plotted in the PSNR-vs-level chart.
CLASSIC = {name: FILTERS[name] for name in ("median 3x3", "Gaussian blur σ=1")}

Method = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Scored:
    """A method's output on a batch and its per-image scores against the clean batch."""
    images: torch.Tensor    # (B,1,28,28) in [0,1]
    mse: torch.Tensor       # (B,)
    psnr: torch.Tensor      # (B,) dB
    ssim: torch.Tensor | None   # (B,); None when not asked for

    def mean(self, name: str) -> float:
        return getattr(self, name).mean().item()


def as_method(method) -> Method:
    """A model (anything with `reconstruct`) or a function -> a function."""
    return method.reconstruct if hasattr(method, "reconstruct") else method


def score(images: torch.Tensor, clean: torch.Tensor, with_ssim: bool = True) -> Scored:
    images = images.clamp(0, 1)
    ssim = metrics.ssim(images, clean) if with_ssim else None
    return Scored(images, metrics.mse(images, clean), metrics.psnr(images, clean), ssim)


def corrupt(clean: torch.Tensor, kind: str | None, level: float, seed: int) -> torch.Tensor:
    """Seeded noise: the same (kind, level, seed) always gives the same noisy batch."""
    return clean.clone() if kind is None else add_noise(clean, kind, level, seed)


@torch.no_grad()
def compare(clean: torch.Tensor, kind: str | None, level: float, seed: int,
            methods: Mapping[str, object], with_ssim: bool = True) -> dict[str, Scored]:
    """{NOISY: the noisy input, label: each method's output}, all scored against `clean`
    (B,1,28,28). Labels keep the order of `methods`."""
    _check_batch(clean)
    noisy = corrupt(clean, kind, level, seed)
    out = {NOISY: score(noisy, clean, with_ssim)}
    for label, method in methods.items():
        out[label] = score(as_method(method)(noisy), clean, with_ssim)
    return out


def as_batch(digit) -> torch.Tensor:
    """One (28,28) image (numpy or tensor) in [0,1] -> a batch (1,1,28,28) float32."""
    x = torch.as_tensor(digit, dtype=torch.float32)
    if tuple(x.shape) != (28, 28):
        raise ValueError(f"expected a 28x28 image, got shape {tuple(x.shape)}")
    return x.view(1, 1, 28, 28)


def reconstructions(digit, models: Mapping[str, object]) -> dict[str, Scored]:
    """Every model's reconstruction of one clean (28,28) digit, scored against it (the Draw
    page). No SSIM: the page does not show it, and its first use costs a 2 s import."""
    out = compare(as_batch(digit), None, 0.0, 0, models, with_ssim=False)
    del out[NOISY]
    return out


@torch.no_grad()
def code_of(model, digit) -> list[float]:
    """The code of one (28,28) digit (a VAE's: the mean)."""
    return model.encode(as_batch(digit))[0].tolist()


@torch.no_grad()
def psnr_curve(methods: Mapping[str, object], images: torch.Tensor, kind: str,
               levels: Sequence[float], seed: int = 0) -> dict[str, list[float]]:
    """Mean PSNR (dB) over `images` at each noise level: {NOISY or label: [one per level]}."""
    _check_batch(images)
    curves: dict[str, list[float]] = {NOISY: [], **{label: [] for label in methods}}
    for level in levels:
        noisy = corrupt(images, kind, level, seed)
        curves[NOISY].append(metrics.psnr(noisy, images).mean().item())
        for label, method in methods.items():
            est = as_method(method)(noisy).clamp(0, 1)
            curves[label].append(metrics.psnr(est, images).mean().item())
    return curves


def curve_levels(kind: str, points: int = 10) -> list[float]:
    """`points` evenly spaced levels up to the slider's maximum for `kind`, without 0
    (no noise: the PSNR of the input is infinite)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise {kind!r}; choose one of: {', '.join(NOISE_KINDS)}")
    top = LEVEL_RANGE[kind][0]
    return [round(top * i / points, 4) for i in range(1, points + 1)]


def pick_digits(labels: torch.Tensor, n: int, seed: int, digit: int | None = None) -> torch.Tensor:
    """Indices of `n` test images drawn at random with `seed` (only of class `digit` if given)."""
    pool = torch.arange(len(labels)) if digit is None else torch.nonzero(labels == digit).flatten()
    if len(pool) == 0:
        raise ValueError(f"no images of class {digit}")
    g = torch.Generator().manual_seed(int(seed))
    return pool[torch.randperm(len(pool), generator=g)[:n]]


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected a batch of MNIST images (B,1,28,28), got shape {tuple(x.shape)}")
