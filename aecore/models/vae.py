"""Variational autoencoder (Kingma & Welling, 2014): the encoder gives a Gaussian
q(z|x) = N(mu, sigma^2), the decoder a Bernoulli image; trained on the negative ELBO.
A 2-D code can be plotted directly."""
from __future__ import annotations

import torch

from .base import Autoencoder, bce_with_logits, check_positive
from .conv import conv_encoder, upsample_decoder


class VAE(Autoencoder):
    def __init__(self, *, code_size: int = 16, width: int = 24, beta: float = 1.0,
                 encoder_convs: int = 1, decoder_convs: int = 1):
        super().__init__()
        check_positive(code_size=code_size, width=width)
        if not (isinstance(beta, (int, float)) and beta >= 0):
            raise ValueError(f"beta must be a non-negative number, got {beta!r}")
        self.code_size, self.beta, w = code_size, float(beta), width
        self.to_stats = conv_encoder(w, 2 * code_size, encoder_convs)               # (mu, log sigma^2)
        self.decoder = upsample_decoder(w, code_size, convs=decoder_convs)         # logits

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

    def elbo_terms(self, x, target, generator: torch.Generator | None = None):
        """Per image (B,): the reconstruction term -log p(target|z) in nats for one code z
        sampled from q(z|x), and KL(q(z|x) || N(0, I)) in nats; and the logits decoded from z."""
        mu, logvar = (t.float() for t in self.encode_stats(x))   # fp32 under a bf16 autocast too
        eps = torch.randn_like(mu) if generator is None else torch.randn(mu.shape, generator=generator).to(mu)
        logits = self.decoder(mu + eps * (0.5 * logvar).exp())
        nll = bce_with_logits(logits, target, reduction="none").flatten(1).sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        return nll, kl, logits

    def loss(self, x, target, objective="bce"):  # the ELBO fixes the objective
        nll, kl, logits = self.elbo_terms(x, target)
        return (nll + self.beta * kl).mean() / 784, torch.sigmoid(logits)   # per pixel, batch mean

    @torch.no_grad()
    def negative_elbo(self, x, target=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """The negative ELBO of each image (B,) in nats (beta = 1, one sampled code): the
        figure the VAE literature reports on MNIST, an upper bound on -log p(x)."""
        nll, kl, _ = self.elbo_terms(x, x if target is None else target, generator)
        return nll + kl

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n new digits decoded from the prior N(0, I)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.code_size, generator=generator).to(device)
        return self.decode(z)
