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
# sizes per digit a file can be made to (aecore.compress.compress_rd_to_size): the
# Compression page's choices and bench.rate_distortion's rows
TARGET_SIZES = (10, 12, 14, 16, 18, 20, 24, 28, 32, 40, 48, 56, 64)


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

    # ---- switched entropy models: several tables per level, one chosen per digit ----

    def set_mixtures(self, mixtures: list[dict | None]) -> None:
        """mixtures[k] (or None: level k codes with its CompressAI table alone): "freq" int16
        (M, L), M tables of integer symbol frequencies over the same supports as the level's
        CompressAI table (each latent's real symbols, concatenated: L = sum of the supports),
        and "prior" int32 (M,), how often each table is chosen (the table index's own model).
        Fitted to the training digits' symbols (aecore.codec_train --mixtures). Checked: a
        checkpoint is an input too."""
        if len(mixtures) != self.levels:
            raise ValueError(f"{len(mixtures)} mixtures for {self.levels} levels")
        self._coders = None
        for k, mix in enumerate(mixtures):
            for key in MIXTURE_KEYS:
                name = f"mix{k}_{key}"
                if name in self._buffers:
                    del self._buffers[name]
            if mix is None:
                continue
            check_mixture(mix, supports(self.table(k)), k)
            for key in MIXTURE_KEYS:
                self.register_buffer(f"mix{k}_{key}", mix[key].detach().clone())

    def mixture(self, level: int) -> dict | None:
        if not hasattr(self, f"mix{level}_freq"):
            return None
        return {key: getattr(self, f"mix{level}_{key}") for key in MIXTURE_KEYS}

    @property
    def has_tables(self) -> bool:
        return hasattr(self, "table0_cdf")

    def coders(self) -> list["LevelCoder"]:
        if getattr(self, "_coders", None) is None:
            self._coders = [LevelCoder(self.table(k), self.mixture(k)) for k in range(self.levels)]
        return self._coders


TABLE_KEYS = ("median", "offset", "cdf_length", "cdf")
MIXTURE_KEYS = ("freq", "prior")
MAX_MIXTURES = 64             # tables per level a checkpoint may hold (a reader's bound)
MAX_FREQ = 2 ** 15 - 1        # mixture tables hold int16 frequencies (a symbol's probability: its share)


def supports(table: dict) -> np.ndarray:
    """Each latent's number of real symbols in a level's CompressAI table (its CDF's length
    less the end point and CompressAI's overflow bin)."""
    return table["cdf_length"].numpy().astype(np.int64) - 2


