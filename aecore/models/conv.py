"""Convolutional autoencoders.

`ConvAutoencoder` is the course model: its decoder is two ConvTranspose2d with kernel 2,
stride 2. `UpsampleConvAutoencoder` resizes then convolves instead, the fix for
checkerboard artifacts (Odena, Dumoulin & Olah, "Deconvolution and Checkerboard
Artifacts", Distill 2016), and squeezes the image into a dense code of any size. Its
`upsample` option swaps each resize + convolution for a transposed convolution of kernel
2, 3 or 4 (stride 2) and keeps everything else, so the checkerboard page can compare
the ways of doubling the resolution on otherwise identical decoders.
"""
from __future__ import annotations

from torch import nn

from .base import Autoencoder, check_convs, check_positive


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


def conv_encoder(width: int, code_size: int, convs: int = 1, full_res: int = 0) -> nn.Sequential:
    """(B,1,28,28) -> (B,code_size): `full_res` 3x3 convolutions at 28x28 (w/2 channels; 0:
    none, the input goes straight to the first stride), two strided convolutions, each
    followed by `convs` - 1 more 3x3 convolutions at its resolution (more nonlinear steps
    before the code: what a denoiser of heavy noise needs), then a linear layer."""
    check_convs("encoder_convs", convs)
    check_convs("full_res_convs", full_res, lo=0)
    half = max(width // 2, 1)
    stem = [m for i in range(full_res) for m in (nn.Conv2d(1 if i == 0 else half, half, 3, padding=1), nn.ReLU())]
    return nn.Sequential(
        *stem,                                                                                            # (B,w/2,28,28)
        nn.Conv2d(half if full_res else 1, width, 3, stride=2, padding=1), nn.ReLU(), *_extra_convs(width, convs),  # (B,w,14,14)
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(), *_extra_convs(2 * width, convs),  # (B,2w,7,7)
        nn.Flatten(), nn.Linear(2 * width * 49, code_size))


def _extra_convs(channels: int, convs: int) -> list[nn.Module]:
    """`convs` - 1 pairs of (3x3 convolution at `channels`, ReLU)."""
    return [m for _ in range(convs - 1) for m in (nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())]


UPSAMPLES = ("resize", "transpose2", "transpose3", "transpose4")
# transposed convolution k, stride 2: padding and output_padding that double the size exactly
_TRANSPOSE = {2: (0, 0), 3: (1, 1), 4: (1, 0)}


def upsample_x2(c_in: int, c_out: int, upsample: str, mode: str) -> list[nn.Module]:
    """Double the resolution, c_in -> c_out channels: resize then 3x3 convolution (every
    output pixel gets 9 taps), or one transposed convolution with kernel k, stride 2:
    k=2 no overlap (2x2 blocks), k=3 uneven overlap (1, 2 or 4 taps by pixel phase),
    k=4 even overlap (4 taps everywhere)."""
    if upsample == "resize":
        up = dict(scale_factor=2, mode=mode) | ({} if mode == "nearest" else {"align_corners": False})
        return [nn.Upsample(**up), nn.Conv2d(c_in, c_out, 3, padding=1)]
    k = int(upsample[-1])
    padding, output_padding = _TRANSPOSE[k]
    return [nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=padding, output_padding=output_padding)]


def upsample_decoder(width: int, code_size: int, mode: str = "nearest", upsample: str = "resize",
                     convs: int = 1, full_res: int = 0) -> nn.Sequential:
    """(B,code_size) -> (B,1,28,28) logits: linear to (2w,7,7), then twice double the
    resolution (`upsample_x2`) with a 3x3 convolution between. Resize: resize + conv
    w -> w/2, then a 3x3 conv to the output. Transposed: the second transposed convolution
    paints the output itself (w -> 1), as the course decoder's last layer does, so
    what its overlap does to the pixels is not smoothed away. `convs` - 1 more 3x3
    convolutions at 7x7 and at 14x14 mirror the encoder's `convs` (a deeper decoder), and
    `full_res` more at 28x28 (w/2 channels) the encoder's (resize only)."""
    check_convs("decoder_convs", convs)
    check_convs("full_res_convs", full_res, lo=0)
    if full_res and upsample != "resize":
        raise ValueError("full_res_convs needs upsample='resize' (a transposed convolution paints the output itself)")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    if upsample not in UPSAMPLES:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLES)}, got {upsample!r}")
    w, half = width, max(width // 2, 1)
    # layers are built in order: a seed gives the same initial weights as before the option
    layers = [nn.Linear(code_size, 2 * w * 49), nn.ReLU(), nn.Unflatten(1, (2 * w, 7, 7)),
              *_extra_convs(2 * w, convs),
              *upsample_x2(2 * w, w, upsample, mode), nn.ReLU(),                  # (B,w,14,14)
              nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), *_extra_convs(w, convs)]
    if upsample == "resize":
        layers += [*upsample_x2(w, half, upsample, mode), nn.ReLU(), *_extra_convs(half, full_res + 1),
                   nn.Conv2d(half, 1, 3, padding=1)]
    else:
        layers += upsample_x2(w, 1, upsample, mode)                               # (B,1,28,28)
    return nn.Sequential(*layers)


class UpsampleConvAutoencoder(Autoencoder):
    """Strided-conv encoder to a dense code of any size; upsample + conv decoder
    (`upsample`: "resize", or "transpose2|3|4" for a transposed convolution of that kernel;
    `encoder_convs`, `decoder_convs`: 3x3 convolutions per resolution in the encoder, decoder;
    `full_res_convs`: 3x3 convolutions at full resolution in each, before the encoder's first
    stride and before the decoder's output, where a denoiser sees single noisy pixels)."""

    def __init__(self, *, code_size: int = 32, width: int = 24, mode: str = "nearest",
                 upsample: str = "resize", encoder_convs: int = 1, decoder_convs: int = 1,
                 full_res_convs: int = 0):
        super().__init__()
        check_positive(code_size=code_size, width=width)
        self.code_size = code_size
        self.encoder = conv_encoder(width, code_size, encoder_convs, full_res_convs)
        self.decoder = upsample_decoder(width, code_size, mode, upsample, decoder_convs, full_res_convs)
