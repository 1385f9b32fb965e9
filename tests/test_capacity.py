"""bench.capacity --quick against a real `streamlit run app.py`: three Locust sessions speak
Streamlit's websocket protocol (Draw strokes, Denoise slider steps) while a fourth trains, then
forged messages while others draw. Asserts what happened (rounds completed, zero errors, each
forged message handled as expected), never how fast: timings depend on the machine."""
import base64
import json

import pytest

from tests.conftest import run_quick_bench

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return run_quick_bench("bench.capacity", tmp_path_factory.mktemp("capacity") / "capacity.json", timeout=280)


def test_quick_capacity_run_completes_without_errors(quick):
    r, result = quick
    assert result is not None, r.stderr[-3000:]
    assert r.returncode == 0 and result["errors"] == 0, r.stdout + r.stderr[-3000:]
    [step] = result["steps"]
    assert step["errors"] == [] and step["sessions"] == 3 and step["sessions_done"] == 3
    counts = {name: v["count"] for name, v in step["summary"].items()}
    # every session: open Draw, 3 strokes, open Denoise, 2 slider steps (nothing lost, nothing extra)
    assert counts == {"open Draw": 3, "stroke": 9, "open Denoise": 3, "slider": 6}
    # as in a browser, a stroke and a slider step rerun only the page's fragment, not the page
    fragments = {name: v["fragment_runs"] for name, v in step["summary"].items()}
    assert fragments == {"open Draw": 0, "stroke": 9, "open Denoise": 0, "slider": 6}
    assert all(0 < s for name in ("stroke", "slider") for s in step["samples"][name])
    training = step["training"]
    assert training["started"] is True and training["running_at_end"] is True   # drawn while it trained
    assert training["polls"] > 0 and "images/s" in training["progress_at_end"]
    rss = step["rss_mb"]
    assert 100 < rss["before"] <= rss["peak"] and rss["after"] > 100
    server = result["servers"]["config"]
    assert server["rss_released"] > 100
    # once the sessions left and their state expired, Streamlit itself counts none of them, and the
    # images their reruns stored are gone (what is left is the probe session's)
    assert step["metrics_after"]["active_sessions"] == 0
    assert server["metrics_released"]["active_sessions"] == 0
    assert server["metrics_released"]["media_bytes"] < step["metrics_after"]["media_bytes"]


def test_forged_messages_get_the_page_message_or_are_refused(quick):
    r, result = quick
    assert result is not None, r.stderr[-3000:]
    forged = result["forged"]
    assert forged["errors"] == [], forged["errors"]
    cases = {c["case"]: c for c in forged["cases"]}
    assert len(cases) == 13 and all(c["outcome"] == c["expected"] for c in cases.values())
    assert "file is 6 MB; the limit is 5 MB" in cases["huge image data (6 MB)"]["shown"]
    assert "the limit is 16,777,216 pixels" in cases["PNG header claims 30000×30000 pixels"]["shown"]
    assert cases["widget id that does not exist"]["outcome"] == "ignored"
    assert cases["frame over 25 MB"]["close_code"] == 1009            # Message Too Big
    assert cases["bytes that are no protobuf"]["close_code"] == 1002  # Protocol Error
    for c in cases.values():   # the forger's own session goes on (or, once reloaded, a new one does)
        assert c["next_stroke"] == "works" or c["next_stroke"].endswith("after a reload: works"), c
    assert forged["normal_strokes"] >= forged["normal_sessions"]   # the others kept drawing, error-free


def test_quick_output_is_a_table(quick):
    r, result = quick
    assert result is not None, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("| sessions (+1 training) | postScriptGC | stroke p50 ms | stroke p95 ms")
    assert lines[2].startswith("| 3 | config | ")
    assert any("sessions held (stroke and slider p95 ≤ 500 ms" in line for line in lines)
    assert any(line.startswith("| huge image data (6 MB) | message | message") for line in lines)


def test_canvas_values_are_drawings_the_page_reads():
    """What the simulated sessions send is a real drawing: the page's own preprocessing finds a digit."""
    from aecore.preprocess import load_image, to_mnist
    from bench.capacity.protocol import drawing_sequences

    [sequence] = drawing_sequences(1, 4, seed=3)
    assert len(set(sequence)) == 4   # every stroke sends a different picture
    previous = 0
    for value in sequence:
        drawing = json.loads(value)["drawing"]
        header, data = drawing["data"].split(",", 1)
        assert header == "data:image/png;base64"
        image = load_image(base64.b64decode(data))
        assert image.size == (280, 280) and image.mode == "RGBA"
        assert len(drawing["raw"]["objects"]) > previous
        previous = len(drawing["raw"]["objects"])
        digit = to_mnist(image)
        assert digit is not None and digit.shape == (28, 28)