def check_mixture(mix: dict, support: np.ndarray, level: int) -> None:
    fail = lambda why: ValueError(f"mixture tables of level {level}: {why}")
    freq, prior = mix.get("freq"), mix.get("prior")
    if not (isinstance(freq, torch.Tensor) and freq.dtype == torch.int16
            and isinstance(prior, torch.Tensor) and prior.dtype == torch.int32):
        raise fail("needs an int16 tensor freq and an int32 tensor prior")
    if freq.ndim != 2 or not 1 <= len(freq) <= MAX_MIXTURES or freq.shape[1] != int(support.sum()):
        raise fail(f"freq must be (1..{MAX_MIXTURES} tables, {int(support.sum())} symbols)")
    if prior.shape != (len(freq),):
        raise fail("one prior count per table expected")
    if int(freq.min()) < 1 or int(prior.min()) < 1:
        raise fail(f"frequencies must be 1..{MAX_FREQ}, prior counts at least 1")


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
    symbol costs nothing and is not coded.

    Where the level has mixture tables (`mixture`), each digit is coded with the one of
    them that codes it in the fewest bits, and that choice goes first in the stream;
    otherwise with the CompressAI table (table index 0 of 1, which costs nothing)."""

    def __init__(self, table: dict, mixture: dict | None = None):
        import constriction  # ~0.05 s; only when coding
        self._categorical = constriction.stream.model.Categorical
        self._queue = constriction.stream.queue
        length = table["cdf_length"].numpy().astype(np.int64)
        self.median = table["median"].numpy().astype(np.float32)
        self.offset = table["offset"].numpy().astype(np.int64)
        self.support = supports(table)                  # real symbols; the last is the overflow bin
        self.coded = np.flatnonzero(self.support > 1)   # the latents that cost bits
        self._table, self._is_plain = table, mixture is None
        starts = np.concatenate([[0], np.cumsum(self.support)[:-1]])
        if mixture is None:   # CompressAI's quantised CDF: its steps are the frequencies
            cdf = table["cdf"].numpy().astype(np.int64)
            cdf_starts = np.concatenate([[0], np.cumsum(length)[:-1]])
            freq = np.concatenate([np.diff(cdf[s:s + n + 1]) for s, n in zip(cdf_starts, self.support)])[None]
            prior = np.ones(1)
        else:
            freq, prior = mixture["freq"].numpy().astype(np.int64), mixture["prior"].numpy().astype(np.float64)
        self.tables = len(freq)
        self._all_freq, self._starts = freq, starts
        self._models = [None] * self.tables             # built on first use, per table (a decoder
                                                        # of one level builds no other level's)
        self._choice_bits = -np.log2(prior / prior.sum())   # what naming each table costs
        self._prior = self._categorical(prior, perfect=False) if self.tables > 1 else None
        self._logp = None                               # built by the encoder's first bits()

    def _freq(self, j: int) -> list[np.ndarray]:
        """Table j's frequencies of each coded latent's symbols (float64, as the coder takes them)."""
        return [self._all_freq[j, self._starts[c]:self._starts[c] + self.support[c]].astype(np.float64)
                for c in self.coded]

    def models(self, j: int) -> list:
        if self._models[j] is None:
            self._models[j] = [self._categorical(f, perfect=False) for f in self._freq(j)]
        return self._models[j]

    def symbols(self, y_scaled: torch.Tensor) -> np.ndarray:
        """(N, D) gained latents -> (N, D) int32 table indices."""
        q = np.rint(y_scaled.numpy().astype(np.float32) - self.median).astype(np.int64) - self.offset
        return np.clip(q, 0, np.maximum(self.support - 1, 0)).astype(np.int32)

    def values(self, symbols: np.ndarray) -> torch.Tensor:
        """The inverse: (N, D) indices -> the quantised latents ŷ (before the inverse gain)."""
        return torch.from_numpy((symbols.astype(np.float32) + self.offset.astype(np.float32)) + self.median)

    def bits(self, symbols: np.ndarray, chunk: int = 2000) -> np.ndarray:
        """(N, tables) float64: each digit's symbols' information under each table, in bits
        (what the range coder spends, within a fraction of a bit per stream)."""
        if self._logp is None:   # log2 probabilities, (tables, the coded latents' symbols one after another):
            # as large as the tables themselves, whatever the widest support
            self._logp = torch.from_numpy(np.stack([np.concatenate([np.log2(f / f.sum()) for f in self._freq(j)])
                                                    if len(self.coded) else np.zeros(0)
                                                    for j in range(self.tables)]).astype(np.float32))
            self._offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(self.support[self.coded])[:-1]])
                                             .astype(np.int64))
        index = self._offsets
        out = []
        for i in range(0, len(symbols), chunk):
            at = torch.from_numpy(symbols[i:i + chunk][:, self.coded].astype(np.int64)) + index
            out.append(torch.stack([-self._logp[j][at].sum(1) for j in range(self.tables)], 1))
        return torch.cat(out).numpy() if out else np.zeros((0, self.tables))

    def costs(self, symbols: np.ndarray) -> np.ndarray:
        """(N,) bits each digit costs at this level: its symbols under its best table, and
        that choice under the tables' prior (nothing with one table)."""
        return (self.bits(symbols) + self._choice_bits).min(1)

    def choose(self, symbols: np.ndarray) -> np.ndarray:
        """(N,) int32: the table that codes each digit in the fewest bits (0 with one table)."""
        if self.tables == 1:
            return np.zeros(len(symbols), np.int32)
        return (self.bits(symbols) + self._choice_bits).argmin(1).astype(np.int32)

    def encode_into(self, enc, symbols: np.ndarray, tables: np.ndarray) -> None:
        """Append the choices `tables` (N,), then each table's digits' symbols (latent by
        latent), to the range encoder `enc`."""
        if self.tables > 1:
            enc.encode(np.ascontiguousarray(tables, np.int32), self._prior)
        for j in range(self.tables):
            rows = np.flatnonzero(tables == j)
            if len(rows):
                part = symbols[rows]
                for i, model in zip(self.coded, self.models(j)):
                    enc.encode(np.ascontiguousarray(part[:, i]), model)

    def decode_from(self, dec, count: int) -> np.ndarray:
        """The inverse of encode_into: (count, D) int32 indices (count bounded by the caller)."""
        tables = dec.decode(self._prior, count) if self.tables > 1 else np.zeros(count, np.int32)
        out = np.zeros((count, len(self.support)), np.int32)
        for j in range(self.tables):
            rows = np.flatnonzero(tables == j)
            if len(rows):
                part = np.zeros((len(rows), len(self.support)), np.int32)
                for i, model in zip(self.coded, self.models(j)):
                    part[:, i] = dec.decode(model, len(rows))
                out[rows] = part
        return out

    def encode(self, symbols: np.ndarray) -> bytes:
        """One level's symbols alone, with the CompressAI table (a version-2 file's block)."""
        enc = self._queue.RangeEncoder()
        self._plain().encode_into(enc, symbols, np.zeros(len(symbols), np.int32))
        return enc.get_compressed().astype("<u4").tobytes()

    def decode(self, payload: bytes, count: int) -> np.ndarray:
        """(count, D) int32 indices from one version-2 block's payload."""
        dec = self._queue.RangeDecoder(np.frombuffer(payload, "<u4").astype(np.uint32))
        return self._plain().decode_from(dec, count)

    def _plain(self) -> "LevelCoder":
        """This level coded with its CompressAI table alone (what version-2 files hold)."""
        if self._is_plain:
            return self
        if getattr(self, "_plain_coder", None) is None:
            self._plain_coder = LevelCoder(self._table)
        return self._plain_coder


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


