"""The interface every autoencoder shares (after pythae): encode, decode, forward,
reconstruct, and a `loss` that training calls, so models differ mostly in their loss."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Autoencoder(nn.Module):
    """Subclasses set `code_size`, an `encoder` (B,1,28,28) -> (B,code_size) and a
    `decoder` (B,code_size) -> (B,1,28,28) logits. `config` (set by the registry) holds
    the keyword arguments that rebuild the model."""

    code_size: int
    config: dict
    name: str

    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's logits for images x: the image through the code (a U-Net's skips go around it)."""
        return self.decoder(self.encode(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction (the VAE decodes its mean), always in [0,1]."""
        return torch.sigmoid(self.logits(x)).clamp(0, 1)

    def objective_name(self, objective: str = "bce") -> str:
        """What `loss` measures, in words (a chart's axis)."""
        return {"bce": "binary cross-entropy per pixel", "mse": "mean squared error per pixel"}[objective]

    def loss(self, x: torch.Tensor, target: torch.Tensor, objective: str = "bce"
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar training loss, reconstruction) for input `x` and clean `target`;
        `objective` is "bce" (pixels as Bernoulli probabilities) or "mse"."""
        logits = self.logits(x)
        # BCE on logits keeps gradients alive where a sigmoid saturates; MSE on a sigmoid
        # output often stalls at the all-black image (test MSE ~0.10) early in training.
        if objective == "bce":
            return bce_with_logits(logits, target, with_probs=True)
        recon = torch.sigmoid(logits)
        return F.mse_loss(recon, target), recon


class _BCEWithLogits(torch.autograd.Function):
    """Binary cross-entropy of logits x against targets y, element by element, and the
    probabilities p = sigmoid(x): max(x, 0) - x y + log(1 + exp(-|x|)), the stable form
    torch also uses, with log(1 + exp(-|x|)) = -log(max(p, 1 - p)); gradient p - y. torch's
    own kernel computes log1p element by element, unvectorised on CPUs: the larger part of
    a training step of the small models. One sigmoid serves the loss, its gradient and the
    reconstruction (the loss differs from torch's by float rounding, about 1e-6)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor):
        p = torch.sigmoid(x)
        ctx.save_for_backward(p, y)
        ctx.mark_non_differentiable(p)
        return x.clamp_min(0).sub_(x * y).sub_(torch.maximum(p, 1 - p).log_()), p

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _grad_p):
        p, y = ctx.saved_tensors
        return (p - y) * grad, None


def bce_with_logits(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
                    with_probs: bool = False):
    """F.binary_cross_entropy_with_logits(logits, target, reduction=...) ("mean", "sum" or
    "none"), computed in fp32 (as autocast runs torch's), several times faster on a CPU;
    `with_probs`: (loss, sigmoid(logits)), the reconstruction at no extra cost."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    loss, probs = _BCEWithLogits.apply(logits.float(), target.float())
    loss = loss if reduction == "none" else loss.mean() if reduction == "mean" else loss.sum()
    return (loss, probs) if with_probs else loss


# Images per call when a whole set goes through a model. At 1000, a 128-channel 28x28
# activation is 400 MB, a fresh mapping of memory the kernel zeroes page by page: a third of
# the CPU time went to page faults. At 128 the 10 shipped models reconstruct the test set in
# 32 s instead of 44 (channels-last), bit for bit the same images.
BATCH = 128


@torch.no_grad()
def in_batches(fn, items: torch.Tensor, batch: int = BATCH) -> torch.Tensor:
    """fn applied to `items` `batch` at a time, concatenated: how a whole set of images or
    codes goes through encode, decode or reconstruct without one huge allocation."""
    return torch.cat([fn(chunk) for chunk in items.split(batch)])


def check_convs(name: str, convs, lo: int = 1) -> None:
    """A count of convolutions per block: a whole number from `lo` to 4."""
    if not isinstance(convs, int) or isinstance(convs, bool) or not lo <= convs <= 4:
        raise ValueError(f"{name} must be a whole number from {lo} to 4, got {convs!r}")


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
