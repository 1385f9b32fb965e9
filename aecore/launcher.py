"""Where a training job runs: the small interface between aecore.jobs (the job and the
scheduler, in the server) and the place that runs aecore.worker.run, plus the local
back end: one process per job.

    launcher.launch(spec: dict) -> handle        spec: plain data (aecore.worker.make_spec)
    handle.receive(timeout_s) -> dict | None     the worker's next message; None on timeout;
                                                 raises WorkerLost once it is gone without "end"
    handle.stop()                                ask it to stop after its current batch
    handle.close()                               release it (kill it if it still runs)
    handle.pid                                   the worker's process id where it runs, or None
    launcher.where, launcher.note                words for a page: where jobs run; a fallback's reason

Another back end (aecore.ray_launcher: tasks on a Ray cluster) implements the same method
of a launcher and four of a handle; the job, the scheduler and the page do not change.

ProcessLauncher: each job is a new process started by a "forkserver" (standard library
multiprocessing). The fork server is a clean process started once, without the server's
threads, that imports torch and aecore.worker once (PRELOAD); every job forks from it, so
a job starts in well under a second after the first (which pays the import, ~2–3 s) and
never inherits a Streamlit server's threads or locks (forking those is unsafe). The job's
process has its own interpreter and GIL: the server's sessions and the training no longer
slow each other (DESIGN.md measured 3–40× when they shared one). Messages come back
through a one-way pipe, sent by a thread in the worker so training never waits on a busy
server; the server side waits on the pipe and the process sentinel together, so a worker
that dies (SIGKILL, out of memory, a crash) is noticed at once, never waited on forever.
A job's process runs niced (NICE, AECORE_TRAINING_NICE): on a machine whose cores the
training fills, the server's sessions still get the CPU when a stroke arrives.
Messages are pickles from our own worker code (the same trust as the code itself); a back
end on other machines must keep that boundary, e.g. only run on nodes the server trusts.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.spawn
import os
import queue
import signal
import threading
import warnings
from multiprocessing import connection
from typing import Protocol

PRELOAD = ["aecore.worker"]   # imported once by the fork server, shared by every job
WORKER_NAME = "aecore-training"   # a job's process, by name (how _without_main tells it from others)
JOIN_S = 5.0                  # how long close() lets a worker finish before killing it
NICE_ENV = "AECORE_TRAINING_NICE"
NICE = 10                     # a job's process priority below the server's (Unix nice; 0 = the same)


class WorkerLost(RuntimeError):
    """The worker ended without reporting its end; the message says how, in words."""


class Handle(Protocol):
    pid: int | None

    def receive(self, timeout_s: float) -> dict | None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


class Launcher(Protocol):
    where: str           # where its jobs run, in words for a page ("on the Ray cluster at …")
    note: str | None     # one line for a page when it stands in for the back end asked for

    def launch(self, spec: dict) -> Handle: ...


def describe_exit(exitcode: int | None) -> str:
    """How a process ended, in words, from its exit code (-N: killed by signal N)."""
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "an unknown signal"
        why = (": the system does this when memory runs out, or someone killed it"
               if -exitcode == signal.SIGKILL else "")
        return f"killed by signal {-exitcode}, {name}{why}"
    return f"exit code {exitcode}" + (" without reporting its end" if exitcode == 0 else "")


class ProcessLauncher:
    """Each job in a new local process (module docstring). `method`: a multiprocessing
    start method without fork's hazards, "forkserver" (default) or "spawn"."""

    where = "in a process of its own on this server"   # for a page: where the jobs run
    note = None   # a line for the page when this back end stands in for another (aecore.ray_launcher)

    def __init__(self, method: str = "forkserver", nice: int | None = None):
        if method not in ("forkserver", "spawn"):
            raise ValueError(f"start method must be 'forkserver' or 'spawn', got {method!r}")
        self.nice = default_nice() if nice is None else nice
        self.context = multiprocessing.get_context(method)
        if method == "forkserver":
            self.context.set_forkserver_preload(PRELOAD)

    def launch(self, spec: dict) -> "ProcessHandle":
        reader, writer = self.context.Pipe(duplex=False)             # worker -> server: its messages
        stop_reader, stop_writer = self.context.Pipe(duplex=False)   # server -> worker: "stop"
        process = self.context.Process(target=_child, args=(spec, writer, stop_reader, self.nice), daemon=True,
                                       name=WORKER_NAME)
        try:
            process.start()
        finally:   # the child holds the only other ends: its death reads as EOF here, ours there
            writer.close()
            stop_reader.close()
        return ProcessHandle(process, reader, stop_writer)


