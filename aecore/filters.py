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


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images (B,C,H,W), got shape {tuple(x.shape)}")


def _per_image(x: torch.Tensor, filter_fn, **kwargs) -> torch.Tensor:
    """scipy.ndimage's `filter_fn` over the two image axes of every channel of a batch."""
    out = filter_fn(x.detach().cpu().numpy(), mode="nearest", **kwargs)
    return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)


def median(x: torch.Tensor, k: int = 3) -> torch.Tensor:
    """k x k median filter (k odd) of a batch (B,C,H,W) -> same shape."""
    _check_batch(x)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"median filter size must be an odd number >= 1, got {k}")
    from scipy import ndimage   # here, not at the top: importing scipy costs the CLI seconds
    return _per_image(x, ndimage.median_filter, size=(1, 1, k, k))


def gaussian_blur(x: torch.Tensor, sigma: float = 1.0, truncate: float = 4.0) -> torch.Tensor:
    """Gaussian blur of a batch (B,C,H,W) -> same shape: radius round(truncate * sigma)."""
    _check_batch(x)
    if sigma <= 0:
        raise ValueError(f"Gaussian blur sigma must be > 0, got {sigma}")
    from scipy import ndimage
    return _per_image(x, ndimage.gaussian_filter, sigma=(0, 0, sigma, sigma), truncate=truncate)


# The filters offered by the Denoise page, by display name.
FILTERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "median 3x3": lambda x: median(x, 3),
    "median 5x5": lambda x: median(x, 5),
    "Gaussian blur σ=1": lambda x: gaussian_blur(x, 1.0),
}

