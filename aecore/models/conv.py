"""Convolutional autoencoders.

`ConvAutoencoder` is the course model: its decoder is two ConvTranspose2d with kernel 2,
stride 2. `UpsampleConvAutoencoder` resizes then convolves instead, the fix for
checkerboard artifacts (Odena, Dumoulin & Olah, "Deconvolution and Checkerboard
Artifacts", Distill 2016), and squeezes the image into a dense code of any size.
"""
from __future__ import annotations

from torch import nn

from .base import Autoencoder, check_positive


class ConvAutoencoder(Autoencoder):
    """conv 1->16, pool, conv 16->c, pool; ConvTranspose c->16 and 16->1 (k2 s2); sigmoid.
    The code is the (c,7,7) feature map, flattened: code_size = 49 c (course: c=4, 196)."""

    def __init__(self, *, code_size: int = 196):
        super().__init__()
        check_positive(code_size=code_size)
        if code_size % 49:
            raise ValueError(f"conv code_size must be a multiple of 49 (channels x 7 x 7), got {code_size}")
        c = code_size // 49
        self.code_size = code_size
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (B,16,14,14)
            nn.Conv2d(16, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (B,c,7,7)
            nn.Flatten())
        self.decoder = nn.Sequential(
            nn.Unflatten(1, (c, 7, 7)),
            nn.ConvTranspose2d(c, 16, 2, stride=2), nn.ReLU(),            # (B,16,14,14)
            nn.ConvTranspose2d(16, 1, 2, stride=2))                       # (B,1,28,28) logits


def conv_encoder(width: int, code_size: int) -> nn.Sequential:
    """(B,1,28,28) -> (B,code_size): two strided convolutions, then a linear layer."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, stride=2, padding=1), nn.ReLU(),              # (B,w,14,14)
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),      # (B,2w,7,7)
        nn.Flatten(), nn.Linear(2 * width * 49, code_size))


def upsample_decoder(width: int, code_size: int, mode: str = "nearest") -> nn.Sequential:
    """(B,code_size) -> (B,1,28,28) logits: linear to (2w,7,7), then twice resize x2 and
    3x3 convolutions, so every output pixel gets the same number of contributions."""
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    w = width
    up = dict(scale_factor=2, mode=mode) | ({} if mode == "nearest" else {"align_corners": False})
    return nn.Sequential(
        nn.Linear(code_size, 2 * w * 49), nn.ReLU(), nn.Unflatten(1, (2 * w, 7, 7)),
        nn.Upsample(**up), nn.Conv2d(2 * w, w, 3, padding=1), nn.ReLU(),         # (B,w,14,14)
        nn.Conv2d(w, w, 3, padding=1), nn.ReLU(),
        nn.Upsample(**up), nn.Conv2d(w, max(w // 2, 1), 3, padding=1), nn.ReLU(),  # (B,w/2,28,28)
        nn.Conv2d(max(w // 2, 1), 1, 3, padding=1))


class UpsampleConvAutoencoder(Autoencoder):
    """Strided-conv encoder to a dense code of any size; upsample + conv decoder."""

    def __init__(self, *, code_size: int = 32, width: int = 24, mode: str = "nearest"):
        super().__init__()
        check_positive(code_size=code_size, width=width)
        self.code_size = code_size
        self.encoder = conv_encoder(width, code_size)
        self.decoder = upsample_decoder(width, code_size, mode)
