"""Classic denoising filters, the baselines a denoising autoencoder has to beat.

Both work on batches (B,1,H,W) of floats and pad by repeating the edge pixels
(scipy.ndimage's mode="nearest"), so a constant image stays constant and nothing
wraps around. The median filter removes impulse (salt-and-pepper) noise while
keeping edges; the Gaussian blur averages Gaussian noise away but smears strokes
(Gonzalez & Woods, Digital Image Processing, ch. 3.5-3.6).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images (B,C,H,W), got shape {tuple(x.shape)}")


def median(x: torch.Tensor, k: int = 3) -> torch.Tensor:
    """k x k median filter (k odd) of a batch (B,C,H,W) -> same shape."""
    _check_batch(x)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"median filter size must be an odd number >= 1, got {k}")
    b, c, h, w = x.shape
    r = k // 2
    padded = F.pad(x, (r, r, r, r), mode="replicate")
    patches = F.unfold(padded, k)                    # (B, C*k*k, H*W)
    patches = patches.view(b, c, k * k, h * w)
    return patches.median(dim=2).values.view(b, c, h, w)   # k*k odd: the true middle value


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """1-D normalised Gaussian of radius round(truncate * sigma), as scipy.ndimage uses."""
    if sigma <= 0:
        raise ValueError(f"Gaussian blur sigma must be > 0, got {sigma}")
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    return (kernel / kernel.sum()).float()             # (2*radius+1,)


def gaussian_blur(x: torch.Tensor, sigma: float = 1.0, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur of a batch (B,C,H,W) -> same shape."""
    _check_batch(x)
    kernel = gaussian_kernel(sigma, truncate).to(x)
    r = (len(kernel) - 1) // 2
    b, c, h, w = x.shape
    out = x.reshape(b * c, 1, h, w)                    # every channel filtered alone
    out = F.conv2d(F.pad(out, (r, r, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, r, r), mode="replicate"), kernel.view(1, 1, -1, 1))
    return out.view(b, c, h, w)


# The filters offered by the Denoise page, by display name.
FILTERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "median 3x3": lambda x: median(x, 3),
    "median 5x5": lambda x: median(x, 5),
    "Gaussian blur σ=1": lambda x: gaussian_blur(x, 1.0),
}

