"""The Ray back end of aecore.launcher: each training job is a Ray task on the cluster (one
CPU, wherever Ray puts it) that runs aecore.worker.run with the job's spec. A thread in the
task posts the worker's messages (previews and checkpoint bytes included) in batches to a
`Mailbox`, one small actor per server placed on the server's own node, and reads the job's
stop flag back with each post; the server's handle takes them from there. So training never
waits on a busy server, Stop reaches a running task, and nothing but the tasks runs on the
other nodes: losing one loses only its trainings (a task ending with NodeDiedError).

The app uses this back end when it is started with RAY_ADDRESS (`connect`, called by
aecore.jobs.default_launcher); ray is imported only then. Every node needs the same
checkout (aecore importable, the MNIST cache): the spec carries only plain data, and a
spec whose data are paths of .npy files needs those files on every node. Messages are
pickles from our own worker code, the same trust boundary as the local back end: run the
app only against a cluster whose nodes it trusts (README: token authentication).

A job whose task dies (its process killed, its node lost) raises WorkerLost from
`receive`, in words that say which: the job ends as failed and frees its slot.
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
from collections import deque

import numpy as np

from .launcher import ProcessLauncher, WorkerLost

ADDRESS_ENV = "RAY_ADDRESS"    # the cluster to train on (Ray's own variable, as aecore sweep)
POST_EVERY_S = 0.1             # a task posts its messages (and reads its stop flag) this often
JOIN_S = 5.0                   # how long close() lets a task finish before cancelling it


def connect(address: str):
    """A RayLauncher on the cluster at `address`, or, when no cluster answers there, a
    ProcessLauncher whose `note` says so in one line (the app falls back to local jobs)."""
    try:
        return RayLauncher(address)
    except Exception as e:  # noqa: BLE001 - no Ray, nothing at the address, refused: one line for the page
        local = ProcessLauncher()
        local.note = (f"No Ray cluster could be used at {address} ({_first_line(e)}); trainings run on "
                      "this server instead.")
        return local


class RayLauncher:
    """Jobs as tasks on the Ray cluster at `address` (HOST:PORT of its head, or Ray's own
    forms). Connects at once; raises with a readable message when it cannot."""

    def __init__(self, address: str):
        from .sweep import check_reachable, first_line
        os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
        check_reachable(address)   # a dead address fails now, not after minutes of retries
        try:
            import ray
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        except ImportError as e:
            raise RuntimeError("Ray is not installed (pip install -r requirements.txt)") from e
        if not ray.is_initialized():
            try:
                ray.init(address=address, logging_level="warning", log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise RuntimeError(f"no Ray cluster at {address}: {first_line(e)}") from e
        self.ray, self.address = ray, address
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        self.mailbox = ray.remote(num_cpus=0, max_concurrency=64)(Mailbox).options(scheduling_strategy=here).remote()
        self.task = ray.remote(num_cpus=1, max_retries=0)(train_task)
        self.where = f"on the Ray cluster at {address}"
        self.note = None
        self._ids = itertools.count(1)

    @property
    def cpus(self) -> int | None:
        """The cluster's CPUs now (None if Ray cannot say)."""
        try:
            return int(self.ray.cluster_resources().get("CPU", 0)) or None
        except Exception:  # noqa: BLE001 - the state API is best effort
            return None

    def launch(self, spec: dict) -> "RayHandle":
        job = next(self._ids)
        self.ray.get(self.mailbox.open.remote(job))
        return RayHandle(self.ray, self.mailbox, job, self.task.remote(spec, self.mailbox, job))


