"""Corruptions for the denoising objective and the Denoise page. Every function takes a
`torch.Generator`, so the same seed gives the same noise."""
from __future__ import annotations

import torch

from .noise_kinds import (BLIND, LEVEL_HELP, LEVEL_RANGE, NOISE_KINDS, NOISE_LABELS, TRAINING_NOISES,
                          describe_noise)

__all__ = ["BLIND", "LEVEL_HELP", "LEVEL_RANGE", "NOISE_KINDS", "NOISE_LABELS", "TRAINING_NOISES",
           "describe_noise", "add_noise", "corrupt", "check_level", "erased_mask"]

Level = float | torch.Tensor   # one level for the batch, or one per image (B,)


def _per_image(level: Level, x: torch.Tensor) -> Level:
    """A per-image level (B,) shaped to broadcast over (B,1,H,W); a float unchanged."""
    return level.view(-1, 1, 1, 1).to(x.device) if isinstance(level, torch.Tensor) else level


def gaussian(x: torch.Tensor, sigma: Level, g: torch.Generator) -> torch.Tensor:
    """x + N(0, sigma^2), clipped to [0,1]."""
    return (x + _per_image(sigma, x) * torch.randn(x.shape, generator=g).to(x.device)).clamp_(0, 1)


def salt_pepper(x: torch.Tensor, amount: Level, g: torch.Generator) -> torch.Tensor:
    """A fraction `amount` of pixels set to 0 or 1 with equal chance."""
    amount = _per_image(amount, x)
    u = torch.rand(x.shape, generator=g).to(x.device)
    out = x.clone()
    out[u < amount / 2] = 0.0
    out[(u >= amount / 2) & (u < amount)] = 1.0
    return out


def erasing(x: torch.Tensor, area: Level, g: torch.Generator) -> torch.Tensor:
    """One random rectangle per image covering about `area` of it, set to 0
    (random erasing, Zhong et al. 2017), with an aspect ratio in [1/2, 2]."""
    return x.masked_fill(erased_mask(x, area, g), 0.0)


def erased_mask(x: torch.Tensor, area: Level, g: torch.Generator) -> torch.Tensor:
    """(B,1,H,W) bool: the rectangle `erasing` sets to 0 with the same generator state."""
    n, _, h, w = x.shape
    if not isinstance(area, torch.Tensor) and area <= 0:
        return torch.zeros(x.shape, dtype=torch.bool, device=x.device)
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
    if isinstance(area, torch.Tensor):
        mask &= (area > 0).view(n, 1, 1)   # level 0: nothing erased
    return mask.unsqueeze(1).to(x.device)


def blind(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image corrupted by a kind drawn at random and a level drawn uniformly in
    [0, that kind's maximum] (LEVEL_RANGE): the training input of a blind denoiser."""
    n = len(x)
    kinds = torch.randint(len(NOISE_KINDS), (n,), generator=g)
    fractions = torch.rand(n, generator=g)
    out = x.clone()
    for i, kind in enumerate(NOISE_KINDS):
        chosen = (kinds == i).nonzero().flatten()
        if len(chosen):
            levels = fractions[chosen] * LEVEL_RANGE[kind][0]
            out[chosen.to(x.device)] = _FUNCS[kind](x[chosen.to(x.device)], levels, g)
    return out


_FUNCS = {"gaussian": gaussian, "salt_pepper": salt_pepper, "erasing": erasing}


def check_level(kind: str, level: float) -> float:
    """`level` as a float; ValueError for an unknown kind or a level out of its range."""
    if kind not in TRAINING_NOISES:
        raise ValueError(f"unknown noise {kind!r}; choose one of: {', '.join(TRAINING_NOISES)}")
    level = float(level)
    if not 0 <= level <= (5 if kind == "gaussian" else 1):
        raise ValueError(f"{kind} noise level must be in [0, {5 if kind == 'gaussian' else 1}], got {level}")
    return level


def add_noise(x: torch.Tensor, kind: str, level: float, seed: int | torch.Generator = 0) -> torch.Tensor:
    """Corrupt a batch (B,1,28,28) in [0,1]. `seed` is an int or a Generator to draw from.
    `kind` BLIND draws a kind and a level per image and ignores `level`."""
    check_level(kind, level)   # a kind is required here (None is refused)
    return corrupt(x, kind, level, seed)[0]


def corrupt(clean: torch.Tensor, kind: str | None, level: float, seed: int | torch.Generator = 0
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(noisy batch, erased mask): the mask (B,1,H,W) says which pixels random erasing set
    to 0, for methods that are told (inpainting); None for the other kinds. No noise:
    a copy of `clean`."""
    if kind is None:
        return clean.clone(), None
    level = check_level(kind, level)
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    if kind == "erasing":
        mask = erased_mask(clean, level, g)
        return clean.masked_fill(mask, 0.0), mask
    return (blind(clean, g) if kind == BLIND else _FUNCS[kind](clean, level, g)), None
