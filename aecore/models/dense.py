"""Fully connected autoencoders: the course's one-layer model and a deeper one
(784-1000-500-250-code, the shape of Hinton & Salakhutdinov, Science 2006)."""
from __future__ import annotations

from torch import nn

from .base import Autoencoder, check_positive


class DenseAutoencoder(Autoencoder):
    def __init__(self, *, code_size: int = 32, hidden: tuple[int, ...] = (1000, 500, 250),
                 code_activation: str = "linear"):
        super().__init__()
        hidden = tuple(hidden)
        check_positive(code_size=code_size, **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
        if code_activation not in ("linear", "relu"):
            raise ValueError(f"code_activation must be 'linear' or 'relu', got {code_activation!r}")
        self.code_size = code_size
        sizes = (784, *hidden, code_size)
        enc = [layer for a, b in zip(sizes, sizes[1:]) for layer in (nn.Linear(a, b), nn.ReLU())]
        if code_activation == "linear":
            enc.pop()
        dec = [layer for a, b in zip(sizes[::-1], sizes[-2::-1]) for layer in (nn.Linear(a, b), nn.ReLU())]
        dec.pop()  # logits
        self.encoder = nn.Sequential(nn.Flatten(), *enc)
        self.decoder = nn.Sequential(*dec, nn.Unflatten(1, (1, 28, 28)))
