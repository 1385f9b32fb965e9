"""Background training for an interactive app, UI-free. A `TrainingJob` is one training
run as a UI sees it: state, latest Progress, loss history, fixed test digits reconstructed
after each epoch, the message, the model. The training itself runs elsewhere: a launcher
(aecore.launcher; by default a process of its own per job) runs aecore.worker with plain
data, and one thread per running job in this process only receives the worker's
messages and updates the job (cheap: it waits on a pipe almost all the time).

The process-wide `SCHEDULER` runs up to `slots` jobs at once (AECORE_TRAINING_SLOTS, by
default the cores the machine can spare: one fewer than it has, at least one; on a Ray
cluster, when the app is started with RAY_ADDRESS, the cluster's CPUs); up to
`max_waiting` more wait in order (AECORE_TRAINING_QUEUE), further ones are refused. It
tells a waiting job its place and an estimate of its wait, from the running jobs' ETAs and
the estimated lengths (`estimate_s`, from aecore.calibrate) of the jobs ahead, plus the
measured time a job's process takes to start.

History: jobs used to run in a thread of the server's process, one at a time. The GIL
then made training 3–40× slower whenever another browser session was busy (DESIGN.md),
and lowering the switch interval won only part of it back; a process per job ends that.

Faults: a worker that dies (killed, out of memory, crashed) ends its job as failed with
a message saying how, keeps the last epoch's weights it had sent (aecore.worker sends a
snapshot every few seconds), and frees its slot; other jobs do not notice.

Abandoned jobs: a job polls `alive()` (the app passes "is this browser session still
connected?") and stops itself once that has been false for `abandon_after_s`; a queued
job whose owner is gone is dropped from the queue.
"""
from __future__ import annotations

import copy
import heapq
import itertools
import os
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from .checkpoint import checkpoint_bytes, read_checkpoint
from .errors import CheckpointError
from .launcher import Launcher, ProcessLauncher, WorkerLost
from .models import Autoencoder, create_model, training_error
from .noise import add_noise
from .trainer import ConfigError, Progress, TrainConfig
from .worker import DONE, FAILED, STOPPED, make_spec

QUEUED, RUNNING = "queued", "running"
FINISHED = (DONE, STOPPED, FAILED)
TORCH_THREADS = 1          # per job's process: one core per job
SLOTS_ENV, QUEUE_ENV = "AECORE_TRAINING_SLOTS", "AECORE_TRAINING_QUEUE"
MAX_WAITING = 32           # default length of the queue
STARTUP_S = 3.0            # a job's process start before any is measured (the first imports torch)
RECEIVE_TIMEOUT_S = 0.25   # how often a job's thread looks up from the pipe (owner gone? stop?)


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
    history: dict                     # per epoch: epoch, train_loss, test_loss, test_mse, images_per_s
    curve: dict                       # x (epochs, fractional), loss (averaged batch losses)
    preview_epoch: int                # epoch of `preview_recon` (0 = before training)
    preview_recon: torch.Tensor | None
    message: str | None               # why it stopped or failed
    model: Autoencoder | None         # usable model once finished (None while training)
    position: int | None = None       # 0 running, k >= 1 waiting, None otherwise
    objective: str = "loss"           # what the loss measures, for a chart's axis
    wait_s: float | None = None       # a waiting job: estimated seconds until it starts
    pid: int | None = None            # the worker's process id, once it runs


