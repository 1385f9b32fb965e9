"""ui.py's one-element blocks (rows of digits, the SVG line chart) and `ahead`, which fills a
slider's other positions on a background thread."""
import base64
import threading
import time

import pytest

import ui


def wait_until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_rows_show_user_text_as_text():
    """Model names are user input: markup in them is shown, never run or rendered."""
    body = ui.digit_rows_html([ui.DigitRow('<img src=x onerror="alert(1)">', ("data:image/png;base64,AA==",),
                                           ("<b>bold</b>", "PSNR 1 dB"), help='say "hi" & <bye>')], 84)
    assert "<img src=x" not in body and "<b>" not in body
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in body and "&lt;b&gt;bold&lt;/b&gt;" in body
    assert 'title="say &quot;hi&quot; &amp; &lt;bye&gt;"' in body
    assert body.count('width="84"') == 1


def test_line_chart_marks_the_level_and_escapes_names():
    body = ui.line_chart_svg([0.1, 0.2, 0.3], {"a<b": [10.0, 9.0, float("inf")], "c": [5.0, 6.0, 7.0]},
                             marker=0.2, title="t", x_title="x & y", y_title="dB")
    svg = base64.b64decode(body.split("base64,")[1].split('"')[0]).decode()
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 5   # the infinite value is left out
    assert ">level 0.2</text>" in svg and "x &amp; y" in svg
    assert "a&lt;b" in body and "a<b" not in body


@pytest.mark.parametrize("low, high", [(5.3, 24.9), (0.0, 1.0), (-3.0, 3.0), (7.0, 7.0)])
def test_nice_ticks_cover_the_range_in_round_steps(low, high):
    ticks = ui.nice_ticks(low, high)
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert ticks[0] <= low and ticks[-1] >= high and len(steps) == 1 and 2 <= len(ticks) <= 12


def test_ahead_computes_the_asked_position_then_fills_the_rest_nearest_first():
    calls, lock = [], threading.Lock()

    def compute(level):
        with lock:
            calls.append(level)
        return f"at {level}"

    levels = [round(0.1 * i, 1) for i in range(11)]
    key = ("test-fill", time.monotonic())
    assert ui.ahead(key, 0.5, levels, compute) == "at 0.5"
    wait_until(lambda: len(calls) == len(levels))
    assert calls[0] == 0.5 and sorted(calls) == levels                      # each position once
    assert [abs(c - 0.5) for c in calls] == sorted(abs(c - 0.5) for c in calls)   # nearest first
    assert ui.ahead(key, 0.9, levels, compute) == "at 0.9" and len(calls) == len(levels)   # stored


def test_ahead_failure_in_the_background_leaves_the_error_to_the_page():
    def compute(level):
        if level == 0.2:
            raise ValueError("no such level")
        return level

    key = ("test-failure", time.monotonic())
    levels = [0.0, 0.1, 0.2, 0.3]
    assert ui.ahead(key, 0.0, levels, compute) == 0.0
    wait_until(lambda: ui._ahead_store(key).get(0.1) == 0.1)
    time.sleep(0.2)                                # the worker stopped at 0.2 and logged it
    with pytest.raises(ValueError, match="no such level"):
        ui.ahead(key, 0.2, levels, compute)       # computed here: the page shows the error
    assert ui.ahead(key, 0.3, levels, compute) == 0.3


def test_bar_chart_has_a_bar_per_value_from_zero():
    body = ui.bar_chart_svg([1.5, -2.0, 0.0, 3.25], title="code of <m>", x_title="code unit", y_title="value")
    svg = base64.b64decode(body.split("base64,")[1].split('"')[0]).decode()
    assert svg.count("<rect") == 4 and "code of &lt;m&gt;" in body
    heights = [float(part.split('height="')[1].split('"')[0]) for part in svg.split("<rect")[1:]]
    assert heights[2] == 0 and heights[3] > heights[1] > heights[0] > 0   # |3.25| > |-2| > |1.5|


def test_ahead_worker_runs_the_newest_first_and_drops_the_oldest_waiting():
    worker, ran, gate, lock = ui.AheadWorker(limit=3), [], threading.Event(), threading.Lock()

    def job(name):
        def run():
            if name == "blocker":
                gate.wait(10)
            if name == "fails":
                raise RuntimeError("a failing job")
            with lock:
                ran.append(name)
        return run

    worker.submit("blocker", job("blocker"))
    wait_until(lambda: not worker._jobs)          # the blocker runs and holds the worker
    for name in ("a", "b", "fails", "c", "d"):
        worker.submit(name, job(name))            # 5 waiting for 3 places: a and b are dropped
    gate.set()
    wait_until(lambda: len(ran) == 3)
    assert ran == ["blocker", "d", "c"]           # newest first; "fails" failed and the worker went on
    worker.submit("e", job("e"))
    wait_until(lambda: len(ran) == 4)
    assert ran[-1] == "e"


def test_grid_shows_user_text_as_text_and_needs_a_caption_per_digit():
    body = ui.digit_grid_html(["data:image/png;base64,AA=="], ['<a href="x">mine</a> · MSE 0.1'], 112)
    assert "<a href" not in body and "&lt;a href=&quot;x&quot;&gt;mine&lt;/a&gt; · MSE 0.1" in body
    assert 'image-rendering:pixelated' in body and body.count('width="112"') == 1
    with pytest.raises(ValueError):
        ui.digit_grid_html(["data:image/png;base64,AA=="], [], 112)


def test_show_html_renders_only_what_the_escaping_builders_made():
    """The app's one sink for HTML built at run time refuses a page's own string."""
    with pytest.raises(TypeError, match="only HTML made by ui's escaping builders"):
        ui.show_html("<img src=x onerror=alert(1)>")
    with pytest.raises(TypeError, match="only HTML made by ui's escaping builders"):   # one bad block of several
        ui.show_html(ui.digit_grid_html(["data:,"], ["a"], 28), "<img src=x onerror=alert(1)>")
    with pytest.raises(TypeError):
        ui.show_html()
    assert isinstance(ui.digit_grid_html(["data:,"], ["<b>"], 28), ui.SafeHtml)
    assert isinstance(ui.bar_chart_svg([1.0], title="t", x_title="x", y_title="y"), ui.SafeHtml)
