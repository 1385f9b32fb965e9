"""Checkerboard artifacts of transpose-convolution decoders, measured.

Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016: a
transposed convolution whose kernel size is not a multiple of its stride overlaps
unevenly. With kernel 2 and stride 2 (the course decoder) nothing overlaps: every output
pixel comes from exactly one kernel position, so each 2x2 output block is the kernels
scaled by one input position's values, and that tiling imprints a periodic pattern.
Resizing then convolving gives every output pixel the same kind of contributions.

Two numbers, for two faces of the pattern. Images are (...,H,W), H and W multiples of
the period p (2 by default; 4 is the first of the course decoder's two layers).

Checkerboard share: a fixed periodic pattern added to the image.
    P e     = the orthogonal projection of e onto the p-periodic images: each pixel
              replaced by the mean of all pixels with the same (row mod p, col mod p)
    C e     = P e - mean(e)      (the periodic part without its constant)
    share   = ||C e||^2 / ||e||^2          in [0, 1]
  By Parseval, for p=2 this is the share of e's power at the three Nyquist frequencies
  (pi,0), (0,pi), (pi,pi) of its 2-D DFT. A pure 2x2 checkerboard scores 1, a smooth
  error ~0, white noise (p*p - 1)/(H*W) on average (3/784 = 0.0038 for 28x28, p=2).
  Applied to reconstruction errors, per image and to the mean error over a test set.

Grid ratio: blocks whose pattern changes from block to block, which the share cannot
see (it averages the pattern over the whole image). d[k] = mean |difference| between
adjacent pixels whose first pixel has index k mod p (rows and columns); the pairs with
k = p-1 straddle the block edges. grid ratio = d[p-1] / mean(d[:p-1]): ~1 for
anything that does not know the grid (MNIST test digits: 1.00 for p=2), > 1 when
values jump at block edges, as with a transposed convolution's output blocks.
"""
from __future__ import annotations

import torch

from .latent import decode, encode_all


def check_period(shape, period: int) -> tuple[int, int]:
    h, w = shape[-2:]
    if period < 2 or h % period or w % period:
        raise ValueError(f"period must be >= 2 and divide the image size {h}x{w}, got {period}")
    return h, w


def periodic_component(e: torch.Tensor, period: int = 2) -> torch.Tensor:
    """C e: the p-periodic part of each image minus its mean, same shape as e (...,H,W)."""
    h, w = check_period(e.shape, period)
    blocks = e.reshape(*e.shape[:-2], h // period, period, w // period, period)
    phase_means = blocks.mean(dim=(-4, -2), keepdim=True)          # (..., 1,p,1,p)
    tiled = phase_means.expand_as(blocks).reshape(e.shape)
    return tiled - e.mean(dim=(-2, -1), keepdim=True)


def checkerboard_share(e: torch.Tensor, period: int = 2, centre: bool = False) -> torch.Tensor:
    """||C e||^2 / ||e||^2 per image: (...,H,W) -> (...); 0 where e is all zero.
    `centre` subtracts each image's mean first: for a decoded image rather than an error,
    whose large mean would otherwise swamp the score."""
    e = e.double()
    if centre:
        e = e - e.mean(dim=(-2, -1), keepdim=True)
    num = periodic_component(e, period).pow(2).sum(dim=(-2, -1))
    den = e.pow(2).sum(dim=(-2, -1))
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(den))


def checkerboard_power(e: torch.Tensor, period: int = 2) -> torch.Tensor:
    """Mean squared value per pixel of C e (same units as MSE): (...,H,W) -> (...)."""
    return periodic_component(e.double(), period).pow(2).mean(dim=(-2, -1))