class TrainingJob:
    """One training run of a fresh `model_name` model; see the module docstring.

    data: (train_images, test_images), default the MNIST sets, loaded by the worker; each
    a tensor, an array or the path of a .npy file (memory-mapped by the worker).
    preview: (K,1,28,28) clean digits reconstructed after every epoch.
    estimate_s: the expected length of the run (aecore.calibrate), for wait estimates.
    on_finish(job): called once, in the job's thread, when the job ends, any way it ends."""

    _ids = itertools.count(1)

    def __init__(self, model_name: str, config: TrainConfig, *, code_size: int | None = None,
                 label: str | None = None, data: tuple | None = None,
                 preview: torch.Tensor | None = None, alive: Callable[[], bool] | None = None,
                 abandon_after_s: float = 10.0, on_finish: Callable[["TrainingJob"], None] | None = None,
                 estimate_s: float | None = None, threads: int = TORCH_THREADS):
        self.config = copy.deepcopy(config).validate()   # raises ConfigError with a message
        try:
            self._model = create_model(model_name, **({} if code_size is None else {"code_size": code_size}))
        except ValueError as e:  # unknown architecture, bad code size
            raise ConfigError(str(e)) from e
        if error := training_error(model_name, self.config.noise):
            raise ConfigError(error)
        self.id, self.model_name, self.code_size = next(self._ids), model_name, code_size
        self.label, self._default_label = label or default_label(self._model, self.config), label is None
        self.state, self.message, self.progress = QUEUED, None, None
        self.history = {"epoch": [], "train_loss": [], "test_loss": [], "test_mse": [], "images_per_s": []}
        self.curve = {"x": [], "loss": []}
        self.preview = preview
        self.preview_inputs = _noisy(preview, self.config) if preview is not None else None
        self.preview_recon, self.preview_epoch = None, 0
        self.estimate_s, self.threads, self.pid, self.worker = estimate_s, threads, None, {}
        self.stop_event = threading.Event()
        self._data, self._alive, self._abandon_after = data, alive or (lambda: True), abandon_after_s
        self._on_finish, self._scheduler, self._handle = on_finish, None, None
        self._lock, self._finished = threading.Lock(), threading.Event()
        self._dead_since, self._last_alive_check = None, 0.0
        self._launched_at, self._weights, self._weights_epoch = None, None, 0
        self._ckpt, self._kept = None, False
        self.thread: threading.Thread | None = None

    # ---- what the UI calls -------------------------------------------------------------
    def stop(self, reason: str = "stopped by the user") -> None:
        """Ask the run to stop after the current batch (the model trained so far is kept);
        a queued job leaves the queue at once."""
        with self._lock:
            if self.state in FINISHED:
                return
            self.message = reason
            handle = self._handle
        self.stop_event.set()
        if handle is not None:
            handle.stop()
        if self._scheduler is not None:
            self._scheduler.withdraw(self)

    def view(self) -> JobView:
        # the scheduler's figures first, outside our lock: the scheduler takes its lock, then ours
        position = self._scheduler.position(self) if self._scheduler else None
        wait = self._scheduler.wait_s(self) if self._scheduler and position else None
        with self._lock:
            return JobView(self.state, self.label, self.progress,
                           {k: list(v) for k, v in self.history.items()},
                           {k: list(v) for k, v in self.curve.items()},
                           self.preview_epoch, self.preview_recon, self.message, self.model,
                           position, self._model.objective_name(self.config.loss), wait, self.pid)

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

    def remaining_s(self, startup_s: float = STARTUP_S) -> float | None:
        """Seconds this job still needs: its live ETA once it trains, else its estimate
        (plus the process start if it has not started); None when nothing is known."""
        with self._lock:
            if self.state in FINISHED:
                return 0.0
            if self.progress is not None:
                return self.progress.eta_s
            if self.estimate_s is None:
                return None
            if self._launched_at is None:
                return self.estimate_s + startup_s
            return max(0.0, self.estimate_s + startup_s - (time.monotonic() - self._launched_at))

    def spec(self) -> dict:
        """What the worker gets: plain data only (aecore.worker.make_spec)."""
        return make_spec(self.model_name, self.code_size, self.config, self.preview_inputs, self._data,
                         self.threads)

    # ---- the job's thread: launch, then follow the worker's messages -------------------
    def _start(self, scheduler: "Scheduler") -> None:
        with self._lock:
            self.state, self._launched_at = RUNNING, time.monotonic()
        self.thread = threading.Thread(target=self._run, args=(scheduler,), daemon=True,
                                       name=f"aecore-job-{self.id}")
        self.thread.start()

    def _run(self, scheduler: "Scheduler") -> None:
        handle = None
        try:
            handle = scheduler.launcher.launch(self.spec())
            with self._lock:
                self._handle = handle
            if self.stop_event.is_set():   # stopped while it launched
                handle.stop()
            self._follow(handle, scheduler)
        except Exception as e:  # noqa: BLE001 - whatever happens here, the job ends and frees its slot
            self._end(FAILED, f"Training failed ({type(e).__name__}: {e}). " + self._kept_words(),
                      keep=self._weights is not None)
        finally:
            if handle is not None:
                handle.close()
            scheduler.job_ended(self)

    def _follow(self, handle, scheduler: "Scheduler") -> None:
        while not self.finished:
            try:
                message = handle.receive(RECEIVE_TIMEOUT_S)
            except WorkerLost as e:
                self._end(FAILED, f"The training process ended unexpectedly ({e}). " + self._kept_words(),
                          keep=self._weights is not None)
                return
            if message is not None:
                self._apply(message, scheduler)
            if not self.stop_event.is_set() and not self.owner_alive():
                self.stop(f"stopped: its browser session has been gone for over {self._abandon_after:g} s")

    def _kept_words(self) -> str:
        done = len(self.history["epoch"])
        return (f"The model of epoch {self._weights_epoch} is kept." if self._weights is not None
                else "No epoch had finished, so there is no model to keep." if not done
                else "No model had reached the server yet, so there is none to keep.")

    def _apply(self, m: dict, scheduler: "Scheduler") -> None:
        kind = m["kind"]
        if kind == "started":
            self.pid, self.worker = m["pid"], {k: m[k] for k in ("pid", "host", "threads", "node") if k in m}
            scheduler.started_in(time.monotonic() - self._launched_at)
        elif kind == "preview":
            with self._lock:
                self.preview_recon, self.preview_epoch = _images(m["preview"]), m["epoch"]
        elif kind in ("progress", "epoch"):
            p = Progress(**m["progress"])
            with self._lock:
                self.progress = p
                for x, loss in m["curve"]:
                    self.curve["x"].append(x)
                    self.curve["loss"].append(loss)
                if kind == "epoch":
                    for key, value in (("epoch", p.epoch), ("train_loss", p.loss), ("test_loss", p.test_loss),
                                       ("test_mse", p.test_mse), ("images_per_s", p.images_per_s)):
                        self.history[key].append(value)
                    if m.get("preview") is not None:
                        self.preview_recon, self.preview_epoch = _images(m["preview"]), p.epoch
                    if m.get("weights") is not None:
                        self._weights, self._weights_epoch = m["weights"], p.epoch
        elif kind == "end":
            if m.get("weights") is not None:
                self._weights, self._weights_epoch = m["weights"], len(self.history["epoch"])
            stopped = m["state"] == STOPPED
            self._end(m["state"], self.message if stopped else m.get("message"),
                      keep=m.get("weights") is not None)

    def owner_alive(self, every_s: float = 0.5) -> bool:
        """False once `alive()` has said False for longer than abandon_after_s (checked at
        most every `every_s` seconds)."""
        now = time.monotonic()
        if now - self._last_alive_check >= every_s:
            self._last_alive_check = now
            if self._alive():
                self._dead_since = None
            elif self._dead_since is None:
                self._dead_since = now
        return self._dead_since is None or now - self._dead_since <= self._abandon_after

    def _end(self, state: str, message: str | None, keep: bool = True) -> None:
        if self.finished:
            return
        unusable = self._load_weights() if keep and self._weights is not None else None
        keep = keep and self._weights is not None and unusable is None
        if unusable:
            message = f"{message or 'Training ended'}. {unusable}"
        with self._lock:
            if self.state in FINISHED:
                return
            self._kept = keep and (state != STOPPED or self.progress is not None)
            self.state, self.message = state, message
            if self._default_label and state != DONE and self._kept:
                self.label = finished_label(self._model, self.config, self.progress, self._weights_epoch, state)
            self._model.training_info = {**asdict(self.config), "label": self.label}   # also the checkpoint's
            self._weights = None   # in the model now (or unusable): not kept twice
        self._finished.set()
        if self._on_finish is not None:
            self._on_finish(self)

    def _load_weights(self) -> str | None:
        """Put the worker's last weights into this process's model (read as a checkpoint:
        validated, no code run); the reason in words if they are unusable."""
        try:
            self._model.load_state_dict(read_checkpoint(self._weights, name="the worker's weights")["state_dict"])
        except (CheckpointError, RuntimeError) as e:
            return f"The weights it sent are unusable ({e}), so there is no model to keep."
        self._model.eval()
        return None


