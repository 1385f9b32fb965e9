"""Reconstruction metrics on batches (B,1,28,28) in [0,1]; each returns one value per
image so callers can average, plot or pick the worst. SSIM is torchmetrics' (Wang et
al. 2004, 11x11 Gaussian window). What each means, in words for people (the app's
explanation and tooltips): aecore.metric_help, torch-free."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def mse(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel mean squared error of each image, (B,)."""
    return (recon - target).pow(2).flatten(1).mean(1)


def bce(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy of each image, (B,)."""
    return F.binary_cross_entropy(recon.clamp(1e-6, 1 - 1e-6), target, reduction="none").flatten(1).mean(1)


def psnr(recon: torch.Tensor, target: torch.Tensor, max_mse_floor: float = 1e-10) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image (peak 1.0), (B,)."""
    return -10 * torch.log10(mse(recon, target).clamp_min(max_mse_floor))


def ssim(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity of each image, (B,)."""
    from torchmetrics.functional.image import structural_similarity_index_measure as _ssim
    return _ssim(recon.float(), target.float(), data_range=1.0, reduction="none")


@torch.no_grad()
def summarize(recon: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Means over the batch: {'mse', 'psnr', 'ssim', 'bce'}."""
    return {"mse": mse(recon, target).mean().item(), "psnr": psnr(recon, target).mean().item(),
            "ssim": ssim(recon, target).mean().item(), "bce": bce(recon, target).mean().item()}
