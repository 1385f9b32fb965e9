"""Compress MNIST digits with an autoencoder: quantised codes, entropy-coded, in one file.

Each code dimension d is quantised uniformly between its minimum lo[d] and maximum over
the batch with 2**bits levels, q = round((z - lo) / scale), so every code comes back
within scale/2. The symbols are stored dimension-major, one byte each (two above 8 bits):
values of one dimension sit together, which lets zlib/lzma get close to the empirical
entropy (within ~2% for a 32-d code on MNIST). File layout, little-endian:

    "AECZ" | version u8 | codec u8 | bits u8 | 0 u8 | count u32 | code_size u16 |
    meta_len u16 | meta (JSON: model name + config) | fingerprint 16 B (the model) |
    lo f32[code_size] | scale f32[code_size] | payload_len u32 | payload | crc32 u32

The crc32 covers everything before it. Decoding needs the very model that encoded:
`model_fingerprint` hashes its name, config and weights, and a mismatch is refused.

Version 2 holds the symbols of a rate–distortion codec (aecore.rdcodec), range-coded with
the integer CDF tables its checkpoint carries, in blocks of digits (one range-coder stream
per block, so a reader holds one block's symbols at a time):

    "AECZ" | version u8 = 2 | kind u8 = 1 | level u8 | 0 u8 | count u32 | block u32 |
    meta_len u16 | meta (JSON: model name + config) | fingerprint 16 B |
    block_bytes u32[ceil(count / block)] | the blocks' payloads (u32 words) | crc32 u32

Version 3 lets each digit have its own level (a file made to a size: aecore.compress
compress_rd_to_size) and codes each digit with the best of its level's mixture tables
(aecore.rdcodec.LevelCoder); where version 2 has the level byte, it has how many levels
the file uses, and after the fingerprint each one and its digits' count:

    "AECZ" | version u8 = 3 | kind u8 = 1 | levels u8 | 0 u8 | count u32 | block u32 |
    meta_len u16 | meta | fingerprint 16 B | (level u8, digits u32)[levels] |
    block_bytes u32[ceil(count / block)] | the blocks' payloads (u32 words) | crc32 u32

A block's stream holds its digits' levels (a categorical of the file's counts; nothing
when the file has one level), then level by level their table choices and symbols.

All three versions are read; a reader refuses, before any work and with one line naming the
file, a file over its limits (MAX_FILE_BYTES, MAX_IMAGES, MAX_BLOCK, MAX_SYMBOL_BYTES),
whatever its header claims.
"""
from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import metrics
from .atomic import atomic_write_bytes
from .checkpoint import CheckpointError, load_checkpoint
from .data import load_mnist
from .models import in_batches, is_autoencoder
from .paths import docs_dir
from .preprocess import ImageError, load_image, to_mnist
from .shipped import shipped_models

MAGIC, VERSION, RD_VERSION, MIX_VERSION = b"AECZ", 1, 2, 3
RD_VERSIONS = (RD_VERSION, MIX_VERSION)
VERSIONS = (VERSION, *RD_VERSIONS)
CODECS = {"zlib": 1, "lzma": 2}
_FIXED = struct.Struct("<4sBBBBIHH")      # magic .. meta_len: 16 bytes
_FIXED2 = struct.Struct("<4sBBBBIIH")     # versions 2 and 3: magic .. meta_len: 18 bytes
_LEVEL = struct.Struct("<BI")             # version 3: a level and how many digits it codes
MAX_LEVELS = 16                           # levels in one file (a codec has at most 16)
RD_KIND = 1
RD_BLOCK = 2000                           # digits per range-coder stream
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
MAX_BITS = 16
MAX_SYMBOL_BYTES = 2 ** 26                # decoded symbols we are willing to hold (64 MiB)
MAX_IMAGES = 70_000                       # digits in one file (all of MNIST): the output is bounded
MAX_BLOCK = 10_000                        # digits per block of a version-2 or -3 file
MAX_FILE_BYTES = 2 ** 28                  # a compressed file we are willing to read (256 MiB)
MAX_META = 4096


class CompressError(ValueError):
    """A compressed file is unusable (bad, truncated, other model) or the request is invalid."""


