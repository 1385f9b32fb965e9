"""Whole-test-set evaluation of a model, and the plain-text table the CLI prints."""
from __future__ import annotations

import torch

from . import metrics
from .noise import add_noise


@torch.no_grad()
def evaluate_model(model, images: torch.Tensor, *, noise: str | None = None, level: float = 0.0,
                   seed: int = 0, batch_size: int = 1000) -> dict:
    """Mean per-image MSE, PSNR (dB), SSIM of `model.reconstruct` on `images`. With `noise`
    the inputs are corrupted (seeded) and the targets stay clean: a denoising score."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    sums = {"mse": 0.0, "psnr": 0.0, "ssim": 0.0}
    for clean in images.split(batch_size):
        x = add_noise(clean, noise, level, g) if noise else clean
        recon = model.reconstruct(x)
        for name in sums:
            sums[name] += getattr(metrics, name)(recon, clean).sum().item()
    out = {k: v / len(images) for k, v in sums.items()}
    out.update(noise=noise, noise_level=level if noise else 0.0, images=len(images))
    return out


def format_table(rows: list[dict]) -> str:
    head = f"{'model':28s} {'code':>5s} {'bytes':>6s} {'noise':>14s} {'MSE':>8s} {'PSNR dB':>8s} {'SSIM':>6s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        noise = f"{r['noise']} {r['noise_level']:g}" if r.get("noise") else "-"
        lines.append(f"{r['name'][:28]:28s} {r['code_size']:5d} {4 * r['code_size']:6d} {noise:>14s} "
                     f"{r['mse']:8.5f} {r['psnr']:8.2f} {r['ssim']:6.3f}")
    return "\n".join(lines)
