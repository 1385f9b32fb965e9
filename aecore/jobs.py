"""Background training for an interactive app, UI-free. A `TrainingJob` runs `train` in a
worker thread and keeps what a UI polls: state, latest Progress, loss history, fixed
test digits reconstructed after each epoch, the message, the model. The process-wide
`SCHEDULER` runs one job at a time; a few more wait in a queue, further ones are refused.

Threads: `torch.set_num_threads` sets the calling thread's count *and* the default of
every new thread (Streamlit runs each script run in a new thread): process-wide in
practice. A running job sets TORCH_THREADS = 1 for itself and as that default, restoring
the old default when it ends: one core trains, the other serves the server and inference
(one thread reconstructs a digit in milliseconds: docs/BENCHMARKS.md, interactive latency).
The GIL: the worker releases it around every torch op; a busy Python thread (a script
run, the event loop) then keeps it for up to the switch interval (5 ms by default) each
time, and small-batch training slows several-fold. A running job lowers the interval to
SWITCH_INTERVAL_S, which wins most of that back.

Abandoned jobs: a job polls `alive()` (the app passes "is this browser session still
connected?") and stops itself once that has been false for `abandon_after_s`; a queued
job whose owner is gone is dropped from the queue.
"""
from __future__ import annotations

import copy
import itertools
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from .checkpoint import checkpoint_bytes
from .data import load_mnist
from .models import Autoencoder, create_model
from .noise import add_noise
from .trainer import ConfigError, Progress, TrainConfig, TrainingDiverged, train

QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "failed"
FINISHED = (DONE, STOPPED, FAILED)
TORCH_THREADS = 1
SWITCH_INTERVAL_S = 0.001   # GIL hand-over while a job runs (Python's default: 0.005)
CURVE_POINTS_PER_EPOCH = 25   # the batch-loss curve is averaged down to this many points

class QueueFull(RuntimeError):
    """The scheduler's queue is full; the message says so in words."""


def preview_indices(labels: torch.Tensor, digits: int = 10) -> list[int]:
    """The index of the first example of each digit 0..digits-1 (a fixed, readable row)."""
    return [int((labels == d).nonzero()[0]) for d in range(digits) if (labels == d).any()]


@dataclass
class JobView:
    """A consistent copy of a job's state for one UI refresh."""
    state: str
    label: str
    progress: Progress | None
    history: dict                     # per epoch: epoch, train_loss, test_loss, test_mse
    curve: dict                       # x (epochs, fractional), loss (averaged batch losses)
    preview_epoch: int                # epoch of `preview_recon` (0 = before training)
    preview_recon: torch.Tensor | None
    message: str | None               # why it stopped or failed
    model: Autoencoder | None         # usable model once finished (None while training)
    position: int | None = None       # 0 running, k >= 1 waiting, None otherwise
    objective: str = "loss"           # what the loss measures, for a chart's axis


