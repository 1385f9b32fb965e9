"""The Ray back end of aecore.launcher: each training job is a small Ray actor on the
cluster (one CPU) that runs aecore.worker.run with the job's spec in a thread of its own.
The worker's messages (previews, checkpoint bytes included) wait in the actor's outbox; the
server's handle fetches them in batches (one `take` call in flight at a time, so training
never waits on a busy server), and `stop` is a call the other way, answered while the run
goes on (the actor takes two calls at once). An actor rather than a task: a task could
only hand back its result at the end, an actor can be asked for messages and told to stop.

The app uses this back end when it is started with RAY_ADDRESS (`connect`, called by
aecore.jobs.default_launcher); ray is imported only then. Every node needs the same
checkout (aecore importable, the MNIST cache): the spec carries only plain data, and a
spec whose data are paths of .npy files needs those files on every node. Messages are
pickles from our own worker code, the same trust boundary as the local back end: run the
app only against a cluster whose nodes it trusts (README: token authentication).

A job whose actor dies (its process killed, its node lost) raises WorkerLost from
`receive`, in words that say which: the job ends as failed and frees its slot.
"""
from __future__ import annotations

import os
import queue
import threading
from collections import deque

from .launcher import ProcessLauncher, WorkerLost

ADDRESS_ENV = "RAY_ADDRESS"    # the cluster to train on (Ray's own variable, as aecore sweep)
TAKE_S = 1.0                   # how long one `take` waits in the actor for a first message
BATCH = 64                     # at most this many messages per `take`


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
    """Jobs as actors on the Ray cluster at `address` (HOST:PORT of its head, or Ray's own
    forms). Connects at once; raises with a readable message when it cannot."""

    def __init__(self, address: str):
        from .sweep import check_reachable, first_line
        os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
        check_reachable(address)   # a dead address fails now, not after minutes of retries
        try:
            import ray
        except ImportError as e:
            raise RuntimeError("Ray is not installed (pip install -r requirements.txt)") from e
        if not ray.is_initialized():
            try:
                ray.init(address=address, logging_level="warning", log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise RuntimeError(f"no Ray cluster at {address}: {first_line(e)}") from e
        self.ray, self.address = ray, address
        self.actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0,
                                      max_concurrency=2)(TrainingActor)
        self.where = f"on the Ray cluster at {address}"
        self.note = None

    @property
    def cpus(self) -> int | None:
        """The cluster's CPUs now (None if Ray cannot say)."""
        try:
            return int(self.ray.cluster_resources().get("CPU", 0)) or None
        except Exception:  # noqa: BLE001 - the state API is best effort
            return None

    def launch(self, spec: dict) -> "RayHandle":
        return RayHandle(self.ray, self.actor_class.remote(spec))


class RayHandle:
    """aecore.launcher's handle for one actor: receive / stop / close, plus pid and node
    (from the worker's "started" message: None until it has started)."""

    def __init__(self, ray, actor):
        self.ray, self._actor = ray, actor
        self._inbox, self._pending = deque(), None
        self.pid, self.node = None, None

    def receive(self, timeout_s: float) -> dict | None:
        if not self._inbox:
            if self._pending is None:
                self._pending = self._actor.take.remote(TAKE_S)
            ready, _ = self.ray.wait([self._pending], timeout=timeout_s)
            if not ready:
                return None
            ref, self._pending = self._pending, None
            try:
                batch = self.ray.get(ref)
            except self.ray.exceptions.RayError as e:
                raise WorkerLost(self._lost_words(e)) from e
            for m in batch:
                if m.get("kind") == "started":
                    self.pid, self.node = m.get("pid"), m.get("node")
            self._inbox.extend(batch)
        return self._inbox.popleft() if self._inbox else None

    def _lost_words(self, error: Exception) -> str:
        """Which was lost, the node or only the worker's process, asked of the cluster."""
        node = self.node
        try:
            alive = {n["NodeID"][:8] for n in self.ray.nodes() if n.get("Alive")}
        except Exception:  # noqa: BLE001
            alive = None
        if node and alive is not None and node not in alive:
            return f"the training's node {node} was lost from the Ray cluster"
        where = f" on node {node}" if node else ""
        return f"its Ray worker{where} died: {type(error).__name__}"

    def stop(self) -> None:
        try:
            self._actor.stop.remote()
        except Exception:  # noqa: BLE001 - a dead actor needs no stopping
            pass

    def close(self) -> None:
        try:
            self.ray.kill(self._actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


class TrainingActor:
    """Runs on a node (as a Ray actor, see RayLauncher): aecore.worker.run in a thread,
    its messages kept in an outbox until the server takes them."""

    def __init__(self, spec: dict):
        self.outbox, self.stop_event = queue.SimpleQueue(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(spec,), daemon=True, name="aecore-training")
        self.thread.start()

    def _run(self, spec: dict) -> None:
        from .worker import run
        try:
            run(spec, self._send, self.stop_event)
        except Exception as e:  # noqa: BLE001 - a bad spec: say so instead of dying with a traceback
            self.outbox.put({"kind": "end", "state": "failed", "weights": None,
                             "message": f"Training failed ({type(e).__name__}: {e}). No model to keep."})

    def _send(self, message: dict) -> None:
        if message.get("kind") == "started":
            import ray
            message = {**message, "node": ray.get_runtime_context().get_node_id()[:8]}
        self.outbox.put(message)

    def take(self, timeout_s: float) -> list[dict]:
        """The waiting messages (at most BATCH), after waiting up to `timeout_s` for one."""
        try:
            batch = [self.outbox.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        while len(batch) < BATCH:
            try:
                batch.append(self.outbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def stop(self) -> None:
        self.stop_event.set()


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
