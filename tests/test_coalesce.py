"""aecore.coalesce: concurrent calls merged into batches, each caller getting its own result."""
import threading

import pytest

from aecore.coalesce import Coalescer


class Gate:
    """A batch function that records its batches and holds the first one until released, so
    that the calls made meanwhile pile up behind it."""

    def __init__(self, fail_on=None):
        self.batches, self.fail_on = [], fail_on
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, items):
        self.batches.append(list(items))
        self.started.set()
        self.release.wait(10)
        if self.fail_on in items:
            raise ValueError(f"cannot do {self.fail_on}")
        return [item * 10 for item in items]


def in_threads(coalescer, items, gate):
    """Call `coalescer` for items[0], wait until its batch runs, then for the rest at once;
    {item: result or exception}."""
    out, threads = {}, []

    def call(item):
        try:
            out[item] = coalescer(item)
        except Exception as e:  # noqa: BLE001 - recorded for the assertions
            out[item] = e
    threads.append(threading.Thread(target=call, args=(items[0],)))
    threads[0].start()
    assert gate.started.wait(10)
    for item in items[1:]:
        threads.append(threading.Thread(target=call, args=(item,)))
        threads[-1].start()
    while coalescer_waiting(coalescer) < len(items) - 1:   # every later call queued
        threading.Event().wait(0.001)
    gate.release.set()
    for t in threads:
        t.join(10)
    return out


def coalescer_waiting(coalescer):
    with coalescer._lock:
        return len(coalescer._waiting)


def test_a_lone_call_runs_at_once_as_a_batch_of_one():
    seen = []
    c = Coalescer(lambda items: seen.append(items) or [i + 1 for i in items])
    assert c(1) == 2 and c(5) == 6
    assert seen == [[1], [5]] and (c.batches, c.calls) == (2, 2)


def test_calls_made_while_a_batch_runs_share_the_next_batch():
    gate = Gate()
    c = Coalescer(gate)
    out = in_threads(c, list(range(6)), gate)
    assert out == {i: i * 10 for i in range(6)}          # each caller its own result
    assert gate.batches[0] == [0]
    assert sorted(gate.batches[1]) == [1, 2, 3, 4, 5]     # one batch for all who waited
    assert (c.batches, c.calls) == (2, 6)


def test_a_batch_holds_at_most_max_batch_calls():
    gate = Gate()
    c = Coalescer(gate, max_batch=2)
    out = in_threads(c, list(range(6)), gate)
    assert out == {i: i * 10 for i in range(6)}
    assert [len(b) for b in gate.batches] == [1, 2, 2, 1]


def test_an_error_reaches_every_call_of_its_batch_and_the_next_batch_runs():
    gate = Gate(fail_on=3)
    c = Coalescer(gate, max_batch=3)
    out = in_threads(c, [0, 1, 2, 3, 4, 5], gate)
    failed = next(b for b in gate.batches if 3 in b)
    for item in range(6):
        if item in failed:
            assert isinstance(out[item], ValueError) and "cannot do 3" in str(out[item])
        else:
            assert out[item] == item * 10
    assert c(7) == 70                                     # and it keeps serving


def test_a_batch_function_that_returns_the_wrong_count_is_an_error():
    c = Coalescer(lambda items: [])
    with pytest.raises(RuntimeError, match="a batch of 1 items gave 0 results"):
        c(1)
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(len, max_batch=0)