def allocate(costs: dict, budget_bits: float) -> np.ndarray:
    """(N,) each digit's level: the most mean PSNR for at most `budget_bits` in all, from
    `costs` (aecore.compress.level_costs: "bits" and "psnr", (N, K)). Rate control by a
    Lagrange multiplier: every digit takes the level that maximises PSNR - mu * bits, and mu
    is bisected until the bits, with the digits' level choices (their entropy), fit."""
    bits, psnr = costs["bits"], costs["psnr"]
    rows = np.arange(len(bits))

    def pick(mu: float) -> tuple[np.ndarray, float]:
        levels = np.argmax(psnr - mu * bits, axis=1)
        share = np.bincount(levels, minlength=bits.shape[1]) / len(levels)
        side = -(share[share > 0] * np.log2(share[share > 0])).sum() * len(levels)
        return levels, bits[rows, levels].sum() + side

    lo, hi = 0.0, 1.0
    while pick(hi)[1] > budget_bits and hi < 1e6:   # mu large enough that the smallest levels fit
        lo, hi = hi, hi * 4
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pick(mid)[1] > budget_bits else (lo, mid)
    return pick(hi)[0]


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
        model.set_mixtures([{key: state[f"mix{k}_{key}"] for key in MIXTURE_KEYS} if f"mix{k}_freq" in state
                            else None for k in range(model.levels)])
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
