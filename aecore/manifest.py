"""`weights/manifest.json` without torch: the shipped checkpoints, their recorded test
metrics and example picture, and a check of each file against its recorded sha256.
Enough for the Home page to render before torch is imported (aecore.shipped loads the
models themselves)."""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .errors import CheckpointError

WEIGHTS_ENV = "AECORE_WEIGHTS"   # another weights folder (tests, experiments)
EXAMPLE_INDEX = 0                # the test digit every model's example shows (a 7)


def weights_dir() -> Path:
    return Path(os.environ.get(WEIGHTS_ENV) or Path(__file__).resolve().parent.parent / "weights")


def read_manifest(folder: Path | None = None) -> list[dict]:
    path = Path(folder or weights_dir()) / "manifest.json"
    try:
        return list(json.loads(path.read_text())["models"])
    except FileNotFoundError as e:
        raise CheckpointError(f"{path} is missing: no shipped models to load") from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable manifest ({e})") from e


def file_problem(folder: Path, entry: dict) -> str | None:
    """Why the checkpoint of `entry` cannot be the one the manifest describes, or None when
    it is there and (if the manifest records a sha256) byte for byte that file."""
    path = Path(folder) / str(entry.get("file"))
    try:
        stat = path.stat()
        digest = _sha256(path, stat.st_size, stat.st_mtime_ns)
    except OSError as e:
        return f"{path}: {e.strerror or e}"
    expected = entry.get("sha256")
    if expected and digest != expected:
        return (f"{path}: not the file the manifest records (sha256 differs): truncated or corrupt, "
                f"or replaced; rerun its recorded command to rebuild it")
    return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:   # size and mtime: a changed file is hashed again
    return file_sha256(path)


def pack_image(image: np.ndarray) -> str:
    """(28,28) floats in [0,1] -> base64 of 784 bytes."""
    pixels = (np.clip(np.asarray(image, dtype=np.float32).reshape(28, 28), 0, 1) * 255).round().astype(np.uint8)
    return base64.b64encode(pixels.tobytes()).decode()


def unpack_image(text: str) -> np.ndarray:
    """The inverse of pack_image: (28,28) float32 in [0,1]; ValueError if it is not 784 bytes."""
    raw = base64.b64decode(text, validate=True)
    if len(raw) != 784:
        raise ValueError(f"an example image has {len(raw)} bytes, not 784")
    return np.frombuffer(raw, dtype=np.uint8).reshape(28, 28).astype(np.float32) / 255


def read_example(entry: dict) -> tuple[np.ndarray, list[float], np.ndarray] | None:
    """(input, code, reconstruction) recorded for `entry`, or None when it has none (or a
    malformed one): the caller then computes it from the model."""
    example = entry.get("example")
    try:
        code = [float(v) for v in example["code"]]
        if not code or not all(np.isfinite(code)):
            return None
        return unpack_image(example["input"]), code, unpack_image(example["reconstruction"])
    except (TypeError, KeyError, ValueError):
        return None
