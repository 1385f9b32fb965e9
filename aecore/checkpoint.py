"""Checkpoints: a plain dict of primitives and tensors (after nanoGPT), written
atomically and read with `torch.load(weights_only=True)`, so loading never runs code.

    {"format": "aecore-checkpoint", "version": 1, "model": name, "config": {...},
     "state_dict": {...}, "metrics": {...}, "history": {...}, "training": {...}}
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import torch

from .atomic import atomic_write_bytes, read_bounded
from .errors import CheckpointError
from .models import Autoencoder, UnknownModelError, create_model

FORMAT, VERSION = "aecore-checkpoint", 1
MAX_BYTES = 64 * 1024 * 1024


def checkpoint_dict(model: Autoencoder, *, metrics: dict | None = None,
                    history: dict | None = None, training: dict | None = None) -> dict:
    """Weights in float32, or in the dtype the trainer rounded them to (`weights_dtype`)."""
    dtype = getattr(torch, getattr(model, "weights_dtype", "float32"))
    store = lambda v: v.detach().cpu().to(dtype) if v.is_floating_point() else v.detach().cpu().clone()
    return {"format": FORMAT, "version": VERSION, "model": model.name, "config": dict(model.config),
            "state_dict": {k: store(v) for k, v in model.state_dict().items()},
            "metrics": dict(metrics or {}), "history": dict(history or {}), "training": dict(training or {})}


def checkpoint_bytes(model: Autoencoder, **extra) -> bytes:
    buffer = io.BytesIO()
    torch.save(checkpoint_dict(model, **extra), buffer)
    return buffer.getvalue()


def save_checkpoint(model: Autoencoder, path: str | os.PathLike, **extra) -> Path:
    """Write atomically: an interrupted or failed save leaves any older file intact."""
    path = Path(path)
    atomic_write_bytes(path, checkpoint_bytes(model, **extra))
    return path


def read_checkpoint(source: str | os.PathLike | bytes, name: str | None = None) -> dict:
    """The validated checkpoint dict from a path or bytes (`name` labels bytes in errors)."""
    label = name or (str(source) if not isinstance(source, bytes) else "uploaded file")
    fail = lambda why: CheckpointError(f"{label}: {why}")
    ckpt = load_torch_file(source, MAX_BYTES, fail, "a checkpoint file")
    return _validate(ckpt, fail)


def load_torch_file(source: str | os.PathLike | bytes, limit: int, fail, what: str):
    """What torch.save wrote to `source` (a path or bytes), read bounded to `limit` bytes and
    loaded with `weights_only=True`: tensors and plain values, never code. `what` names the
    kind of file in the messages (`fail` makes the exception from one); the caller validates."""
    data = read_bounded(source, limit, fail, what)
    if not data.startswith(b"PK\x03\x04"):  # torch.save's zip container
        raise fail(f"not {what} (expected the zip container torch.save writes)")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise fail("refused: the file holds objects other than tensors and plain values "
                   "(a pickle that could run code is never loaded)") from e
    except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError, IndexError) as e:
        raise fail(f"not {what}, or it is truncated or corrupt") from e


def _validate(ckpt, fail) -> dict:
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise fail("not an aecore checkpoint (no 'format' marker)")
    if ckpt.get("version") != VERSION:
        raise fail(f"checkpoint format version {ckpt.get('version')!r} is not supported (this "
                   f"aecore reads version {VERSION})")
    for key, kind in (("model", str), ("config", dict), ("state_dict", dict)):
        if not isinstance(ckpt.get(key), kind):
            raise fail(f"the '{key}' entry is missing or malformed")
    for key, tensor in ckpt["state_dict"].items():
        if not isinstance(tensor, torch.Tensor):
            raise fail(f"weight {key!r} is not a tensor")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise fail(f"weight {key!r} holds NaN or infinite values")
    return ckpt


def misfit(model: Autoencoder, state_dict: dict) -> str | None:
    """Why `state_dict` cannot be `model`'s (the first reason), or None when every tensor fits."""
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, unexpected = [k for k in wanted if k not in state_dict], [k for k in state_dict if k not in wanted]
    if missing or unexpected:
        return (f"missing weights {', '.join(missing[:3])}" if missing
                else f"unexpected weights {', '.join(unexpected[:3])}")
    for key, shape in wanted.items():
        if tuple(state_dict[key].shape) != shape:
            return f"{key} has shape {tuple(state_dict[key].shape)} in the file, the model needs {shape}"
    return None


def model_from_checkpoint(ckpt: dict, label: str = "checkpoint") -> Autoencoder:
    """The model a validated checkpoint describes, with its weights. Its config is only a
    claim: the model is first built on the meta device (shapes, no memory) and must match the
    weights actually in the file, so a small file cannot make the reader allocate a model of
    any size it names."""
    try:
        with torch.device("meta"):
            skeleton = create_model(ckpt["model"], **ckpt["config"])
    except (UnknownModelError, ValueError, TypeError) as e:
        raise CheckpointError(f"{label}: cannot rebuild the model: {e}") from e
    if why := misfit(skeleton, ckpt["state_dict"]):
        raise CheckpointError(f"{label}: the weights do not fit a {ckpt['model']} model with {ckpt['config']}: {why}")
    model = skeleton.to_empty(device="cpu")   # no larger than the file's weights, each of which fills it
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as e:   # names and shapes fit: not expected, but never a traceback
        raise CheckpointError(f"{label}: the weights do not load into a {ckpt['model']} model: {e}") from e
    if any(t.dtype == torch.float16 for t in ckpt["state_dict"].values()):
        model.weights_dtype = "float16"   # saved again, it stays half the size (and exact)
    model.metrics = dict(ckpt.get("metrics") or {})
    model.history = dict(ckpt.get("history") or {})
    model.training_info = dict(ckpt.get("training") or {})
    return model.eval()


def trained_noise(model: Autoencoder) -> tuple[str, float] | None:
    """(noise kind, level) a model was trained to remove, or None for a plain autoencoder.
    Read from what a checkpoint or a training job recorded: `training_info` (a job's or a
    CLI run's settings, flat or under "config") or, for a shipped file, its metrics."""
    info = getattr(model, "training_info", None) or {}
    for source in (info, info.get("config") or {}, getattr(model, "metrics", None) or {}):
        if isinstance(source, dict) and source.get("noise"):
            return str(source["noise"]), float(source.get("noise_level") or 0.0)
    return None


def load_checkpoint(source: str | os.PathLike | bytes, name: str | None = None) -> Autoencoder:
    """A model in eval mode on the CPU, rebuilt from its config with strict weights.
    Raises CheckpointError with the file name and a reason for anything unusable."""
    label = name or (str(source) if not isinstance(source, bytes) else "uploaded file")
    return model_from_checkpoint(read_checkpoint(source, name), label)