class RayHandle:
    """aecore.launcher's handle for one task: receive / stop / close, plus pid and node
    (from the worker's "started" message: None until it has started)."""

    def __init__(self, ray, mailbox, job: int, ref):
        self.ray, self._mailbox, self._job, self._ref = ray, mailbox, job, ref
        self._inbox, self._ended = deque(), False
        self.pid, self.node = None, None

    def receive(self, timeout_s: float) -> dict | None:
        if not self._inbox:
            self._fetch()
        if not self._inbox:
            done, _ = self.ray.wait([self._ref], timeout=timeout_s)
            self._fetch()   # what it sent before it ended comes first
            if done and not self._inbox:
                try:
                    self.ray.get(self._ref)
                except self.ray.exceptions.RayError as e:
                    raise WorkerLost(self._lost_words(e)) from e
                if not self._ended:
                    raise WorkerLost("its Ray task ended without reporting its end")
        return self._inbox.popleft() if self._inbox else None

    def _fetch(self) -> None:
        try:
            batch = self.ray.get(self._mailbox.take.remote(self._job))
        except self.ray.exceptions.RayError as e:
            raise WorkerLost(f"the mailbox of this server on the Ray cluster was lost ({type(e).__name__})") from e
        for m in batch:
            if m.get("kind") == "started":
                self.pid, self.node = m.get("pid"), m.get("node")
            elif m.get("kind") == "end":
                self._ended = True
            if m.get("preview") is not None:   # Ray hands arrays over read-only
                m["preview"] = np.array(m["preview"])
        self._inbox.extend(batch)

    def _lost_words(self, error: Exception) -> str:
        """Which was lost, the node or only the worker's process, asked of the cluster."""
        node = self.node
        try:
            alive = {n["NodeID"][:8] for n in self.ray.nodes() if n.get("Alive")}
        except Exception:  # noqa: BLE001
            alive = None
        if isinstance(error, self.ray.exceptions.NodeDiedError) or (node and alive is not None and node not in alive):
            return f"the training's node {node or '(unknown)'} was lost from the Ray cluster"
        where = f" on node {node}" if node else ""
        return f"its Ray worker{where} died: {type(error).__name__}"

    def stop(self) -> None:
        try:
            self._mailbox.stop.remote(self._job)
        except Exception:  # noqa: BLE001 - nothing left to stop
            pass

    def close(self) -> None:
        try:
            self._mailbox.stop.remote(self._job)
            done, _ = self.ray.wait([self._ref], timeout=JOIN_S)
            if not done:
                self.ray.cancel(self._ref, force=True)
            self._mailbox.close.remote(self._job)
        except Exception:  # noqa: BLE001 - already gone
            pass


class Mailbox:
    """One per server, a Ray actor on the server's node: each job's messages wait here
    until the server takes them, and its stop flag waits here for the job to read it."""

    def __init__(self):
        self.boxes, self.stops, self.lock = {}, set(), threading.Lock()

    def open(self, job: int) -> None:
        with self.lock:
            self.boxes[job] = []

    def put(self, job: int, messages: list) -> bool:
        """Keep the job's messages; True once the job should stop (or nobody listens)."""
        with self.lock:
            if job not in self.boxes:
                return True
            self.boxes[job].extend(messages)
            return job in self.stops

    def take(self, job: int) -> list:
        with self.lock:
            batch, self.boxes[job] = self.boxes.get(job, []), []
            return batch

    def stop(self, job: int) -> None:
        with self.lock:
            self.stops.add(job)

    def close(self, job: int) -> None:
        with self.lock:
            self.boxes.pop(job, None)
            self.stops.discard(job)


def train_task(spec: dict, mailbox, job: int) -> None:
    """The Ray task of one job: aecore.worker.run, its messages posted to the server's
    mailbox in batches by a thread (training never waits on the server), the stop flag
    read back with each post (at least every POST_EVERY_S)."""
    import ray
    from .worker import run
    writable = lambda x: np.array(x) if isinstance(x, np.ndarray) else x   # Ray's arrays are read-only
    spec = {**spec, "preview": writable(spec.get("preview")),
            "data": None if spec.get("data") is None else tuple(writable(d) for d in spec["data"])}
    node = ray.get_runtime_context().get_node_id()[:8]
    outbox, stop, finished = queue.SimpleQueue(), threading.Event(), threading.Event()

    def send(message: dict) -> None:
        outbox.put({**message, "node": node} if message.get("kind") == "started" else message)

    def post() -> None:
        while True:
            last = finished.is_set()
            batch = []
            try:
                batch.append(outbox.get(timeout=POST_EVERY_S))
                while True:
                    batch.append(outbox.get_nowait())
            except queue.Empty:
                pass
            try:
                if ray.get(mailbox.put.remote(job, batch)):
                    stop.set()
            except ray.exceptions.RayError:   # the server's mailbox is gone: nobody listens
                stop.set()
            if last and outbox.empty():
                return

    thread = threading.Thread(target=post, name="aecore-post", daemon=True)
    thread.start()
    try:
        run(spec, send, stop)
    except Exception as e:  # noqa: BLE001 - a bad spec: say so instead of dying with a traceback
        send({"kind": "end", "state": "failed", "weights": None,
              "message": f"Training failed ({type(e).__name__}: {e}). No model to keep."})
    finally:
        finished.set()
        thread.join()


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
