"""A rate–distortion-trained codec (Ballé et al. 2017, factorized prior) for MNIST digits.

The transforms: an analysis transform (convolutions, 28x28 -> a C x 7 x 7 latent y) and a
light synthesis transform (3x3 convolutions at 7x7, then two pixel shuffles to 28x28), so
that decoding 10,000 digits stays cheap. One model serves a ladder of rates (variable rate
by gain vectors, after Cui et al. 2021): for level k the latent is scaled by gain[k], each
scalar is rounded around its median, and the synthesis sees the symbols scaled back by
igain[k]. Trained on distortion + λ_k · rate with CompressAI's EntropyBottleneck (one
learned density per latent position and channel, per level: `python -m aecore.codec_train`);
its `update()` quantises each density into an integer CDF table (16-bit precision). Only
those tables ship (in the checkpoint, with the transforms): coding needs no CompressAI, the
tables feed constriction's range coder, deterministic integer arithmetic on both sides.

This module never imports compressai (8+ s to import, with torch-geometric & co.).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

NAME = "rd_codec"
SIDE = 7                      # the latent's height and width
CDF_PRECISION = 16            # CompressAI's quantised CDFs sum to 2**16
MAX_TABLE = 4096              # longest CDF a checkpoint may hold (a reader's bound)
# λ in bits per unit of squared error (pixels in [0,1], summed over a digit's 784 pixels)
DEFAULT_LAMBDAS = (15.0, 50.0, 150.0, 450.0, 1400.0, 4500.0)


def analysis(channels: int, width: int) -> nn.Sequential:
    """(B,1,28,28) -> y (B,channels,7,7)."""
    return nn.Sequential(
        nn.Conv2d(1, width // 2, 5, stride=2, padding=2), nn.ReLU(),       # 14x14
        nn.Conv2d(width // 2, width, 5, stride=2, padding=2), nn.ReLU(),  # 7x7
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, channels, 3, padding=1))


def synthesis(channels: int, width: int, fine: int = 16) -> nn.Sequential:
    """y_hat (B,channels,7,7) -> logits (B,1,28,28); the heavy work at 7x7, then `fine`
    channels at 14x14 (what the finest detail, and so the top of the rate ladder, has)."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 1), nn.ReLU(inplace=True),
        nn.Conv2d(width, 4 * fine, 1), nn.PixelShuffle(2), nn.ReLU(inplace=True),   # (fine,14,14)
        nn.Conv2d(fine, fine, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(fine, 4, 3, padding=1), nn.PixelShuffle(2))           # (1,28,28)


