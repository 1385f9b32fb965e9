"""Variational autoencoder (Kingma & Welling, 2014): the encoder gives a Gaussian
q(z|x) = N(mu, sigma^2), the decoder a Bernoulli image; trained on the negative ELBO.
A 2-D code can be plotted directly."""
from __future__ import annotations

import torch

from .base import Autoencoder, bce_with_logits, check_positive
from .conv import conv_encoder, upsample_decoder


class VAE(Autoencoder):
    def __init__(self, *, code_size: int = 16, width: int = 24, beta: float = 1.0):
        super().__init__()
        check_positive(code_size=code_size, width=width)
        if not (isinstance(beta, (int, float)) and beta >= 0):
            raise ValueError(f"beta must be a non-negative number, got {beta!r}")
        self.code_size, self.beta, w = code_size, float(beta), width
        self.to_stats = conv_encoder(w, 2 * code_size)          # (mu, log sigma^2)
        self.decoder = upsample_decoder(w, code_size)             # logits

    def encode_stats(self, x):
        mu, logvar = self.to_stats(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def encode(self, x):
        return self.encode_stats(x)[0]

    def forward(self, x):
        mu, logvar = self.encode_stats(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decode(z)

    def objective_name(self, objective="bce"):
        return "negative ELBO per pixel (reconstruction + KL, nats / 784)"

    def loss(self, x, target, objective="bce"):  # the ELBO fixes the objective
        mu, logvar = (t.float() for t in self.encode_stats(x))   # fp32 under a bf16 autocast too
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        logits = self.decoder(z)
        # per image: reconstruction NLL + beta KL(q(z|x) || N(0, I)), averaged over the batch
        nll = bce_with_logits(logits, target, reduction="sum") / len(x)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
        return (nll + self.beta * kl) / 784, torch.sigmoid(logits)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n new digits decoded from the prior N(0, I)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.code_size, generator=generator).to(device)
        return self.decode(z)
