"""`weights/manifest.json` without torch: the shipped checkpoints, their recorded test
metrics and example picture, and a check of each file against its recorded sha256.
Enough for the Home page to render before torch is imported (aecore.shipped loads the
models themselves). Also the one writer of a manifest (`record_in_manifest`, what
`aecore train --manifest` calls), under a file lock."""
from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes, read_bounded
from .errors import CheckpointError
from .paths import WEIGHTS_ENV, weights_dir

__all__ = ["WEIGHTS_ENV", "weights_dir", "EXAMPLE_INDEX", "read_manifest", "read_manifest_file",
           "record_in_manifest", "file_problem", "file_sha256", "pack_image", "unpack_image", "read_example"]

EXAMPLE_INDEX = 0                # the test digit every model's example shows (a 7)
MAX_MANIFEST_BYTES = 16 * 2**20  # a manifest we are willing to read (the shipped one: about 100 kB)


def read_manifest(folder: Path | None = None) -> list[dict]:
    path = Path(folder or weights_dir()) / "manifest.json"
    if not path.exists():
        raise CheckpointError(f"{path} is missing: no shipped models to load")
    try:
        return list(json.loads(_read(path))["models"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable manifest ({e})") from e


def _read(path: Path) -> bytes:
    """The manifest's bytes, never more than MAX_MANIFEST_BYTES read (else ValueError: why)."""
    return read_bounded(path, MAX_MANIFEST_BYTES, ValueError, "a manifest")


def read_manifest_file(manifest: Path) -> dict:
    """The whole manifest for updating it ({"models": []} when there is none yet);
    ValueError with a one-line message when it exists but is unusable."""
    if not manifest.exists():
        return {"models": []}
    try:
        entries = json.loads(_read(manifest))
        if not isinstance(entries.get("models"), list):
            raise ValueError("no 'models' list")
        return entries
    except (ValueError, AttributeError, OSError) as e:
        raise ValueError(f"{manifest}: not a usable manifest ({e}); fix or remove it") from e


def record_in_manifest(manifest: Path, out: Path, command: str, metrics: dict, model,
                       example: dict | None = None, extra: dict | None = None) -> None:
    """Add (or replace, in place) the entry of checkpoint `out` trained by `command`; `extra`:
    more fields of the entry (a sweep records its spec's name as "sweep")."""
    # one writer at a time: trainings that finish together (scripts/train-weights.sh runs
    # two chains) must not drop each other's entry between read and write
    with open(manifest.with_name(manifest.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _record(manifest, out, command, metrics, model, example, extra or {})


def _record(manifest: Path, out: Path, command: str, metrics: dict, model, example: dict | None,
            extra: dict) -> None:
    entries = read_manifest_file(manifest)
    entry = {"file": os.path.relpath(out, manifest.parent), "model": model.name, "config": model.config,
             "code_size": model.code_size, "command": command, "metrics": metrics,
             "sha256": file_sha256(out), **extra, **({"example": example} if example else {})}
    models = entries["models"]
    same = [i for i, e in enumerate(models) if e.get("file") == entry["file"]]
    if same:   # a retrained model keeps its place (the app lists models in manifest order)
        models[same[0]] = entry
        entries["models"] = [e for i, e in enumerate(models) if i not in same[1:]]
    else:
        models.append(entry)
    atomic_write_bytes(manifest, (json.dumps(entries, indent=2) + "\n").encode())


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