def _images(uint8) -> torch.Tensor:
    """The worker's (K,28,28) uint8 reconstructions as (K,1,28,28) float32 in [0,1]."""
    return torch.from_numpy(uint8).float().div_(255).unsqueeze(1)


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
    """An on_finish that keeps the job's model (if any) in `models`. It runs in the job's
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


def _setting(name: str, default: int) -> int:
    """A whole number >= 1 from the environment; a bad value is named and the default used."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
        if number >= 1:
            return number
    except ValueError:
        pass
    warnings.warn(f"{name}={value!r} is not a whole number of at least 1; using {default}", stacklevel=2)
    return default


def default_slots(cores: int | None = None) -> int:
    """AECORE_TRAINING_SLOTS, else `cores` (a cluster's CPUs), else the cores the machine
    can spare (one serves the app)."""
    return _setting(SLOTS_ENV, cores or max(1, (os.cpu_count() or 1) - 1))


def default_launcher() -> Launcher:
    """Where this process's jobs run: tasks on the Ray cluster at $RAY_ADDRESS when it is
    set (aecore.ray_launcher; a cluster that cannot be used falls back to local processes
    with a `note` saying so), else a local process per job."""
    from .ray_launcher import ADDRESS_ENV, connect   # imports no ray until connect() is called
    address = os.environ.get(ADDRESS_ENV, "").strip()
    return connect(address) if address else ProcessLauncher()


