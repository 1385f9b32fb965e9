"""Corruptions for the denoising objective and the Denoise page. Every function takes a
`torch.Generator`, so the same seed gives the same noise."""
from __future__ import annotations

import torch

NOISE_KINDS = ("gaussian", "salt_pepper", "erasing")
LEVEL_HELP = {
    "gaussian": "standard deviation of the added noise (pixels in [0,1])",
    "salt_pepper": "fraction of pixels set to black or white",
    "erasing": "fraction of the image area covered by one erased rectangle",
}


def gaussian(x: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    """x + N(0, sigma^2), clipped to [0,1]."""
    return (x + sigma * torch.randn(x.shape, generator=g).to(x.device)).clamp_(0, 1)


def salt_pepper(x: torch.Tensor, amount: float, g: torch.Generator) -> torch.Tensor:
    """A fraction `amount` of pixels set to 0 or 1 with equal chance."""
    u = torch.rand(x.shape, generator=g).to(x.device)
    out = x.clone()
    out[u < amount / 2] = 0.0
    out[(u >= amount / 2) & (u < amount)] = 1.0
    return out


def erasing(x: torch.Tensor, area: float, g: torch.Generator) -> torch.Tensor:
    """One random rectangle per image covering about `area` of it, set to 0
    (random erasing, Zhong et al. 2017), with an aspect ratio in [1/2, 2]."""
    out = x.clone()
    n, _, h, w = x.shape
    if area <= 0:
        return out
    log_ratio = (torch.rand(n, generator=g) * 2 - 1) * 0.6931  # ln 2
    ratio = log_ratio.exp()
    eh = (area * h * w * ratio).sqrt().round().clamp(1, h).long()
    ew = (area * h * w / ratio).sqrt().round().clamp(1, w).long()
    top = (torch.rand(n, generator=g) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=g) * (w - ew + 1)).long()
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    mask = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
            & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)))
    out[mask.unsqueeze(1).to(x.device)] = 0.0
    return out


_FUNCS = {"gaussian": gaussian, "salt_pepper": salt_pepper, "erasing": erasing}


def add_noise(x: torch.Tensor, kind: str, level: float, seed: int | torch.Generator = 0) -> torch.Tensor:
    """Corrupt a batch (B,1,28,28) in [0,1]. `seed` is an int or a Generator to draw from."""
    if kind not in _FUNCS:
        raise ValueError(f"unknown noise {kind!r}; choose one of: {', '.join(NOISE_KINDS)}")
    level = float(level)
    if not 0 <= level <= (5 if kind == "gaussian" else 1):
        raise ValueError(f"{kind} noise level must be in [0, {5 if kind == 'gaussian' else 1}], got {level}")
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    return _FUNCS[kind](x, level, g)