def neighbour_differences(x: torch.Tensor, period: int = 2) -> torch.Tensor:
    """Mean |difference| between horizontally and vertically adjacent pixels, grouped by the
    phase (index mod period) of the pair's first pixel: (...,H,W) -> (...,period). Pairs
    wrap around (the last column pairs with the first), so every phase has as many pairs
    and a shifted image permutes the phases exactly."""
    h, w = check_period(x.shape, period)
    dh = (x.roll(-1, -1) - x).abs().reshape(*x.shape[:-1], w // period, period)
    dv = (x.roll(-1, -2) - x).abs().reshape(*x.shape[:-2], h // period, period, w)
    return (dh.mean(dim=(-3, -2)) + dv.mean(dim=(-3, -1))) / 2


def grid_ratio(x: torch.Tensor, period: int = 2) -> torch.Tensor:
    """How much larger the jumps are across the edges of period x period blocks (the
    output blocks of a stride-`period` transposed convolution) than inside the blocks:
    d[period-1] / mean(d[:period-1]) of `neighbour_differences`, (...,H,W) -> (...).
    inf for constant blocks; 1 for an all-flat image. For a set of images pool the
    differences first (`grid_ratio_of`) rather than averaging per-image ratios."""
    return _ratio(neighbour_differences(x.double(), period))


def _ratio(d: torch.Tensor) -> torch.Tensor:
    across, inside = d[..., -1], d[..., :-1].mean(-1)
    return torch.where(inside > 0, across / inside.clamp_min(1e-300),
                       torch.where(across > 0, torch.inf, 1.0))


def grid_ratio_of(images: torch.Tensor, period: int = 2) -> float:
    """grid_ratio of a whole batch (...,H,W): the phase differences pooled over all images."""
    d = neighbour_differences(images.double(), period)
    return _ratio(d.reshape(-1, period).mean(0)).item()


def signed_to_unit(e: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """A signed error image -> [0,1] for display: 0.5 is zero error, 0 and 1 are -scale
    and +scale (default the largest |e|, so a faint pattern fills the grey range)."""
    scale = e.abs().max().item() if scale is None else scale
    return (0.5 + 0.5 * e / max(scale, 1e-12)).clamp(0, 1)


@torch.no_grad()
def error_report(model, images: torch.Tensor, batch: int = 1000) -> dict:
    """`model`'s reconstructions of `images` (N,1,28,28), summarised:
    mse               mean per-pixel squared error
    share             mean over images of checkerboard_share(error)
    power             mean over images of checkerboard_power(error)
    mean_error        the mean signed error image (28,28) (reconstruction - input)
    share_of_mean     checkerboard_share(mean_error): the decoder's fixed pattern
    grid2, grid4      grid_ratio of the reconstructions, pooled, for 2- and 4-pixel blocks
                      (the course decoder's last and first transposed convolution)
    """
    sq = share = power = 0.0
    total = torch.zeros(28, 28, dtype=torch.float64)
    diffs = {p: torch.zeros(p, dtype=torch.float64) for p in (2, 4)}
    for x in images.split(batch):
        recon = model.reconstruct(x).reshape(-1, 28, 28).double()
        e = recon - x.reshape(-1, 28, 28)
        sq += e.pow(2).mean(dim=(1, 2)).sum().item()
        share += checkerboard_share(e).sum().item()
        power += checkerboard_power(e).sum().item()
        total += e.sum(0)
        for p in diffs:
            diffs[p] += neighbour_differences(recon, p).sum(0)
    n = len(images)
    mean_error = (total / n).float()
    return {"mse": sq / n, "share": share / n, "power": power / n, "mean_error": mean_error,
            "share_of_mean": checkerboard_share(mean_error).item(), "images": n,
            **{f"grid{p}": _ratio(d / n).item() for p, d in diffs.items()}}


def random_codes(codes: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n codes whose every dimension is drawn independently from that dimension's values
    in `codes` (N,D): plausible ranges (a ReLU code stays >= 0) but no real digit."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(len(codes), (n, codes.shape[1]), generator=g)      # (n,D)
    return torch.gather(codes, 0, rows)


def decoder_response(model, images: torch.Tensor, n: int = 8, seed: int = 0) -> torch.Tensor:
    """The decoder's output for n random codes (see random_codes) built from the codes of
    `images`: (n,1,28,28) in [0,1]."""
    return decode(model, random_codes(encode_all(model, images), n, seed))
