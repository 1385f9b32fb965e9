"""The training side of a job, for any back end: `run(spec, send, stop)` trains one model
and reports what a UI shows as plain messages. It runs wherever a launcher puts it (a
local process today, aecore.launcher; a task on another machine later), so it receives
only plain data and sends only plain data:

spec (see `make_spec`): {"model": name, "code_size": int | None, "config": TrainConfig as a
dict, "preview": (K,1,28,28) float32 array | None, "data": None (MNIST) or (train, test),
each None, an array or the path of a .npy file, "threads": torch threads}.

Messages, in order (each a dict with "kind"):
  started   pid, host, threads: the process is up and has imported torch
  preview   epoch 0, preview: the untrained model's reconstructions (K,28,28 uint8)
  progress  progress (a Progress as a dict), curve (new [x, loss] points of the batch-loss
            curve): at most every PROGRESS_EVERY_S, and at the end of every epoch
  epoch     progress, curve, preview (K,28,28 uint8 reconstructions), weights (checkpoint
            bytes, at most every WEIGHTS_EVERY_S: what survives a worker that is killed)
  end       state (done / stopped / failed), message, weights (checkpoint bytes or None)

`stop` is anything with is_set(), checked before every batch; a stopped run keeps its
weights. Nothing here knows about processes, pipes or a UI.
"""
from __future__ import annotations

import copy
import os
import socket
import time
import warnings
from dataclasses import asdict
from typing import Callable

import numpy as np
import torch

from .checkpoint import checkpoint_bytes
from .data import load_mnist
from .models import create_model
from .trainer import Progress, TrainConfig, TrainingDiverged, train

DONE, STOPPED, FAILED = "done", "stopped", "failed"
PROGRESS_EVERY_S = 0.1      # a UI polls a few times a second: more messages would be waste
WEIGHTS_EVERY_S = 2.0       # snapshot of the last finished epoch, kept if the worker dies
CURVE_POINTS_PER_EPOCH = 25   # the batch-loss curve is averaged down to this many points


def make_spec(model_name: str, code_size: int | None, config: TrainConfig, preview=None, data=None,
              threads: int = 1) -> dict:
    """The plain-data description of a run (picklable across processes and machines)."""
    def plain(x):
        if x is None or isinstance(x, (str, os.PathLike)):
            return None if x is None else os.fspath(x)
        return (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float32)
    return {"model": model_name, "code_size": code_size, "config": asdict(config),
            "preview": plain(preview), "data": None if data is None else tuple(plain(d) for d in data),
            "threads": int(threads)}


def load_images(item) -> torch.Tensor | None:
    if item is None:
        return None
    if isinstance(item, str):   # memory-mapped: a large set is read where it lies, not copied
        array = np.load(item, mmap_mode="r")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # read-only: batches are copies anyway
            return torch.from_numpy(array)
    return torch.from_numpy(np.asarray(item, dtype=np.float32))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(K,1,28,28) in [0,1] -> (K,28,28) uint8: a tenth of the bytes, all a screen shows."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).reshape(-1, 28, 28).numpy()


class Reporter:
    """Turns train()'s callbacks into throttled messages and keeps the last good epoch."""

    def __init__(self, model, config: TrainConfig, preview: torch.Tensor | None, send: Callable[[dict], None]):
        self.model, self.config, self.preview, self.send = model, config, preview, send
        self.curve, self._sum, self._n = [], 0.0, 0
        self._last_sent, self._last_weights = 0.0, None
        self.epochs_done, self.good_state = 0, None

    def on_progress(self, p: Progress) -> None:
        if p.event == "batch":
            self._add_curve_point(p)
            if time.monotonic() - self._last_sent >= PROGRESS_EVERY_S:
                self._send("progress", p)
            return
        self.epochs_done, self.good_state = p.epoch, copy.deepcopy(self.model.state_dict())
        now = time.monotonic()
        weights = None
        if self._last_weights is None or now - self._last_weights >= WEIGHTS_EVERY_S:
            weights, self._last_weights = checkpoint_bytes(self.model), now
        self._send("epoch", p, preview=self.reconstruct(), weights=weights)

    def _send(self, kind: str, p: Progress, **extra) -> None:
        self.send({"kind": kind, "progress": asdict(p), "curve": self.curve, **extra})
        self.curve, self._last_sent = [], time.monotonic()

    def _add_curve_point(self, p: Progress) -> None:
        self._sum, self._n = self._sum + p.loss, self._n + 1
        if self._n >= max(1, p.batches // CURVE_POINTS_PER_EPOCH) or p.batch == p.batches:
            self.curve.append([p.epoch - 1 + p.batch / p.batches, self._sum / self._n])
            self._sum, self._n = 0.0, 0

    @torch.no_grad()
    def reconstruct(self) -> np.ndarray | None:
        if self.preview is None:
            return None
        model, was_training = self.model, self.model.training
        device = next(model.parameters()).device
        recon = model.eval().reconstruct(self.preview.to(device)).float().cpu()
        model.train(was_training)
        return to_uint8(recon)

    def restore_good_state(self) -> bool:
        try:
            if self.good_state is not None:
                self.model.load_state_dict(self.good_state)
            self.model.eval().cpu()
        except Exception:  # noqa: BLE001 - then there is no model to keep
            self.good_state = None
        return self.good_state is not None

    def end(self, state: str, message: str | None, keep: bool) -> None:
        weights = None
        if keep:
            try:
                weights = checkpoint_bytes(self.model)
            except Exception as e:  # noqa: BLE001 - say so rather than die silently
                state, message = FAILED, f"{message or 'Training ended'}; the model could not be saved ({e})"
        self.send({"kind": "end", "state": state, "message": message, "weights": weights})


def run(spec: dict, send: Callable[[dict], None], stop) -> None:
    """Train the run `spec` describes, reporting through `send` (module docstring). Never
    raises for a training failure: it ends with an "end" message saying what happened."""
    torch.set_num_threads(max(1, int(spec.get("threads", 1))))
    send({"kind": "started", "pid": os.getpid(), "host": socket.gethostname(), "threads": torch.get_num_threads()})
    config = TrainConfig(**spec["config"])
    code = spec.get("code_size")
    model = create_model(spec["model"], **({} if code is None else {"code_size": code}))
    preview = None if spec.get("preview") is None else torch.from_numpy(spec["preview"])
    reporter = Reporter(model, config, preview, send)
    try:
        data = spec.get("data")
        train_images, test_images = (load_mnist("train", as_uint8=True)[0], load_mnist("test")[0]) if data is None \
            else (load_images(data[0]), load_images(data[1]))
        if preview is not None:
            send({"kind": "preview", "epoch": 0, "preview": reporter.reconstruct()})
        result = train(model, train_images, test_images, config, callback=reporter.on_progress, stop=stop)
        reporter.end(STOPPED if result.stopped else DONE, None, keep=True)
    except TrainingDiverged as e:  # train() restored the last good epoch
        reporter.end(FAILED, f"Training diverged: {e}", keep=reporter.epochs_done > 0)
    except Exception as e:  # noqa: BLE001 - any failure must end the job with a message
        kept = reporter.restore_good_state()
        reporter.end(FAILED, f"Training failed ({type(e).__name__}: {e}). " + (
            "The model of the last finished epoch is kept." if kept
            else "No epoch finished, so there is no model to keep."), keep=kept)
