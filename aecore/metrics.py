"""Reconstruction metrics on batches (B,1,28,28) in [0,1]; each returns one value per
image so callers can average, plot or pick the worst. SSIM is Wang et al. (2004) with
torchmetrics' defaults, in plain torch: importing torchmetrics (which imports scipy) costs
seconds, and tests/test_metrics.py checks this against it. What each means, in words
for people (the app's explanation and tooltips): aecore.metric_help, torch-free."""
from __future__ import annotations

import functools

import torch


def mse(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel mean squared error of each image, (B,)."""
    return (recon - target).pow(2).flatten(1).mean(1)


def psnr(recon: torch.Tensor, target: torch.Tensor, max_mse_floor: float = 1e-10) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image (peak 1.0), (B,)."""
    return -10 * torch.log10(mse(recon, target).clamp_min(max_mse_floor))


SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03


def _gaussian(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of 2*int(3.5*sigma + 0.5) + 1 taps (11 for sigma 1.5)."""
    size = int(3.5 * sigma + 0.5) * 2 + 1
    dist = torch.arange((1 - size) / 2, (1 + size) / 2, 1, dtype=torch.float64)
    g = torch.exp(-(dist / sigma).pow(2) / 2)
    return g / g.sum()


@functools.lru_cache(maxsize=16)
def _window_matrix(n: int, sigma: float) -> torch.Tensor:
    """(n, n) M with M @ v = the Gaussian filter of the reflect-padded v (length n), cropped
    back to n: padding and the 11-tap window folded into one small matrix, so a 2-D filter
    of a batch is two batched matrix products (much faster on a CPU than an 11x11
    single-channel convolution)."""
    g = _gaussian(sigma)
    pad = (len(g) - 1) // 2
    if n <= pad:
        raise ValueError(f"ssim needs images larger than {pad} pixels per side, got {n}")
    m = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for k, weight in enumerate(g.tolist()):
            j = abs(i + k - pad)              # reflect at the start ...
            j = 2 * (n - 1) - j if j > n - 1 else j   # ... and at the end
            m[i, j] += weight
    return m


SSIM_CHUNK = 128   # images filtered together: the five filtered maps of a chunk stay in the CPU's cache


def ssim(recon: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity of each image (B,C,H,W) -> (B,): Gaussian window (sigma 1.5,
    11x11), K1 0.01, K2 0.03, reflect padding, the mean of the SSIM map over the image;
    torchmetrics' `structural_similarity_index_measure` with `data_range` and its defaults.
    Computed SSIM_CHUNK images at a time; each image's value does not depend on the others."""
    if recon.shape != target.shape or recon.ndim != 4:
        raise ValueError(f"ssim needs two (B,C,H,W) batches of one shape, got {tuple(recon.shape)} "
                         f"and {tuple(target.shape)}")
    x, y = recon.float(), target.float()
    rows = _window_matrix(x.shape[2], SSIM_SIGMA).to(x)
    cols_t = _window_matrix(x.shape[3], SSIM_SIGMA).to(x).t()
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    if len(x) <= SSIM_CHUNK:
        return _ssim(x, y, rows, cols_t, c1, c2)
    return torch.cat([_ssim(a, b, rows, cols_t, c1, c2) for a, b in zip(x.split(SSIM_CHUNK), y.split(SSIM_CHUNK))])


def _ssim(x, y, rows, cols_t, c1, c2) -> torch.Tensor:
    # local means and second moments, filtered together: (5B, C, H, W)
    stats = (rows @ torch.cat((x, y, x * x, y * y, x * y)) @ cols_t).split(len(x))
    mu_x, mu_y = stats[0], stats[1]
    mu_xx, mu_yy, mu_xy = mu_x.pow(2), mu_y.pow(2), mu_x * mu_y
    var_x = (stats[2] - mu_xx).clamp_min(0.0)
    var_y = (stats[3] - mu_yy).clamp_min(0.0)
    cov = stats[4] - mu_xy
    ssim_map = ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)