class RDCodec(nn.Module):
    """The transforms and gains; `tables` (set after training) are the integer CDFs."""

    name = NAME

    def __init__(self, *, channels: int = 16, width: int = 64, lambdas=DEFAULT_LAMBDAS, fine: int = 16):
        super().__init__()
        if not (1 <= channels <= 64 and 8 <= width <= 256 and width % 2 == 0 and 4 <= fine <= 128):
            raise ValueError(f"channels 1..64, an even width 8..256 and fine 4..128 expected, "
                             f"got {channels}, {width}, {fine}")
        lambdas = [float(v) for v in lambdas]
        if not 1 <= len(lambdas) <= 16 or not all(0 < v < 1e7 for v in lambdas):
            raise ValueError(f"1 to 16 positive lambdas expected, got {lambdas}")
        # "fine" is recorded only where it is not the 16 that codecs had before it was an option
        self.config = {"channels": channels, "width": width, "lambdas": lambdas} | ({"fine": fine} if fine != 16 else {})
        self.channels, self.lambdas = channels, lambdas
        self.code_size = channels * SIDE * SIDE
        self.analysis = analysis(channels, width)
        self.synthesis = synthesis(channels, width, fine)
        k = len(lambdas)
        init = torch.linspace(-1.0, 1.5, k)[:, None].repeat(1, self.code_size) if k > 1 else \
            torch.zeros(1, self.code_size)
        self.log_gain = nn.Parameter(init.clone())
        self.log_igain = nn.Parameter(-init.clone())

    @property
    def levels(self) -> int:
        return len(self.lambdas)

    def gains(self, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.log_gain[level].exp(), self.log_igain[level].exp()

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """(B,1,28,28) -> y (B, code_size), before any gain."""
        return self.analysis(x).flatten(1)

    def synthesize(self, y_hat: torch.Tensor) -> torch.Tensor:
        """Scaled-back symbols (B, code_size) -> images (B,1,28,28), not yet clipped to [0,1]:
        a linear output, because squared error on a sigmoid stalls at the all-black image
        (aecore.models.base); clipping makes every negative background pixel exactly 0."""
        return self.synthesis(y_hat.reshape(-1, self.channels, SIDE, SIDE))

    # ---- the integer CDF tables (one per level), as CompressAI's update() leaves them ----

    def set_tables(self, tables: list[dict]) -> None:
        """tables[k]: median (D,) float32, offset (D,) int32, cdf_length (D,) int32 and cdf:
        each latent's quantised CDF (cdf_length entries, 0 .. 2**16, the last symbol
        CompressAI's overflow bin), concatenated. Checked: a checkpoint is an input too."""
        if len(tables) != self.levels:
            raise ValueError(f"{len(tables)} tables for {self.levels} levels")
        self._coders = None
        for k, t in enumerate(tables):
            check_table(t, self.code_size, k)
            for key in TABLE_KEYS:
                self.register_buffer(f"table{k}_{key}", t[key].detach().clone())

    def table(self, level: int) -> dict:
        return {key: getattr(self, f"table{level}_{key}") for key in TABLE_KEYS}

    @property
    def has_tables(self) -> bool:
        return hasattr(self, "table0_cdf")

    def coders(self) -> list["LevelCoder"]:
        if getattr(self, "_coders", None) is None:
            self._coders = [LevelCoder(self.table(k)) for k in range(self.levels)]
        return self._coders


TABLE_KEYS = ("median", "offset", "cdf_length", "cdf")


def check_table(t: dict, dims: int, level: int) -> None:
    fail = lambda why: ValueError(f"entropy table of level {level}: {why}")
    if not all(isinstance(t.get(k), torch.Tensor) for k in TABLE_KEYS):
        raise fail(f"needs tensors {', '.join(TABLE_KEYS)}")
    median, offset, length, cdf = (t[k] for k in TABLE_KEYS)
    if median.shape != (dims,) or offset.shape != (dims,) or length.shape != (dims,) or cdf.ndim != 1:
        raise fail("shapes do not fit the latent")
    if median.dtype != torch.float32 or not torch.isfinite(median).all():
        raise fail("medians must be finite float32")
    if offset.dtype != torch.int32 or length.dtype != torch.int32 or cdf.dtype != torch.int32:
        raise fail("offsets, lengths and CDFs must be int32")
    if int(length.min()) < 3 or int(length.max()) > MAX_TABLE or int(length.sum()) != len(cdf):
        raise fail(f"CDF lengths must be 3..{MAX_TABLE} and add up to the table")
    if int(offset.abs().max()) > MAX_TABLE:
        raise fail("offsets out of range")
    ends = torch.cumsum(length.long(), 0)
    starts = ends - length.long()
    if (cdf[starts] != 0).any() or (cdf[ends - 1] != 2 ** CDF_PRECISION).any():
        raise fail(f"each CDF must run from 0 to 2**{CDF_PRECISION}")
    steps = cdf[1:].long() - cdf[:-1].long()
    inside = torch.ones(len(steps), dtype=torch.bool)
    inside[(ends[:-1] - 1)] = False            # the jump from one CDF to the next
    if (steps[inside] <= 0).any():
        raise fail("each CDF must increase strictly")


class LevelCoder:
    """Range coding of one level's symbols with constriction, fed the integer tables.

    Symbols are indices v = round(y·gain - median) - offset into each latent's table;
    v is clipped to the table's support (never CompressAI's overflow bin), so what the
    decoder rebuilds is exactly what the encoder measured. A latent whose table holds one
    symbol costs nothing and is not coded."""

    def __init__(self, table: dict):
        import constriction  # ~0.05 s; only when coding
        self._model = constriction.stream.model.Categorical
        self._queue = constriction.stream.queue
        length = table["cdf_length"].numpy().astype(np.int64)
        cdf = table["cdf"].numpy().astype(np.int64)
        self.median = table["median"].numpy().astype(np.float32)
        self.offset = table["offset"].numpy().astype(np.int64)
        self.support = length - 2                       # real symbols; the last is the overflow bin
        starts = np.concatenate([[0], np.cumsum(length)[:-1]])
        self.models = []
        for c in range(len(length)):
            n = int(self.support[c])
            if n <= 1:
                self.models.append(None)
                continue
            pmf = np.diff(cdf[starts[c]:starts[c] + n + 1]).astype(np.float64)
            self.models.append(self._model(pmf, perfect=False))

    def symbols(self, y_scaled: torch.Tensor) -> np.ndarray:
        """(N, D) gained latents -> (N, D) int32 table indices."""
        q = np.rint(y_scaled.numpy().astype(np.float32) - self.median).astype(np.int64) - self.offset
        return np.clip(q, 0, np.maximum(self.support - 1, 0)).astype(np.int32)

    def values(self, symbols: np.ndarray) -> torch.Tensor:
        """The inverse: (N, D) indices -> the quantised latents ŷ (before the inverse gain)."""
        return torch.from_numpy((symbols.astype(np.float32) + self.offset.astype(np.float32)) + self.median)

    def encode(self, symbols: np.ndarray) -> bytes:
        enc = self._queue.RangeEncoder()
        for c, model in enumerate(self.models):
            if model is not None:
                enc.encode(np.ascontiguousarray(symbols[:, c]), model)
        return enc.get_compressed().astype("<u4").tobytes()

    def decode(self, payload: bytes, count: int) -> np.ndarray:
        """(count, D) int32 indices from one block's payload (count bounded by the caller)."""
        words = np.frombuffer(payload, "<u4").astype(np.uint32)
        dec = self._queue.RangeDecoder(words)
        out = np.zeros((count, len(self.models)), np.int32)
        for c, model in enumerate(self.models):
            if model is not None:
                out[:, c] = dec.decode(model, count)
        return out


@torch.no_grad()
def latents(model: RDCodec, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """(N,1,28,28) -> y (N, D), float32."""
    return torch.cat([model.latent(images[i:i + batch]).float() for i in range(0, len(images), batch)])


@torch.no_grad()
def to_symbols(model: RDCodec, y: torch.Tensor, level: int) -> np.ndarray:
    gain, _ = model.gains(level)
    return model.coders()[level].symbols(y * gain)


@torch.no_grad()
def from_symbols(model: RDCodec, symbols: np.ndarray, level: int, batch: int = 2000) -> torch.Tensor:
    """(N, D) indices -> images (N,1,28,28) in [0,1]. The synthesis runs channels-last and,
    where the CPU has bfloat16 units, in bf16 (2-3x faster here; pixels within ~1e-3 of
    fp32); the same machine decodes the same file to the same pixels every time."""
    _, igain = model.gains(level)
    y_hat = (model.coders()[level].values(symbols) * igain).reshape(-1, model.channels, SIDE, SIDE)
    y_hat = y_hat.contiguous(memory_format=torch.channels_last)
    with _synthesis_precision():
        return torch.cat([model.synthesis(y_hat[i:i + batch]).float()
                          for i in range(0, len(y_hat), batch)]).clamp(0, 1).contiguous()


def _synthesis_precision():
    import contextlib

    from .precision import bf16_units
    if bf16_units(torch.device("cpu")):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate_levels(model: RDCodec, images: torch.Tensor) -> list[dict]:
    """Each level's real file size per digit and mean PSNR on `images` (the file format of
    aecore.compress, every byte counted)."""
    from . import compress, metrics
    y, rows = latents(model, images), []
    for k in range(model.levels):
        data = compress.pack_rd(model, y, k)
        decoded = compress.decompress_rd(data, model)
        rows.append({"level": k, "lambda": model.lambdas[k], "bytes_per_image": len(data) / len(images),
                     "psnr": float(metrics.psnr(decoded, images).mean()),
                     "mse": float(((decoded - images) ** 2).mean())})
    return rows


def from_checkpoint(ckpt: dict, label: str = "checkpoint") -> RDCodec:
    """An RDCodec from a validated checkpoint dict (aecore.checkpoint.read_checkpoint)."""
    from .checkpoint import CheckpointError
    if ckpt["model"] != NAME:
        raise CheckpointError(f"{label}: a {ckpt['model']} checkpoint, not a rate–distortion codec ({NAME})")
    try:
        model = RDCodec(**ckpt["config"])
        state = dict(ckpt["state_dict"])
        model.set_tables([{key: state[f"table{k}_{key}"] for key in TABLE_KEYS} for k in range(model.levels)])
        model.load_state_dict(state, strict=True)
    except KeyError as e:
        raise CheckpointError(f"{label}: the entropy table {e} is missing") from e
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{label}: cannot rebuild the codec: {str(e).strip().splitlines()[0]}") from e
    model.metrics = dict(ckpt.get("metrics") or {})
    model.training_info = dict(ckpt.get("training") or {})
    return model.eval()


def load_codec(source, name: str | None = None) -> RDCodec:
    from .checkpoint import read_checkpoint
    label = name or (str(source) if not isinstance(source, bytes) else "uploaded file")
    return from_checkpoint(read_checkpoint(source, name), label)


def recorded_levels(model: RDCodec) -> list[dict]:
    """The per-level test-set figures recorded at training (bytes per digit, PSNR)."""
    rows = (getattr(model, "metrics", None) or {}).get("levels") or []
    return [r for r in rows if isinstance(r, dict) and "bytes_per_image" in r and "level" in r]


def level_for_bytes(model: RDCodec, target: float) -> int:
    """The best level whose recorded test-set size per digit is at most `target` (else the smallest)."""
    rows = recorded_levels(model)
    if not rows:
        raise ValueError("this codec records no sizes per level: choose a level instead")
    fits = [r for r in rows if r["bytes_per_image"] <= target]
    pick = max(fits, key=lambda r: r["bytes_per_image"]) if fits else min(rows, key=lambda r: r["bytes_per_image"])
    return int(pick["level"])


CODEC_FOLDER = "codec"          # under weights/, with its own manifest.json


def shipped_codecs(weights: "Path | None" = None) -> list[tuple[str, dict, "RDCodec | None", "str | None"]]:
    """(name, manifest entry, codec or None, why not) for each codec of weights/codec/manifest.json;
    [] when there is none."""
    from pathlib import Path

    from .checkpoint import CheckpointError
    from .manifest import file_problem, read_manifest
    from .paths import weights_dir
    folder = Path(weights or weights_dir()) / CODEC_FOLDER
    if not (folder / "manifest.json").exists():
        return []
    out = []
    for entry in read_manifest(folder):
        name = Path(str(entry.get("file"))).stem
        problem = file_problem(folder, entry)
        if problem:
            out.append((name, entry, None, problem))
            continue
        try:
            out.append((name, entry, load_codec(folder / entry["file"]), None))
        except CheckpointError as e:
            out.append((name, entry, None, str(e)))
    return out
