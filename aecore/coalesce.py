"""Concurrent calls merged into batches: many callers (the app's sessions, each a thread of
one server) ask for one item each, one of them runs a single batched call for all who are
waiting at that moment, and each gets its own result.

A call that finds nothing running runs at once, alone: no window to wait for others, so an
idle server answers as fast as without batching. Calls that arrive while a batch runs wait,
and the first of them runs the next batch with all of them (up to `max_batch`): under load,
one forward pass per model serves many strokes, where its fixed per-call cost (the small
models' operator dispatch) used to be paid once per stroke. The same leader/follower pattern
as a database's group commit; nothing here knows about Streamlit."""
from __future__ import annotations

import threading
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Call(Generic[T, R]):
    __slots__ = ("item", "result", "error", "done", "wake")

    def __init__(self, item: T):
        self.item = item
        self.result: R | None = None
        self.error: BaseException | None = None
        self.done = False            # woken and not done: this call runs the next batch
        self.wake = threading.Event()


class Coalescer(Generic[T, R]):
    """`coalescer(item)` returns `run([item, ...])[i]` for its own item: `run` takes a list of
    items and returns one result per item, in order. If `run` raises, every call of that
    batch raises the same exception; the next batch still runs."""

    def __init__(self, run: Callable[[list[T]], Sequence[R]], max_batch: int = 32):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._run = run
        self._max = max_batch
        self._lock = threading.Lock()
        self._waiting: list[_Call[T, R]] = []
        self._busy = False           # a batch is running (or its leader is being woken)
        self.batches = 0             # counters, for the tests
        self.calls = 0

    def __call__(self, item: T) -> R:
        call = _Call(item)
        with self._lock:
            self._waiting.append(call)
            lead, self._busy = not self._busy, True
        if not lead:
            call.wake.wait()          # until our batch is done, or it is our turn to run one
        if not call.done:
            self._lead()
        if call.error is not None:
            raise call.error
        return call.result

    def _lead(self) -> None:
        """Run one batch (the leader's own call is the first waiting), then hand over."""
        with self._lock:
            batch, self._waiting = self._waiting[:self._max], self._waiting[self._max:]
        try:
            results = self._run([c.item for c in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} items gave {len(results)} results")
            for c, r in zip(batch, results):
                c.result = r
        except BaseException as e:  # noqa: BLE001 - every caller of the batch gets it
            for c in batch:
                c.error = e
        finally:
            with self._lock:
                self.batches += 1
                self.calls += len(batch)
                following = self._waiting[0] if self._waiting else None
                self._busy = following is not None
            for c in batch:
                c.done = True
                if c is not batch[0]:
                    c.wake.set()
            if following is not None:
                following.wake.set()