def default_max_waiting() -> int:
    return _setting(QUEUE_ENV, MAX_WAITING)


@dataclass
class Scheduler:
    """Runs up to `slots` jobs at once through `launcher`; up to `max_waiting` more wait in
    order, beyond that `submit` refuses with QueueFull."""
    slots: int = field(default_factory=default_slots)
    max_waiting: int = field(default_factory=default_max_waiting)
    launcher: Launcher = field(default_factory=ProcessLauncher)
    running: list = field(default_factory=list)
    waiting: list = field(default_factory=list)
    startup_s: float = STARTUP_S      # the last measured start of a job's process
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def submit(self, job: TrainingJob) -> int:
        """Start `job` or queue it; returns its position (0 = running, k = k-th waiting)."""
        with self._lock:
            if job.state != QUEUED or job._scheduler is not None:
                raise ValueError("a job can be submitted only once")
            self._drop_abandoned()
            if len(self.running) >= self.slots and len(self.waiting) >= self.max_waiting:
                raise QueueFull(f"The training queue is full: {len(self.running)} training"
                                f"{'s are' if len(self.running) != 1 else ' is'} running and "
                                f"{len(self.waiting)} waiting. Try again when one has finished.")
            job._scheduler = self
            self.waiting.append(job)
            self._dispatch()
            return self.position(job)

    def position(self, job: TrainingJob) -> int | None:
        with self._lock:
            if job in self.running:
                return 0
            return self.waiting.index(job) + 1 if job in self.waiting else None

    def wait_s(self, job: TrainingJob) -> float | None:
        """Estimated seconds until a waiting `job` starts: each slot frees when its job's ETA
        runs out, and each job ahead then takes the first free slot for its estimated length
        (plus its process's start). None if any of those is unknown."""
        with self._lock:
            if job not in self.waiting:
                return None
            free = [j.remaining_s(self.startup_s) for j in self.running]
            ahead = [j.remaining_s(self.startup_s) for j in self.waiting[:self.waiting.index(job)]]
        if any(t is None for t in free + ahead):
            return None
        free += [0.0] * max(0, self.slots - len(free))
        heapq.heapify(free)
        for seconds in ahead:
            heapq.heappush(free, heapq.heappop(free) + seconds)
        return free[0]

    def others(self, job: TrainingJob | None = None) -> list:
        """The running jobs other than `job`."""
        with self._lock:
            return [j for j in self.running if j is not job]

    def full(self) -> bool:
        with self._lock:
            return len(self.running) >= self.slots

    def started_in(self, seconds: float) -> None:
        self.startup_s = seconds

    def withdraw(self, job: TrainingJob) -> None:
        """Take a queued job out of the line (it ends as stopped, with no model)."""
        with self._lock:
            if job in self.waiting:
                self.waiting.remove(job)
                job._end(STOPPED, job.message or "stopped before it started", keep=False)

    def job_ended(self, job: TrainingJob) -> None:
        with self._lock:
            if job in self.running:
                self.running.remove(job)
            self._dispatch()

    def _dispatch(self) -> None:
        self._drop_abandoned()
        while len(self.running) < self.slots and self.waiting:
            job = self.waiting.pop(0)
            self.running.append(job)
            job._start(self)

    def _drop_abandoned(self) -> None:
        for job in [j for j in self.waiting if not j.owner_alive(every_s=0)]:
            self.waiting.remove(job)
            job._end(STOPPED, "dropped from the queue: its browser session is gone", keep=False)


def default_scheduler() -> Scheduler:
    launcher = default_launcher()
    return Scheduler(slots=default_slots(getattr(launcher, "cpus", None)), launcher=launcher)


SCHEDULER = default_scheduler()   # the one per process (the app's server)
