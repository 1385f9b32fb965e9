"""A denoiser that is not an autoencoder: a U-Net (Ronneberger, Fischer & Brox, 2015).

Three resolutions (28, 14, 7) of two 3x3 convolutions with `width`, 2 and 4 times `width`
channels; max-pooling down, nearest-neighbour upsampling up, and each level's features
concatenated into the way up at the same resolution: the skip connections. At the bottom a
dense code of `code_size` numbers (the 7x7 features squeezed to `squeeze` channels, a linear
layer to the code and back) is added to what goes up, so every output pixel can depend on
the whole digit as an autoencoder's do, while the skips carry the local detail around it.
Three options deepen it: `inner_convs` convolutions per block at 14x14 and 7x7, where a 3x3
convolution sees more of the digit (it costs what one at 28x28 does: the channels double as
the side halves), `outer_convs` per block at 28x28 (few weights, the most pixels), and
`batch_norm` after each convolution (Ioffe & Szegedy, 2015), as DnCNN's Gaussian denoiser has
it (Zhang et al., 2017). The shipped U-Nets use inner_convs and batch_norm, the Gaussian one
outer_convs too (sweeps/shipped.toml says what each gained; sweeps/unet-probe.toml compares the
levers on short runs).

That is the lesson it teaches beside the autoencoders: with the skips, the image does not
have to pass through the code, so it denoises better than any autoencoder here
(docs/BENCHMARKS.md, sections 11 and 13), and for the same reason it compresses nothing and
cannot rebuild a digit from its code alone (`decode` refuses). Trained without noise it would
learn to copy its input, so it trains only as a denoiser (aecore.models.training_error).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Autoencoder, check_convs, check_positive

# the code block's layers up to and including the code: conv 1x1, ReLU, flatten, linear, ReLU
_CODE_END = 5


def _block(c_in: int, c_out: int, convs: int = 2, batch_norm: bool = False) -> nn.Sequential:
    """`convs` 3x3 convolutions, each followed by a ReLU (and batch norm before it): with the
    defaults, exactly the layers (and state-dict keys) of the first shipped U-Net."""
    layers = []
    for i in range(convs):
        layers.append(nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=not batch_norm))
        layers += [nn.BatchNorm2d(c_out), nn.ReLU()] if batch_norm else [nn.ReLU()]
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """(B,1,28,28) -> logits (B,1,28,28). `code` 0: no dense code at the bottom (a plain
    U-Net, docs/BENCHMARKS.md section 11)."""

    def __init__(self, width: int, code: int = 0, squeeze: int = 16, inner_convs: int = 2,
                 batch_norm: bool = False, outer_convs: int = 2):
        super().__init__()
        w, n, m, bn = width, inner_convs, outer_convs, batch_norm
        self.down1, self.down2, self.bottom = _block(1, w, m, bn), _block(w, 2 * w, n, bn), _block(2 * w, 4 * w, n, bn)
        if code:   # built between the bottom and the way up: a seed builds the same weights as without it up to here
            self.code = nn.Sequential(
                nn.Conv2d(4 * w, squeeze, 1), nn.ReLU(), nn.Flatten(), nn.Linear(squeeze * 49, code), nn.ReLU(),
                nn.Linear(code, squeeze * 49), nn.ReLU(), nn.Unflatten(1, (squeeze, 7, 7)),
                nn.Conv2d(squeeze, 4 * w, 1))
        self.up2, self.up1 = _block(4 * w + 2 * w, 2 * w, n, bn), _block(2 * w + w, w, m, bn)
        self.out = nn.Conv2d(w, 1, 1)
        self.pool, self.upsample = nn.MaxPool2d(2), nn.Upsample(scale_factor=2)

    def down(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = self.down1(x)
        b = self.down2(self.pool(a))
        return a, b, self.bottom(self.pool(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c = self.down(x)
        if hasattr(self, "code"):
            c = torch.relu(c + self.code(c))
        d = self.up2(torch.cat([self.upsample(c), b], 1))
        return self.out(self.up1(torch.cat([self.upsample(d), a], 1)))

    def code_of(self, x: torch.Tensor) -> torch.Tensor:
        """The dense code (B, code) of images x (B, 0 without one)."""
        c = self.down(x)[2]
        return self.code[:_CODE_END](c) if hasattr(self, "code") else c.new_zeros(len(c), 0)


class UNetDenoiser(Autoencoder):
    """The U-Net in the Autoencoder interface, so the trainer, evaluate, checkpoints and the
    Denoise page take it as they are: `reconstruct` and `loss` run the whole network,
    `encode` gives its dense code, and `decode` refuses (the skips are not in the code).
    The network is the `decoder` (the trainer starts its last layer's bias at the mean
    pixel, as for every model); the encoder passes the image through."""

    def __init__(self, *, code_size: int = 256, width: int = 32, squeeze: int = 16, inner_convs: int = 2,
                 batch_norm: bool = False, outer_convs: int = 2):
        super().__init__()
        check_positive(width=width, squeeze=squeeze)
        check_convs("inner_convs", inner_convs)
        check_convs("outer_convs", outer_convs)
        if not isinstance(batch_norm, bool):
            raise ValueError(f"batch_norm must be true or false, got {batch_norm!r}")
        if not isinstance(code_size, int) or isinstance(code_size, bool) or code_size < 0:
            raise ValueError(f"code_size must be a whole number (0: no dense code), got {code_size!r}")
        self.code_size = code_size
        self.encoder = nn.Identity()
        self.decoder = UNet(width, code_size, squeeze, inner_convs, batch_norm, outer_convs)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder.code_of(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("a U-Net cannot rebuild a digit from its code alone: its skip connections "
                                  "carry the image's detail around the code")