class TrainingJob:
    """One training run of a fresh `model_name` model; see the module docstring.

    data: (train_images, test_images), default the MNIST sets, loaded in the worker.
    preview: (K,1,28,28) clean digits reconstructed after every epoch.
    on_finish(job): called once in the worker thread when the job ends, any way it ends."""

    _ids = itertools.count(1)

    def __init__(self, model_name: str, config: TrainConfig, *, code_size: int | None = None,
                 label: str | None = None, data: tuple | None = None,
                 preview: torch.Tensor | None = None, alive: Callable[[], bool] | None = None,
                 abandon_after_s: float = 10.0, on_finish: Callable[["TrainingJob"], None] | None = None):
        self.config = copy.deepcopy(config).validate()   # raises ConfigError with a message
        try:
            self._model = create_model(model_name, **({} if code_size is None else {"code_size": code_size}))
        except ValueError as e:  # unknown architecture, bad code size
            raise ConfigError(str(e)) from e
        self.id = next(self._ids)
        self.label, self._default_label = label or default_label(self._model, self.config), label is None
        self.state, self.message, self.progress = QUEUED, None, None
        self.history = {"epoch": [], "train_loss": [], "test_loss": [], "test_mse": []}
        self.curve = {"x": [], "loss": []}
        self.preview = preview
        self.preview_inputs = _noisy(preview, self.config) if preview is not None else None
        self.preview_recon, self.preview_epoch = None, 0
        self.stop_event = threading.Event()
        self._data, self._alive, self._abandon_after = data, alive or (lambda: True), abandon_after_s
        self._on_finish, self._scheduler = on_finish, None
        self._lock, self._finished = threading.Lock(), threading.Event()
        self._dead_since, self._last_alive_check, self._good_state = None, 0.0, None
        self._batch_sum, self._batch_n, self._ckpt, self._kept = 0.0, 0, None, False
        self.thread: threading.Thread | None = None

    # ---- what the UI calls -------------------------------------------------------------
    def stop(self, reason: str = "stopped by the user") -> None:
        """Ask the run to stop after the current batch (the model trained so far is kept);
        a queued job leaves the queue at once."""
        with self._lock:
            if self.state in FINISHED:
                return
            self.message = reason
        self.stop_event.set()
        if self._scheduler is not None:
            self._scheduler.withdraw(self)

    def view(self) -> JobView:
        # the position first, outside our lock: the scheduler takes its lock, then ours
        position = self._scheduler.position(self) if self._scheduler else None
        with self._lock:
            return JobView(self.state, self.label, self.progress,
                           {k: list(v) for k, v in self.history.items()},
                           {k: list(v) for k, v in self.curve.items()},
                           self.preview_epoch, self.preview_recon, self.message, self.model,
                           position, self._model.objective_name(self.config.loss))

    @property
    def model(self) -> Autoencoder | None:
        """The trained model, only once the job has finished and left one."""
        return self._model if self.state in FINISHED and self._kept else None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished; True if it has."""
        return self._finished.wait(timeout)

    def checkpoint(self) -> bytes:
        """The finished model as checkpoint bytes (computed once)."""
        if self.model is None:
            raise RuntimeError("this job has no model to save")
        if self._ckpt is None:
            metrics = {"test_mse": self.history["test_mse"][-1]} if self.history["test_mse"] else {}
            self._ckpt = checkpoint_bytes(self.model, metrics=metrics, history=self.history,
                                          training={**self._model.training_info, "state": self.state})
        return self._ckpt

    # ---- the worker --------------------------------------------------------------------
    def _start(self, scheduler: "Scheduler") -> None:
        with self._lock:
            self.state = RUNNING
        self.thread = threading.Thread(target=self._run, args=(scheduler,), daemon=True,
                                       name=f"aecore-train-{self.id}")
        self.thread.start()

    def _run(self, scheduler: "Scheduler") -> None:
        threads, switch = torch.get_num_threads(), sys.getswitchinterval()
        torch.set_num_threads(TORCH_THREADS)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            train_images, test_images = self._data or (load_mnist("train")[0], load_mnist("test")[0])
            if self.preview is not None:
                self._update_preview(0)
            result = train(self._model, train_images, test_images, self.config,
                           callback=self._on_progress, stop=self.stop_event)
            self._end(STOPPED if result.stopped else DONE, self.message if result.stopped else None)
        except TrainingDiverged as e:  # train() restored the last good epoch
            self._end(FAILED, f"Training diverged: {e}", keep=bool(self.history["epoch"]))
        except Exception as e:  # noqa: BLE001 - any failure must end the job, not the server
            self._end(FAILED, f"Training failed ({type(e).__name__}: {e}). " + (
                "The model of the last finished epoch is kept." if self._restore_good_state()
                else "No epoch finished, so there is no model to keep."), keep=self._good_state is not None)
        finally:
            torch.set_num_threads(threads)
            sys.setswitchinterval(switch)
            scheduler.job_ended(self)

    def _restore_good_state(self) -> bool:
        try:
            if self._good_state is not None:
                self._model.load_state_dict(self._good_state)
            self._model.eval().cpu()
        except Exception:  # noqa: BLE001 - then there is no model to keep
            self._good_state = None
        return self._good_state is not None

    def _on_progress(self, p: Progress) -> None:
        with self._lock:
            self.progress = p
            if p.event == "batch":
                self._add_curve_point(p)
            else:
                for key, value in (("epoch", p.epoch), ("train_loss", p.loss),
                                   ("test_loss", p.test_loss), ("test_mse", p.test_mse)):
                    self.history[key].append(value)
        if p.event == "epoch":
            self._good_state = copy.deepcopy(self._model.state_dict())
            if self.preview is not None:
                self._update_preview(p.epoch)
        if not self.stop_event.is_set() and not self.owner_alive():
            self.stop(f"stopped: its browser session has been gone for over {self._abandon_after:g} s")

    def _add_curve_point(self, p: Progress) -> None:
        self._batch_sum, self._batch_n = self._batch_sum + p.loss, self._batch_n + 1
        if self._batch_n >= max(1, p.batches // CURVE_POINTS_PER_EPOCH) or p.batch == p.batches:
            self.curve["x"].append(p.epoch - 1 + p.batch / p.batches)
            self.curve["loss"].append(self._batch_sum / self._batch_n)
            self._batch_sum, self._batch_n = 0.0, 0

    @torch.no_grad()
    def _update_preview(self, epoch: int) -> None:
        model = self._model
        was_training = model.training
        device = next(model.parameters()).device
        recon = model.eval().reconstruct(self.preview_inputs.to(device)).cpu()
        model.train(was_training)
        with self._lock:
            self.preview_recon, self.preview_epoch = recon, epoch

    def owner_alive(self, every_s: float = 0.5) -> bool:
        """False once `alive()` has said False for longer than abandon_after_s (checked at
        most every `every_s` seconds, so a per-batch call costs nothing)."""
        now = time.monotonic()
        if now - self._last_alive_check >= every_s:
            self._last_alive_check = now
            if self._alive():
                self._dead_since = None
            elif self._dead_since is None:
                self._dead_since = now
        return self._dead_since is None or now - self._dead_since <= self._abandon_after

    def _end(self, state: str, message: str | None, keep: bool = True) -> None:
        with self._lock:
            if self.state in FINISHED:
                return
            self._kept = keep and (state != STOPPED or self.progress is not None)
            self.state, self.message = state, message
            if self._default_label and state != DONE and self._kept:
                self.label = finished_label(self._model, self.config, self.progress, len(self.history["epoch"]), state)
            self._model.training_info = {**asdict(self.config), "label": self.label}   # also the checkpoint's
        self._finished.set()
        if self._on_finish is not None:
            self._on_finish(self)


MAX_SESSION_MODELS = 8   # a session's own models: the oldest goes beyond this (bounded memory)


def keep_model(models: dict, label: str, model: Autoencoder, limit: int = MAX_SESSION_MODELS) -> str:
    """Put `model` into `models` under a unique label ("x", "x (2)", …), dropping the oldest
    beyond `limit`; returns the label used. Both ways a session gets a model (a finished
    training, an uploaded checkpoint) go through here."""
    base, i = label, 2
    while label in models:
        label, i = f"{base} ({i})", i + 1
    models[label] = model
    while len(models) > limit:
        del models[next(iter(models))]
    return label


def add_to(models: dict) -> Callable[[TrainingJob], None]:
    """An on_finish that keeps the job's model (if any) in `models`. It runs in the worker
    thread: a UI passes a plain dict (its session's models)."""
    def add(job: TrainingJob) -> None:
        if job.model is not None:
            keep_model(models, job.label, job.model)
    return add


def default_label(model: Autoencoder, config: TrainConfig) -> str:
    noise = f", {config.noise} {config.noise_level:g}" if config.noise else ""
    return f"{model.name}-{model.code_size}{noise}, {config.epochs} ep"


def finished_label(model: Autoencoder, config: TrainConfig, progress: Progress | None, epochs_done: int,
                   state: str) -> str:
    """The label of a run that ended early: named by what it got, not what it was asked for.
    A stopped run keeps the weights of the epoch it was in; a failed one, its last good epoch."""
    base = default_label(model, config).rsplit(", ", 1)[0]
    if state == STOPPED and progress is not None and progress.batch < progress.batches:
        return f"{base}, stopped at epoch {progress.epoch} of {config.epochs}"
    return f"{base}, {epochs_done} of {config.epochs} ep"


def _noisy(images: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """The preview inputs: clean, or corrupted once with a fixed seed for a denoiser."""
    if not config.noise:
        return images
    return add_noise(images, config.noise, config.noise_level, torch.Generator().manual_seed(1234))


@dataclass
class Scheduler:
    """Runs one job at a time; up to `max_waiting` more wait in order, beyond that
    `submit` refuses with QueueFull."""
    max_waiting: int = 3
    running: TrainingJob | None = None
    waiting: list = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def submit(self, job: TrainingJob) -> int:
        """Start `job` or queue it; returns its position (0 = running, k = k-th waiting)."""
        with self._lock:
            if job.state != QUEUED or job._scheduler is not None:
                raise ValueError("a job can be submitted only once")
            self._drop_abandoned()
            if self.running is not None and len(self.waiting) >= self.max_waiting:
                raise QueueFull(f"The training queue is full: one training is running and "
                                f"{len(self.waiting)} are waiting. Try again when one has finished.")
            job._scheduler = self
            self.waiting.append(job)
            self._dispatch()
            return self.position(job)

    def position(self, job: TrainingJob) -> int | None:
        with self._lock:
            if job is self.running:
                return 0
            return self.waiting.index(job) + 1 if job in self.waiting else None

    def withdraw(self, job: TrainingJob) -> None:
        """Take a queued job out of the line (it ends as stopped, with no model)."""
        with self._lock:
            if job in self.waiting:
                self.waiting.remove(job)
                job._end(STOPPED, job.message or "stopped before it started", keep=False)

    def job_ended(self, job: TrainingJob) -> None:
        with self._lock:
            if job is self.running:
                self.running = None
            self._dispatch()

    def _dispatch(self) -> None:
        self._drop_abandoned()
        if self.running is None and self.waiting:
            self.running = self.waiting.pop(0)
            self.running._start(self)

    def _drop_abandoned(self) -> None:
        for job in [j for j in self.waiting if not j.owner_alive(every_s=0)]:
            self.waiting.remove(job)
            job._end(STOPPED, "dropped from the queue: its browser session is gone", keep=False)


SCHEDULER = Scheduler()   # the one per process (the app's server)