def _without_main(get_preparation_data):
    """multiprocessing's get_preparation_data, minus the main module for a job's process.

    A process started by "forkserver" or "spawn" first re-runs the parent's __main__ (to find
    what the parent defined there), and in a Streamlit server __main__ is whatever page script
    ran last, in any session: Streamlit installs each run's script as sys.modules["__main__"].
    So every training process executed a page in bare mode before it trained (0.7 s per start,
    measured in the test suite), and one whose page fails outside a server (the Draw page's
    canvas component) killed the process before it started: the training failed with a
    BrokenPipeError, depending on which page someone had opened last. A job's process needs
    nothing from __main__ (its target lives in this module), so for processes named
    WORKER_NAME the entries that re-run it are dropped; every other process is left alone."""
    def preparation_data(name):
        data = get_preparation_data(name)
        if name == WORKER_NAME:
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data
    preparation_data.wraps_for_aecore = True
    return preparation_data


if not getattr(multiprocessing.spawn.get_preparation_data, "wraps_for_aecore", False):   # once, even on reload
    multiprocessing.spawn.get_preparation_data = _without_main(multiprocessing.spawn.get_preparation_data)


class ProcessHandle:
    """The server's side of one worker process. "Stop" goes down a pipe of its own rather
    than a multiprocessing.Event: an Event's set() takes a lock the worker takes before every
    batch, and a worker killed while holding it (SIGKILL, the kernel out of memory) left the
    server's set() waiting forever, its slot never freed and the queue stuck behind it.
    Writing a few bytes to a pipe never waits on the worker, alive or dead."""

    def __init__(self, process, reader, stop_writer):
        self.process, self._reader, self._stop = process, reader, stop_writer
        self.pid = process.pid
        self._stopping = False

    def receive(self, timeout_s: float) -> dict | None:
        ready = connection.wait([self._reader, self.process.sentinel], timeout_s)
        if not ready:
            return None
        if self._reader in ready or self._reader.poll(0):   # what it sent before it ended comes first
            try:
                return self._reader.recv()
            except (EOFError, OSError):
                pass
        self.process.join(JOIN_S)
        raise WorkerLost(describe_exit(self.process.exitcode))

    def stop(self) -> None:
        if self._stopping:   # once is enough: the worker only asks whether the pipe has data
            return
        self._stopping = True
        try:
            self._stop.send_bytes(b"stop")
        except OSError:   # the worker is gone (or closed its end): nothing left to stop
            pass

    def close(self) -> None:
        self.stop()
        self.process.join(JOIN_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(JOIN_S)
        self._reader.close()
        self._stop.close()


def default_nice() -> int:
    """AECORE_TRAINING_NICE (0-19), else NICE: how far below the server a job's process runs."""
    value = os.environ.get(NICE_ENV, "").strip()
    if value.isdigit() and int(value) <= 19:
        return int(value)
    if value:
        warnings.warn(f"{NICE_ENV}={value!r} is not a whole number from 0 to 19; using {NICE}", stacklevel=2)
    return NICE


def _child(spec: dict, writer, stop_reader, nice: int = 0) -> None:
    """The job's process: run the worker, sending from a thread so a slow reader never
    holds up training. It stops once the server writes to `stop_reader`, or once the server
    is gone (either pipe's other end closed: polling reads EOF, sending fails). `nice`:
    the process yields the CPU to the server's sessions (a stroke waits on no training) and
    still takes every cycle they leave."""
    from .worker import run

    if nice > 0:
        try:
            os.nice(nice)
        except OSError:   # not allowed here: run at the server's priority
            pass

    outbox, lost = queue.SimpleQueue(), threading.Event()

    def sender() -> None:
        while (message := outbox.get()) is not None:
            if lost.is_set():
                continue
            try:
                writer.send(message)
            except OSError:   # BrokenPipeError: nobody is listening any more
                lost.set()

    class Stop:
        @staticmethod
        def is_set() -> bool:
            return lost.is_set() or stop_reader.poll()   # True for data and for EOF alike

    thread = threading.Thread(target=sender, name="aecore-worker-sender", daemon=True)
    thread.start()
    try:
        run(spec, outbox.put, Stop())
    except Exception as e:  # noqa: BLE001 - a bad spec: say so instead of dying with a traceback
        outbox.put({"kind": "end", "state": "failed", "weights": None,
                    "message": f"Training failed ({type(e).__name__}: {e}). No model to keep."})
    finally:
        outbox.put(None)
        thread.join()
        writer.close()
        stop_reader.close()
