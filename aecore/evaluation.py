"""The one way a model or a method is scored: `evaluate` averages per-image scores over a
set of images, optionally corrupted first (a denoising score), batched. Everything that
reports a quality figure goes through it: the trainer's per-epoch test figures, the CLI,
the Denoise page (through aecore.denoising), the benches and the tests.

A *method* maps a noisy batch (B,1,28,28) to an estimate of the clean one: a model (its
`reconstruct`), a plain function such as `filters.median`, or a function that is also
told which pixels were erased (`needs_mask = True`, e.g. aecore.inpaint)."""
from __future__ import annotations

import torch

from . import metrics as _metrics
from .models import can_sample, in_batches
from .noise import BLIND, corrupt
from .precision import channels_last

IMAGE_METRICS = ("mse", "psnr", "ssim")   # compare an estimate with the clean image
METRICS = (*IMAGE_METRICS, "nelbo", "loss")
ALL_METRICS = (*IMAGE_METRICS, "nelbo")   # what a checkpoint and `python -m aecore evaluate` report


class MethodError(ValueError):
    """A method cannot be applied to this noise (an inpainting method without erased pixels)."""


def apply(method, noisy: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """A method's estimate of the clean batch, in [0, 1]."""
    if hasattr(method, "reconstruct"):
        return in_batches(method.reconstruct, noisy).clamp(0, 1)
    if getattr(method, "needs_mask", False):
        if mask is None:
            raise MethodError("this method fills in erased pixels: it needs random-erasing noise")
        return method(noisy, mask).clamp(0, 1)
    return method(noisy).clamp(0, 1)


def score(estimate: torch.Tensor, clean: torch.Tensor, names=IMAGE_METRICS) -> dict[str, torch.Tensor]:
    """Per-image scores (B,) of an estimate against the clean batch, for `names` among
    IMAGE_METRICS."""
    return {name: getattr(_metrics, name)(estimate, clean) for name in names}


def mean_scores(estimate: torch.Tensor, clean: torch.Tensor, names=IMAGE_METRICS) -> dict[str, float]:
    """The batch means of `score`: {name: float}."""
    return {name: values.mean().item() for name, values in score(estimate, clean, names).items()}


@torch.no_grad()
def evaluate(method, images: torch.Tensor, *, noise: str | None = None, level: float = 0.0,
             seed: int | torch.Generator = 0, metrics=IMAGE_METRICS, objective: str = "bce",
             batch_size: int = 1000) -> dict:
    """Mean of each of `metrics` over `images` (N,1,28,28) in [0,1]:

    - mse, psnr (dB), ssim: the method's estimate from the (seeded) corrupted inputs
      against the clean images;
    - nelbo: a VAE's negative ELBO in nats per digit on the clean images (one code
      sampled per image, seeded); left out for a model that has none;
    - loss: a model's training objective (`objective`) on the corrupted inputs.

    Also returns the noise, its level and the number of images. A model is put in eval
    mode for the measurement and left as it was."""
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(sorted(unknown))}; choose from {', '.join(METRICS)}")
    model = method if isinstance(method, torch.nn.Module) else None
    was_training = model is not None and model.training
    if model is not None:
        model.eval()
    param = next(model.parameters(), None) if model is not None else None
    device = param.device if param is not None else torch.device("cpu")
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    g_code = torch.Generator().manual_seed(g.initial_seed() + 1)   # the VAE's sampled codes
    image_names = [m for m in metrics if m in IMAGE_METRICS]
    sums = dict.fromkeys(metrics, 0.0)
    if "nelbo" in metrics and not hasattr(model, "negative_elbo"):
        del sums["nelbo"]
    try:
        with channels_last(model):
            for clean in images.split(batch_size):
                noisy, mask = corrupt(clean, noise, level, g)
                noisy, clean = noisy.to(device), clean.to(device)
                estimate = None
                if "loss" in metrics:
                    loss, recon = model.loss(noisy, clean, objective)
                    sums["loss"] += loss.item() * len(clean)
                    if not can_sample(model):   # a VAE's loss decodes a sampled code, not its mean
                        estimate = recon.clamp(0, 1)
                if image_names:
                    estimate = apply(method, noisy, mask) if estimate is None else estimate
                    for name, values in score(estimate, clean, image_names).items():
                        sums[name] += values.sum().item()
                if "nelbo" in sums:
                    sums["nelbo"] += model.negative_elbo(clean, generator=g_code).sum().item()
    finally:
        if model is not None:
            model.train(was_training)
    out = {k: v / len(images) for k, v in sums.items()}
    out.update(noise=noise, noise_level=level if noise else 0.0, images=len(images))
    return out


def format_table(rows: list[dict]) -> str:
    """Rows {name, code_size, metrics...}; "bytes" is a code's float32 size, '-' for a row whose
    "autoencoder" is False (a U-Net's code alone rebuilds nothing)."""
    head = (f"{'model':28s} {'code':>5s} {'bytes':>6s} {'noise':>17s} {'MSE':>8s} {'PSNR dB':>8s} "
            f"{'SSIM':>6s} {'-ELBO nats':>10s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        noise = ("-" if not r.get("noise") else "blind (a mix)" if r["noise"] == BLIND
                 else f"{r['noise']} {r['noise_level']:g}")
        nelbo = f"{r['nelbo']:10.2f}" if r.get("nelbo") is not None else f"{'-':>10s}"
        size = f"{4 * r['code_size']:6d}" if r.get("autoencoder", True) else f"{'-':>6s}"
        lines.append(f"{r['name'][:28]:28s} {r['code_size']:5d} {size} {noise:>17s} "
                     f"{r['mse']:8.5f} {r['psnr']:8.2f} {r['ssim']:6.3f} {nelbo}")
    return "\n".join(lines)