@dataclass
class Packed:
    """A decoded file: quantised symbols (count, code_size) and how to undo the quantisation."""
    model: str
    config: dict
    fingerprint: bytes
    bits: int
    lo: np.ndarray          # (code_size,) float32
    scale: np.ndarray       # (code_size,) float32
    symbols: np.ndarray     # (count, code_size) uint8 or uint16
    codec: str

    @property
    def count(self) -> int:
        return len(self.symbols)

    def codes(self) -> torch.Tensor:
        return dequantize(self.symbols, self.lo, self.scale)


def model_fingerprint(model) -> bytes:
    """16 bytes of sha256 over the model's name, config and weights (in key order)."""
    h = hashlib.sha256(json.dumps([model.name, model.config], sort_keys=True).encode())
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.digest()[:16]


def quantize(codes: torch.Tensor, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(symbols (N,D) uint8/uint16, lo (D,) f32, scale (D,) f32) for codes (N,D)."""
    if not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise CompressError(f"bits must be an integer from 1 to {MAX_BITS}, got {bits!r}")
    z = codes.detach().cpu().double().numpy()
    if z.ndim != 2 or len(z) == 0:
        raise CompressError(f"expected codes of shape (N, code_size) with N >= 1, got {tuple(z.shape)}")
    if not np.isfinite(z).all():
        raise CompressError("the codes hold NaN or infinite values")
    top = 2 ** bits - 1
    lo = z.min(0).astype(np.float32)
    scale = ((z.max(0) - lo) / top).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0)  # a constant dimension: every symbol is 0
    q = np.clip(np.rint((z - lo) / safe), 0, top)
    return q.astype(np.uint8 if bits <= 8 else np.uint16), lo, scale


def dequantize(symbols: np.ndarray, lo: np.ndarray, scale: np.ndarray) -> torch.Tensor:
    """(N,D) float32 codes lo + q * scale."""
    q = torch.from_numpy(symbols.astype(np.float32))
    return torch.from_numpy(lo) + q * torch.from_numpy(scale)


def _entropy_code(raw: bytes, codec: str) -> tuple[str, bytes]:
    if codec == "auto":  # whichever is smaller; lzma wins except on tiny inputs
        return min((_entropy_code(raw, c) for c in CODECS), key=lambda r: len(r[1]))
    if codec == "zlib":
        return codec, zlib.compress(raw, 9)
    if codec == "lzma":
        return codec, lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    raise CompressError(f"unknown codec {codec!r}; choose auto, {', '.join(CODECS)}")


def pack_codes(codes: torch.Tensor, model, bits: int = 8, codec: str = "auto") -> bytes:
    """The file bytes for codes (N, code_size) of `model` (anything with name, config,
    state_dict: an autoencoder or baselines.PCA)."""
    symbols, lo, scale = quantize(codes, bits)
    count, dims = symbols.shape
    meta = json.dumps({"model": model.name, "config": model.config}, separators=(",", ":")).encode()
    codec, payload = _entropy_code(symbols.T.astype(symbols.dtype.newbyteorder("<")).tobytes(), codec)
    body = b"".join([_FIXED.pack(MAGIC, VERSION, CODECS[codec], bits, 0, count, dims, len(meta)), meta,
                     model_fingerprint(model), lo.astype("<f4").tobytes(), scale.astype("<f4").tobytes(),
                     struct.pack("<I", len(payload)), payload])
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes, label: str = "file") -> Packed:
    """Parse and check file bytes; CompressError says what is wrong with `label`."""
    fail = lambda why: CompressError(f"{label}: {why}")
    if len(data) < _FIXED.size or data[:4] != MAGIC:
        raise fail("not an aecore compressed file (no AECZ marker)")
    magic, version, codec_id, bits, _, count, dims, meta_len = _FIXED.unpack_from(data)
    if version not in VERSIONS:
        raise fail(f"format version {version} is not supported (this aecore reads versions "
                   f"{', '.join(map(str, VERSIONS))})")
    if version != VERSION:
        raise fail(f"format version {version} holds a rate–distortion codec's symbols: read it with unpack_rd")
    if count > MAX_IMAGES or meta_len > MAX_META:
        raise fail(f"malformed header: {count} images (the limit is {MAX_IMAGES:,}), {meta_len} bytes of "
                   f"metadata (at most {MAX_META})")
    head = _FIXED.size + meta_len + 16 + 8 * dims
    if len(data) < head + 4:
        raise fail(f"truncated: {len(data)} bytes, the header alone needs {head + 4}")
    (payload_len,) = struct.unpack_from("<I", data, head)
    if len(data) < head + 8 + payload_len:
        raise fail(f"truncated: {len(data)} bytes, expected {head + 8 + payload_len}")
    if len(data) > head + 8 + payload_len:
        raise fail(f"{len(data) - head - 8 - payload_len} unexpected bytes after the end of the data")
    if zlib.crc32(data[:-4]) != struct.unpack_from("<I", data, len(data) - 4)[0]:
        raise fail("corrupt: the checksum does not match")
    codec = {v: k for k, v in CODECS.items()}.get(codec_id)
    if codec is None or not 1 <= bits <= MAX_BITS or count < 1 or dims < 1:
        raise fail(f"malformed header (codec {codec_id}, bits {bits}, count {count}, code size {dims})")
    try:
        meta = json.loads(data[_FIXED.size:_FIXED.size + meta_len])
        at = _FIXED.size + meta_len
        fingerprint = data[at:at + 16]
        lo = np.frombuffer(data, "<f4", dims, at + 16).astype(np.float32)
        scale = np.frombuffer(data, "<f4", dims, at + 16 + 4 * dims).astype(np.float32)
        dtype = np.dtype("<u1" if bits <= 8 else "<u2")
        raw = _entropy_decode(data[head + 4:head + 4 + payload_len], codec, count * dims * dtype.itemsize)
        symbols = np.frombuffer(raw, dtype).reshape(dims, count).T.astype(dtype.newbyteorder("="))
        return Packed(str(meta["model"]), dict(meta["config"]), fingerprint, bits, lo, scale, symbols, codec)
    except (ValueError, KeyError, TypeError, lzma.LZMAError, zlib.error) as e:
        raise fail(f"malformed contents ({e})") from e


def _entropy_decode(payload: bytes, codec: str, size: int) -> bytes:
    """Exactly `size` bytes or ValueError; never inflates more than size + 1 (bombs)."""
    if size > MAX_SYMBOL_BYTES:
        raise ValueError(f"{size} bytes of codes is over the {MAX_SYMBOL_BYTES} limit")
    if codec == "zlib":
        raw = zlib.decompressobj().decompress(payload, size + 1)
    else:
        raw = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_LZMA_FILTERS).decompress(payload, size + 1)
    if len(raw) != size:
        raise ValueError(f"the payload holds {len(raw)} bytes of codes, expected {size}")
    return raw


def check_model(packed: Packed | RDPacked, model, label: str = "file") -> None:
    """Refuse to decode with a model (or codec) other than the one that encoded."""
    if model_fingerprint(model) != packed.fingerprint:
        raise CompressError(
            f"{label} was compressed with {packed.model} {json.dumps(packed.config)} (fingerprint "
            f"{packed.fingerprint.hex()[:12]}), not with this {model.name} {json.dumps(model.config)} "
            f"(fingerprint {model_fingerprint(model).hex()[:12]}): other weights would decode garbage")


@torch.no_grad()
def encode_images(model, images: torch.Tensor) -> torch.Tensor:
    """(N,1,28,28) -> codes (N, code_size), in batches (VAE: the mean)."""
    return in_batches(model.encode, images)


@torch.no_grad()
def decode_codes(model, codes: torch.Tensor) -> torch.Tensor:
    """codes (N, code_size) -> images (N,1,28,28) in [0,1], in batches."""
    return in_batches(model.decode, codes).clamp(0, 1)


def compress_images(model, images: torch.Tensor, bits: int = 8, codec: str = "auto") -> bytes:
    return pack_codes(encode_images(model, images), model, bits, codec)


def decompress_bytes(data: bytes, model, label: str = "file") -> torch.Tensor:
    """The images (N,1,28,28) a file holds, decoded by `model` (checked against the file)."""
    packed = unpack(data, label)
    check_model(packed, model, label)
    return decode_codes(model, packed.codes())


# ---- versions 2 and 3: a rate–distortion codec's symbols, range-coded ----------------------


@dataclass
class RDPacked:
    """A parsed version-2 or -3 file: which codec, the levels it uses (level -> digits),
    and each block's payload (not yet decoded)."""
    model: str
    config: dict
    fingerprint: bytes
    levels: dict            # {level: how many digits}; version 2: one level
    count: int
    block: int
    payloads: list          # bytes, one per block of `block` digits (the last may be shorter)
    version: int = MIX_VERSION

    @property
    def level(self) -> int | None:
        """The file's level, when it has one."""
        return next(iter(self.levels)) if len(self.levels) == 1 else None

    def block_counts(self) -> list[int]:
        return [min(self.block, self.count - i * self.block) for i in range(len(self.payloads))]


def file_version(data: bytes) -> int | None:
    """The format version byte of an AECZ file, or None when it is not one."""
    return data[4] if len(data) > 4 and data[:4] == MAGIC else None


def pack_rd(model, y: torch.Tensor, level, block: int = RD_BLOCK) -> bytes:
    """The (version-3) file bytes for latents y (N, D) of an aecore.rdcodec model at `level`:
    one level for all digits, or an (N,) array, each digit's own."""
    count = len(y)
    if not 1 <= count <= MAX_IMAGES:
        raise CompressError(f"a file holds 1 to {MAX_IMAGES:,} images, got {count}")
    levels = np.full(count, level, np.int64) if np.ndim(level) == 0 else np.asarray(level, np.int64)
    if levels.shape != (count,) or not (0 <= levels.min() and levels.max() < model.levels):
        raise CompressError(f"level must be 0..{model.levels - 1} (one, or one per digit), got {level}")
    import constriction

    from .rdcodec import to_symbols
    present, counts = np.unique(levels, return_counts=True)
    which = np.searchsorted(present, levels).astype(np.int32)
    level_model = _level_model(counts)
    payloads = []
    for i in range(0, count, block):
        enc = constriction.stream.queue.RangeEncoder()
        if level_model is not None:
            enc.encode(which[i:i + block], level_model)
        for k in present:
            rows = np.flatnonzero(levels[i:i + block] == k) + i
            if len(rows):
                coder = model.coders()[int(k)]
                symbols = to_symbols(model, y[rows], int(k))
                coder.encode_into(enc, symbols, coder.choose(symbols))
        payloads.append(enc.get_compressed().astype("<u4").tobytes())
    meta = json.dumps({"model": model.name, "config": model.config}, separators=(",", ":")).encode()
    body = b"".join([_FIXED2.pack(MAGIC, MIX_VERSION, RD_KIND, len(present), 0, count, block, len(meta)), meta,
                     model_fingerprint(model), *(_LEVEL.pack(int(k), int(n)) for k, n in zip(present, counts)),
                     struct.pack(f"<{len(payloads)}I", *map(len, payloads)), *payloads])
    return body + struct.pack("<I", zlib.crc32(body))


def _level_model(counts):
    """The categorical of a file's digits' levels (its counts), or None for one level."""
    if len(counts) < 2:
        return None
    import constriction
    return constriction.stream.model.Categorical(np.asarray(counts, np.float64), perfect=False)


def unpack_rd(data: bytes, label: str = "file") -> RDPacked:
    """Parse and check a version-2 or -3 file; every count the header claims is checked
    against this reader's limits and against the file's own length before anything is
    allocated."""
    fail = lambda why: CompressError(f"{label}: {why}")
    if len(data) > MAX_FILE_BYTES:
        raise fail(f"{len(data):,} bytes is over the {MAX_FILE_BYTES:,}-byte limit for a compressed file")
    if len(data) < _FIXED2.size or data[:4] != MAGIC:
        raise fail("not an aecore compressed file (no AECZ marker)")
    magic, version, kind, level, _, count, block, meta_len = _FIXED2.unpack_from(data)
    if version not in RD_VERSIONS:
        raise fail(f"format version {version} is not a rate–distortion codec file (versions "
                   f"{', '.join(map(str, RD_VERSIONS))})")
    if kind != RD_KIND or not 1 <= count <= MAX_IMAGES or not 1 <= block <= MAX_BLOCK or meta_len > MAX_META:
        raise fail(f"malformed header or over this reader's limits (kind {kind}, {count} images: 1 to "
                   f"{MAX_IMAGES:,}; blocks of {block}: 1 to {MAX_BLOCK:,}; {meta_len} bytes of metadata)")
    at = _FIXED2.size + meta_len + 16
    if version == RD_VERSION:
        levels = {level: count}
    else:   # `level` is how many levels the file uses; each one and its count follow
        if not 1 <= level <= MAX_LEVELS or len(data) < at + _LEVEL.size * level:
            raise fail(f"malformed header ({level} levels: 1 to {MAX_LEVELS}, or truncated)")
        pairs = [_LEVEL.unpack_from(data, at + _LEVEL.size * i) for i in range(level)]
        at += _LEVEL.size * level
        levels = dict(pairs)
        if ([k for k, _ in pairs] != sorted(levels) or len(levels) != level or any(n < 1 for _, n in pairs)
                or sum(n for _, n in pairs) != count):
            raise fail("malformed header (its levels must be distinct, in order, and count its digits)")
    blocks = -(-count // block)
    head = at + 4 * blocks
    if len(data) < head + 4:
        raise fail(f"truncated: {len(data)} bytes, the header alone needs {head + 4}")
    sizes = struct.unpack_from(f"<{blocks}I", data, at)
    end = head + sum(sizes)
    if len(data) != end + 4:
        raise fail(f"truncated: {len(data)} bytes, expected {end + 4}" if len(data) < end + 4 else
                   f"{len(data) - end - 4} unexpected bytes after the end of the data")
    if zlib.crc32(data[:-4]) != struct.unpack_from("<I", data, len(data) - 4)[0]:
        raise fail("corrupt: the checksum does not match")
    if any(n % 4 for n in sizes):
        raise fail("malformed: a block's payload is not whole 32-bit words")
    try:
        meta = json.loads(data[_FIXED2.size:_FIXED2.size + meta_len])
        name, config = str(meta["model"]), dict(meta["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise fail(f"malformed contents ({e})") from e
    payloads, at = [], head
    for n in sizes:
        payloads.append(data[at:at + n])
        at += n
    return RDPacked(name, config, data[_FIXED2.size + meta_len:_FIXED2.size + meta_len + 16], levels, count,
                    block, payloads, version)


def check_rd_model(packed: RDPacked, model, label: str = "file") -> None:
    check_model(packed, model, label)
    beyond = [k for k in packed.levels if k >= model.levels]
    if beyond:
        raise CompressError(f"{label}: level {beyond[0]} is not one of this codec's {model.levels} levels")


def decode_rd(packed: RDPacked, model, label: str = "file") -> torch.Tensor:
    """The images (count,1,28,28) of a parsed version-2 or -3 file, one block at a time."""
    try:
        return torch.cat([_decode_block(packed, model, payload, n)
                          for payload, n in zip(packed.payloads, packed.block_counts())])
    except (AssertionError, ValueError, RuntimeError) as e:   # constriction asserts on data no encoder wrote
        raise CompressError(f"{label}: corrupt data (its symbols do not decode: {e})") from e


def _decode_block(packed: RDPacked, model, payload: bytes, n: int) -> torch.Tensor:
    import constriction

    from .rdcodec import from_symbols
    coders = model.coders()
    if packed.version == RD_VERSION:
        return from_symbols(model, coders[packed.level].decode(payload, n), packed.level)
    present = np.array(sorted(packed.levels))
    level_model = _level_model([packed.levels[k] for k in present])
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, "<u4").astype(np.uint32))
    levels = present[dec.decode(level_model, n)] if level_model is not None else np.full(n, present[0])
    images = torch.zeros(n, 1, 28, 28)
    for k in present:
        rows = np.flatnonzero(levels == k)
        if len(rows):
            images[torch.from_numpy(rows)] = from_symbols(model, coders[int(k)].decode_from(dec, len(rows)), int(k))
    return images


def compress_rd(model, images: torch.Tensor, level) -> bytes:
    from .rdcodec import latents
    return pack_rd(model, latents(model, images), level)


def compress_rd_to_size(model, images: torch.Tensor, target_bytes: float, costs: dict | None = None
                        ) -> tuple[bytes, np.ndarray]:
    """(file, each digit's level): the file of `images` at the best mean PSNR within
    `target_bytes` per digit, whole file counted (aecore.rdcodec.allocate); when even the
    smallest level does not fit, every digit at level 0. `costs`: level_costs of these
    images, when several targets share them."""
    from .rdcodec import allocate, latents
    if not target_bytes > 0:
        raise CompressError(f"the target must be a positive number of bytes per digit, got {target_bytes}")
    y = latents(model, images)
    budget = target_bytes * len(images)
    smallest = pack_rd(model, y, 0)
    if len(smallest) >= budget:
        return smallest, np.zeros(len(images), np.int64)
    costs = costs or level_costs(model, y, images)
    spare = budget - (len(smallest) - costs["bits"][:, 0].sum() / 8)   # what the symbols may take
    best = (smallest, np.zeros(len(images), np.int64))
    for attempt in range(8):   # the estimate is within bytes: shrink the budget by any overshoot, and more
        levels = allocate(costs, spare * 8)
        data = pack_rd(model, y, levels)
        if len(data) <= budget:
            if len(data) > len(best[0]):
                best = (data, levels)
            break
        spare -= len(data) - budget + 4 ** attempt
    return best


def compress_rd_code_within(model, images: torch.Tensor, target_bytes: float) -> tuple[bytes, int]:
    """(file, level): `images` (a few: one drawing) at the highest level whose code, the file
    less its header, fits `target_bytes` per digit (else level 0); the header of a file of
    one digit is many times its code."""
    from .rdcodec import latents
    y, best = latents(model, images), None
    for level in range(model.levels):
        data = pack_rd(model, y, level)
        if best is None or len(data) - rd_header_bytes(data) <= target_bytes * len(images):
            best = (data, level)
    return best


def level_costs(model, y: torch.Tensor, images: torch.Tensor) -> dict:
    """Each digit's cost and quality at each level: "bits" (N, K), its symbols and table
    choice, and "psnr" (N, K) of its decoded image."""
    from .rdcodec import from_symbols, to_symbols
    bits, psnr = np.zeros((len(y), model.levels)), np.zeros((len(y), model.levels))
    for k, coder in enumerate(model.coders()):
        symbols = to_symbols(model, y, k)
        bits[:, k] = coder.costs(symbols)
        psnr[:, k] = metrics.psnr(from_symbols(model, symbols, k), images).numpy()
    return {"bits": bits, "psnr": psnr}


def rd_header_bytes(data: bytes) -> int:
    """The bytes of a version-2 or -3 file that are not range-coded symbols (header, levels,
    block sizes, crc)."""
    packed = unpack_rd(data)
    return len(data) - sum(len(p) for p in packed.payloads)


def decompress_rd(data: bytes, model, label: str = "file") -> torch.Tensor:
    packed = unpack_rd(data, label)
    check_rd_model(packed, model, label)
    return decode_rd(packed, model, label)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
RATE_DISTORTION_JSON = docs_dir() / "rate_distortion.json"


def read_image_folder(folder: str | os.PathLike) -> torch.Tensor:
    """(N,1,28,28) in [0,1] from the images in `folder`, by sorted file name. 28x28 images
    are taken as they are (white digit on black, like MNIST); others are MNIST-preprocessed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CompressError(f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CompressError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return torch.stack([_read_digit(p) for p in files])


def _read_digit(path: Path) -> torch.Tensor:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CompressError(f"{path}: {e}") from e
    return digit_from_bytes(data, str(path))[0]


def digit_from_bytes(data: bytes, label: str = "image") -> torch.Tensor:
    """(1,1,28,28) in [0,1] from image bytes: a 28x28 image as it is (white digit on black,
    like MNIST), any other MNIST-preprocessed. CompressError names `label`."""
    try:
        img = load_image(data)
    except ImageError as e:
        raise CompressError(f"{label}: {e}") from e
    digit = np.asarray(img.convert("L"), np.float32) / 255 if img.size == (28, 28) else to_mnist(img)
    if digit is None:
        raise CompressError(f"{label}: no digit in this image (it is blank)")
    return torch.from_numpy(np.ascontiguousarray(digit, np.float32)).reshape(1, 1, 28, 28)


def write_images(images: torch.Tensor, out: Path) -> None:
    """`out.npy`: one float32 array (N,1,28,28); anything else: a folder of 00000.png ...
    (each file written atomically)."""
    if out.suffix.lower() == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, images.numpy().astype(np.float32))
        return atomic_write_bytes(out, buffer.getvalue())
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray((image.reshape(28, 28).numpy() * 255).round().astype(np.uint8), "L").save(buffer, "PNG")
        atomic_write_bytes(out / f"{i:05d}.png", buffer.getvalue())


def _load_file(path: str):
    """An autoencoder or a rate–distortion codec from a checkpoint file."""
    from .checkpoint import model_from_checkpoint, read_checkpoint
    from .rdcodec import NAME, from_checkpoint
    ckpt = read_checkpoint(path)
    return (from_checkpoint if ckpt["model"] == NAME else model_from_checkpoint)(ckpt, str(path))


def _shipped(args, which: str) -> list[tuple[str, object, str | None]]:
    """(name, model or None, why not) of the shipped "codecs" or "autoencoders" (each list
    loads only its own checkpoints: decoding a codec file never loads the autoencoders)."""
    folder = Path(args.weights) if args.weights else None
    try:
        if which == "codecs":
            from .rdcodec import shipped_codecs
            return [(name, model, error) for name, _, model, error in shipped_codecs(folder)]
        # not a model that cannot decode its code alone (a U-Net denoiser)
        return [(s.name, s.model, s.error) for s in shipped_models(folder) if s.model is None or s.is_autoencoder]
    except CheckpointError:  # no usable manifest: nothing shipped to choose from
        return []


def _model_for(args, packed=None, label: str = ""):
    """(model, its name) from --checkpoint, --model (a shipped codec or autoencoder), or the
    shipped model that made `packed` (a Packed: autoencoders; an RDPacked: codecs)."""
    if args.checkpoint:
        model, name = _load_file(args.checkpoint), Path(args.checkpoint).name
        if not is_autoencoder(model):
            raise CompressError(f"{name} is a {model.name}, not an autoencoder: its code alone cannot rebuild a "
                                "digit, so it cannot compress one")
        return model, name
    kinds = ("codecs",) if isinstance(packed, RDPacked) else ("autoencoders",) if packed else ()
    if args.model:
        seen = []
        for which in ("codecs", "autoencoders"):
            shipped = _shipped(args, which)
            seen += [n for n, _, _ in shipped]
            for name, model, error in shipped:
                if name == args.model:
                    if model is None:
                        raise CompressError(f"model {name} is unavailable: {error}")
                    return model, name
        raise CompressError(f"no shipped model {args.model!r}; choose one of: "
                            f"{', '.join(seen) or '(none)'} or pass --checkpoint")
    if packed is None:
        raise CompressError("name a model: --model NAME (a shipped model or codec) or --checkpoint FILE")
    for which in kinds:
        for name, model, _ in _shipped(args, which):
            if model is not None and model_fingerprint(model) == packed.fingerprint:
                return model, name
    raise CompressError(f"{label} was compressed with {packed.model} {json.dumps(packed.config)}, and no "
                        f"shipped model has those weights: pass the checkpoint with --checkpoint")


def _is_codec(model) -> bool:
    from .rdcodec import RDCodec
    return isinstance(model, RDCodec)


def read_compressed(source: Path) -> bytes:
    """A compressed file's bytes, refused (one line naming it) when over MAX_FILE_BYTES."""
    try:
        size = source.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CompressError(f"{source}: {size:,} bytes is over the {MAX_FILE_BYTES:,}-byte limit "
                                "for a compressed file")
        with open(source, "rb") as f:
            return f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise CompressError(f"cannot read {source}: {e.strerror or e}") from e


def _refuse_overwrite(out: Path, force: bool) -> None:
    if not force and out.exists() and (out.is_file() or any(out.iterdir())):
        raise CompressError(f"{out} exists; pass --force to replace it")


def cmd_compress(args) -> int:
    if args.count is not None and args.count < 1:
        raise CompressError(f"--count must be at least 1, got {args.count}")
    model, name = _model_for(args)
    images = read_image_folder(args.images) if args.images else load_mnist(args.split)[0]
    images = images[: args.count]
    out = Path(args.out)
    _refuse_overwrite(out, args.force)
    if _is_codec(model):
        if args.level is not None and args.target_bytes is not None:
            raise CompressError("give --level or --target-bytes, not both")
        if args.target_bytes is not None:
            data, levels = compress_rd_to_size(model, images, args.target_bytes)
            used = np.bincount(levels, minlength=model.levels)
            setting = (f"at most {args.target_bytes:g} bytes per digit (digits per level: "
                       + ", ".join(f"{k}: {n}" for k, n in enumerate(used) if n) + ")")
            if len(data) > args.target_bytes * len(images):
                setting += "; even the smallest level is larger"
        else:
            level = _codec_level(model, args)
            data = compress_rd(model, images, level)
            setting = f"level {level} (λ {model.lambdas[level]:g})"
        decoded = decompress_rd(data, model, str(out))
    else:
        if args.level is not None or args.target_bytes is not None:
            raise CompressError(f"--level and --target-bytes choose a rate of a codec; {name} is an "
                                "autoencoder: use --bits")
        data = compress_images(model, images, args.bits, args.codec)
        packed = unpack(data, str(out))
        decoded, setting = decode_codes(model, packed.codes()), f"{args.bits} bits ({packed.codec})"
    atomic_write_bytes(out, data)
    psnr = metrics.psnr(decoded, images).mean().item()
    print(f"{out}: {len(images)} images with {name} at {setting}: {len(data)} bytes, "
          f"{len(data) / len(images):.1f} bytes per image, mean PSNR {psnr:.2f} dB")
    return 0


def _codec_level(model, args) -> int:
    level = model.levels // 2 if args.level is None else args.level
    if not 0 <= level < model.levels:
        raise CompressError(f"--level must be 0..{model.levels - 1} for this codec, got {level}")
    return level


def cmd_decompress(args) -> int:
    source, out = Path(args.file), Path(args.out)
    data = read_compressed(source)
    if file_version(data) in RD_VERSIONS:
        packed = unpack_rd(data, str(source))
        model, name = _model_for(args, packed, str(source))
        if not _is_codec(model):
            raise CompressError(f"{source} holds a rate–distortion codec's symbols; {name} is an autoencoder")
        check_rd_model(packed, model, str(source))
        _refuse_overwrite(out, args.force)
        images = decode_rd(packed, model, str(source))
    else:
        packed = unpack(data, str(source))
        model, name = _model_for(args, packed, str(source))
        if _is_codec(model):
            raise CompressError(f"{source} holds an autoencoder's codes; {name} is a rate–distortion codec")
        check_model(packed, model, str(source))
        _refuse_overwrite(out, args.force)
        images = decode_codes(model, packed.codes())
    write_images(images, out)
    print(f"{out}: {len(images)} images decoded with {name}")
    return 0


def add_commands(subparsers) -> None:
    """Register `compress` and `decompress` on the CLI's subparsers."""
    c = subparsers.add_parser("compress", help="compress MNIST digits into one file with an autoencoder")
    source = c.add_mutually_exclusive_group()
    source.add_argument("--split", choices=("test", "train"), default="test", help="MNIST split (default test)")
    source.add_argument("--images", metavar="FOLDER", help="compress the images in this folder instead")
    c.add_argument("--count", type=int, help="only the first N images")
    c.add_argument("--bits", type=int, default=8, help=f"bits per code dimension, 1..{MAX_BITS} (default 8)")
    c.add_argument("--codec", choices=("auto", *CODECS), default="auto", help="entropy coder (default: smaller)")
    c.add_argument("--level", type=int, help="a rate–distortion codec's rate level (0 = smallest files)")
    c.add_argument("--target-bytes", type=float, help="a codec's best mean PSNR within this many bytes per digit, "
                                                      "whole file counted (each digit gets its own level)")
    c.add_argument("--out", required=True, help="the compressed file to write")
    d = subparsers.add_parser("decompress", help="rebuild the images of a compressed file")
    d.add_argument("file", help="a file written by `compress`")
    d.add_argument("--out", required=True, help="an .npy file (N,1,28,28 float32) or a folder for PNGs")
    for p in (c, d):
        p.add_argument("--model", help="a shipped model or codec by name, e.g. conv_upsample-32, rd_codec")
        p.add_argument("--checkpoint", help="a checkpoint file (.pt) instead of a shipped model")
        p.add_argument("--weights", help="folder with manifest.json (default: the shipped weights/)")
        p.add_argument("--force", action="store_true", help="replace --out if it exists")
    c.set_defaults(func=cmd_compress)
    d.set_defaults(func=cmd_decompress)


def read_rate_distortion(path: str | os.PathLike | None = None) -> dict:
    """The results `python -m bench.rate_distortion` wrote: {"rows": [...], "summary": ..., ...}."""
    path = Path(path or RATE_DISTORTION_JSON)
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise CompressError(f"{path} is missing: run `python -m bench.rate_distortion`") from e
    except (OSError, ValueError) as e:
        raise CompressError(f"{path} is unreadable ({e}): run `python -m bench.rate_distortion` again") from e
    if not isinstance(results, dict) or not all(k in results for k in ("rows", "summary", "environment")):
        raise CompressError(f"{path} holds no table of results: run `python -m bench.rate_distortion` again")
    return results
