"""Checkerboard artifacts of transpose-convolution decoders, measured.

The study (what the checkerboard page shows): four decoders that differ only in how they
double the resolution (aecore.models.conv, option `upsample`): transposed convolution
with kernel 3, stride 2 (uneven overlap: an output pixel gets 1, 2 or 4 kernel taps by
its position in its 2x2 cell), kernel 4 (even overlap: 4 taps everywhere), kernel 2 (no
overlap: 2x2 blocks, the course's), and nearest resize + 3x3 convolution. They are shown
freshly initialised (`fresh_decoders`, fixed seeds) and trained briefly (shipped in
weights/checkerboard/, `study_models`).

Phase ratio (`phase_ratio`), the page's checkerboard measure: the output's variance at
each of the four positions of a 2x2 cell, pooled over many images,
    v[a,b] = mean over images and cells of (y[2i+a, 2j+b] - mean(y))^2
    phase ratio = max v / min v      (1 when every position is treated alike)
Uneven overlap paints some positions more often than their neighbours, so they come out
systematically louder; a digit does not know the grid (test digits: 1.0x).

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

import math

import torch

from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError
from .latent import decode, encode_all
from .models import create_model, in_batches

# the study's decoders (aecore.models.conv `upsample` values), worst to best as the eye sees them
STUDY = {"transpose3": "transposed convolution, kernel 3, stride 2: uneven overlap",
         "transpose4": "transposed convolution, kernel 4, stride 2: even overlap",
         "transpose2": "transposed convolution, kernel 2, stride 2: no overlap (the course's)",
         "resize": "nearest resize ×2, then 3×3 convolution"}
STUDY_CONFIG = {"code_size": 32, "width": 16}    # as trained by scripts/train-weights.sh
STUDY_FOLDER = "checkerboard"                    # under weights/, with its own manifest.json


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


def phase_energy(y: torch.Tensor, period: int = 2) -> torch.Tensor:
    """v[a,b]: mean squared deviation from each image's mean at the pixels with
    (row mod p, col mod p) = (a,b), pooled over the batch: (...,H,W) -> (p,p)."""
    h, w = check_period(y.shape, period)
    y = y.double().reshape(-1, h, w)
    d = (y - y.mean(dim=(-2, -1), keepdim=True)).pow(2)
    return d.reshape(-1, h // period, period, w // period, period).mean(dim=(0, 1, 3))


def phase_ratio(y: torch.Tensor, period: int = 2) -> float:
    """max / min of phase_energy: 1 when no position of the p x p cell is louder (inf when
    one position never varies while another does, 1 for a constant batch)."""
    return _ratio_of(phase_energy(y, period).flatten())


def _ratio_of(v: torch.Tensor) -> float:
    top, low = v.max().item(), v.min().item()
    return top / low if low > 0 else (math.inf if top > 0 else 1.0)


def fresh_decoder(upsample: str, seed: int):
    """A freshly initialised study model (torch.manual_seed(seed) first): deterministic."""
    torch.manual_seed(seed)
    return create_model("conv_upsample", upsample=upsample, **STUDY_CONFIG).eval()


@torch.no_grad()
def fresh_study(n: int = 64, seeds=range(32), code_seed: int = 0) -> dict:
    """Every study decoder, freshly initialised with each seed, decoding the same n codes
    drawn from N(0,1): {upsample: {"outputs": (n,28,28) of the first seed, "ratios": the
    phase ratio of each seed, "ratio": their median}}. One initialisation is a random draw
    (a kernel's taps may happen to be balanced, or not), so the figure is the median over
    seeds: with 8 the order of the three transposed ones still changes with the seeds, with
    32 it did not on three disjoint sets (tests/test_checkerboard.py)."""
    codes = torch.randn(n, STUDY_CONFIG["code_size"], generator=torch.Generator().manual_seed(code_seed))
    out = {}
    for upsample in STUDY:
        outputs = [fresh_decoder(upsample, s).decode(codes)[:, 0] for s in seeds]
        ratios = [phase_ratio(y) for y in outputs]
        out[upsample] = {"outputs": outputs[0], "ratios": ratios, "ratio": float(np.median(ratios))}
    return out


def study_models(weights: Path) -> tuple[dict, list[str]]:
    """The trained study decoders in `weights`/checkerboard: ({upsample: model}, [problems]).
    A missing folder, manifest or file is a problem to report, never an exception."""
    from .shipped import shipped_models
    try:
        shipped = shipped_models(Path(weights) / STUDY_FOLDER)
    except CheckpointError as e:
        return {}, [str(e)]
    models, problems = {}, [f"{s.name}: {s.error}" for s in shipped if s.model is None]
    for s in shipped:
        upsample = (s.model.config.get("upsample") if s.model is not None else None)
        if upsample in STUDY and upsample not in models:
            models[upsample] = s.model
    problems += [f"no trained {u} decoder in {Path(weights) / STUDY_FOLDER}" for u in STUDY
                 if u not in models and not any(p.startswith(f"{u}-") for p in problems)]
    return {u: models[u] for u in STUDY if u in models}, problems


@torch.no_grad()
def trained_report(model, images: torch.Tensor, batch: int = 1000) -> dict:
    """A trained model on `images` (N,1,28,28): mse, phase ratio and grid ratio (2x2
    blocks) of its reconstructions."""
    recon = in_batches(model.reconstruct, images, batch)[:, 0]
    return {"mse": (recon - images[:, 0]).pow(2).mean().item(), "phase": phase_ratio(recon),
            "grid": grid_ratio_of(recon, 2), "images": len(images)}


def stretch(y: torch.Tensor) -> torch.Tensor:
    """Each image (...,H,W) scaled to fill [0,1] (an untrained decoder's output is a faint
    texture around 0.5): for display only."""
    low = y.amin(dim=(-2, -1), keepdim=True)
    span = (y.amax(dim=(-2, -1), keepdim=True) - low).clamp_min(1e-12)
    return (y - low) / span


def image_strip(images, scale: int = 4, gap: int = 2) -> np.ndarray:
    """(n,28,28) (or (n,1,28,28)) in [0,1] -> one uint8 picture, the images side by side,
    each enlarged `scale` times with nearest neighbours, `gap` grey pixels between: one
    image element instead of n columns, so a narrow screen keeps it on one line."""
    a = torch.as_tensor(images).detach().float().reshape(-1, 28, 28).clamp(0, 1).numpy()
    big = np.kron((a * 255).round().astype(np.uint8), np.ones((scale, scale), np.uint8))
    n, h, w = big.shape
    out = np.full((h, n * w + (n - 1) * gap), 128, np.uint8)
    for i, tile in enumerate(big):
        out[:, i * (w + gap):i * (w + gap) + w] = tile
    return out
