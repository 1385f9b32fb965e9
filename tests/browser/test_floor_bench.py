"""bench/floor.py in quick mode: the app and both floor pages answer in real Chromium, every
timed interaction changed the page's images, and the table's numbers are finite (no timing
is asserted: the machine is shared)."""
import math
import tempfile
import threading
from pathlib import Path

from bench import floor


def test_quick_floor_bench_measures_both_interactions_on_both_sides():
    # in a thread of its own: this process's session-wide Playwright (the browser fixture) keeps an
    # event loop running in the main thread, and Playwright's sync API refuses to start inside one
    out = {}

    def run():
        try:
            with tempfile.TemporaryDirectory() as logs:
                out["measured"] = floor.measure(2, Path(logs))
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = e

    thread = threading.Thread(target=run, name="floor-bench")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    results, rss = out["measured"]
    assert list(results) == ["a stroke on Draw", "a slider step on Denoise"]
    for interaction, (app, base) in results.items():
        for side in (app, base):
            assert len(side.ms) == 2, (interaction, side.name)   # each resolved only once its images changed
            assert all(math.isfinite(ms) and ms > 0 for ms in side.ms), (side.name, side.ms)
        assert base.images == 1, interaction                         # a floor page holds one picture
        assert app.images > 1, interaction                           # the page: input and reconstructions / rows
    assert all(math.isfinite(mb) and mb > 100 for mb in rss)          # the app server's RSS, read from /proc
    table = floor.table(results, True, 0.0, rss)
    assert [row[1] for row in table.rows] == ["Draw page", "floor (a)", "Denoise page", "floor (b)"]
    for row in table.rows:
        assert all(math.isfinite(c) for c in row if isinstance(c, (int, float))), row
    assert "goal ≤ 1.25×" in table.headline
    where = floor.messages_table(results)
    timelines = {row[1]: row[2] for row in where.rows}
    for side in (app for pair in results.values() for app in pair):
        assert len(side.messages) == 2 and side.labels[-1] == "session_status_changed", (side.name, side.labels)
    # the Denoise page's fragment run: the script starts, the rows and the chart arrive, it finishes;
    assert timelines["Denoise page"].startswith("send ") and " new_session " in timelines["Denoise page"]
    # the rows and the chart are one element: an html message, or Streamlit's reference to the copy the
    # browser already holds (the same block at a level it has shown: a ref_hash message)
    denoise = timelines["Denoise page"]
    assert denoise.count(" html ") + denoise.count(" ref_hash ") == 1 and " script_finished " in denoise, denoise
    assert " imgs " in timelines["floor (b)"] or " image" in timelines["floor (b)"], timelines["floor (b)"]
