"""Browser tests of the Train page on a real server: a short run advances its progress bars
and finishes; a long run survives a page switch, leaves the server responsive for another
session's drawing, and stops by itself once its browser tab is closed; a run whose process
is killed fails with a message while the server keeps serving."""
import os
import re
import signal
import time
from pathlib import Path

from tests.browser.browser_helpers import screenshot, wait_for_app

CANVAS = "[data-testid=stBidiComponentIsolated] canvas.upper-canvas"
SEVEN = [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]  # a "7" as fractions of the canvas
RUN_BAR = '[data-testid=stProgress] [role=progressbar]'
OTHERS = "Another session is training"


def stroke(page, points, steps=12):
    box = page.locator(CANVAS).bounding_box()
    page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=steps)
    page.mouse.up()


def set_number(page, label, value):
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    wait_for_app(page)


def start_training(page, url, epochs, **advanced):
    page.goto(f"{url}/Train")
    wait_for_app(page)
    set_number(page, "Epochs", epochs)
    if advanced:
        page.get_by_text("Advanced").click()
        for label, value in advanced.items():  # simple-32: seconds
            set_number(page, label, value)
    page.get_by_role("button", name="Start training").click()


def run_fraction(page) -> float:
    """The whole-run progress bar (the second one) as a fraction, from its aria value."""
    return float(page.locator(RUN_BAR).nth(1).get_attribute("aria-valuenow")) / 100


def steps_done(page) -> int:
    """Training steps so far, read from the epoch bar's text "Epoch e of E: batch b/B"."""
    text = page.locator("[data-testid=stProgress]").first.inner_text()
    epoch, batch, batches = map(int, re.search(r"Epoch (\d+) of \d+: batch (\d+)/(\d+)", text).groups())
    return (epoch - 1) * batches + batch


def test_a_short_training_shows_progress_and_finishes(streamlit_server, page):
    # 15 epochs of simple-32 on 20,000 images: ~5 s on an idle 2-core machine, long
    # enough for the page to show the bars moving, short enough for a test on a busy one
    start_training(page, streamlit_server, epochs=15, **{"Training images (first N of 60,000)": 20_000})
    page.locator(RUN_BAR).nth(1).wait_for(timeout=30_000)
    seen, deadline = set(), time.monotonic() + 240
    while not page.get_by_text("Done: training finished").is_visible():
        assert time.monotonic() < deadline, f"no 'Done' within 4 minutes; run fractions seen: {seen}"
        if page.locator(RUN_BAR).count() == 2:
            seen.add(run_fraction(page))
        time.sleep(0.1)
    assert [f for f in seen if 0 < f < 1], f"the run bar did not advance live: {sorted(seen)}"
    wait_for_app(page)
    assert run_fraction(page) == 1.0
    assert page.locator("[data-testid=stPlotlyChart]").count() == 1
    assert page.get_by_text("reconstruction after epoch 15").is_visible()
    assert page.get_by_role("button", name="Download the checkpoint").is_visible()
    assert page.get_by_text("simple-32, 15 ep (this session)").is_visible()
    assert page.locator("[data-testid=stException]").count() == 0
    page.get_by_text("Advanced").click()  # folded again for the picture
    page.set_viewport_size({"width": 1280, "height": 1400})  # settings, progress, chart, digits
    wait_for_app(page)
    page.get_by_role("heading", name="Train an autoencoder").scroll_into_view_if_needed()
    screenshot(page, "train")


def test_a_long_training_survives_page_switches_and_ends_with_its_session(streamlit_server, browser):
    a = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    b = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    try:
        b.goto(f"{streamlit_server}/Train")  # B watches the Train page while nobody trains
        wait_for_app(b)
        start_training(a, streamlit_server, epochs=200)  # minutes of work: it must be stopped
        a.locator(RUN_BAR).nth(1).wait_for(timeout=30_000)
        b.get_by_text(OTHERS).wait_for(timeout=15_000)  # told without a reload (issue 15.10)
        before = steps_done(a)
        a.locator("[data-testid=stSidebarNav]").get_by_role("link", name="Draw").click()
        wait_for_app(a)

        b.goto(f"{streamlit_server}/Draw")  # another session draws while A trains
        wait_for_app(b)
        b.locator(CANVAS).wait_for()
        stroke(b, SEVEN)
        b.get_by_text("Reconstructions").wait_for(timeout=30_000)
        wait_for_app(b)
        print(f"\n[train] drawing while another session trains: {b.get_by_text('models took').inner_text()}")

        a.locator("[data-testid=stSidebarNav]").get_by_role("link", name="Train").click()
        a.get_by_role("button", name="Stop (keep the model so far)").wait_for(timeout=30_000)
        assert a.get_by_label("Epochs", exact=True).input_value() == "200"  # the settings came back (15.7)
        a.wait_for_function(f"() => document.querySelectorAll('{RUN_BAR}').length == 2")
        assert steps_done(a) > before  # still the same run, further on

        b.goto(f"{streamlit_server}/Train")
        b.get_by_text(OTHERS).wait_for(timeout=30_000)
        a.context.close()  # A's tab goes away without pressing Stop
        b.get_by_text(OTHERS).wait_for(state="detached", timeout=40_000)  # A's job stopped itself
        wait_for_app(b)
        assert b.get_by_role("button", name="Start training").is_visible()
        assert not re.search("Exception|Traceback", b.locator("[data-testid=stMain]").inner_text())
    finally:
        a.context.close()  # a no-op when already closed
        b.context.close()


def training_processes(server_pid: int) -> list[int]:
    """The server's training processes: forked by its fork server (same command line)."""
    def children(pid):
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry.name))
                except (OSError, IndexError, ValueError):
                    continue
        return out

    def cmdline(pid):
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return ""
    servers = [p for p in children(server_pid) if "multiprocessing.forkserver" in cmdline(p)]
    return [p for s in servers for p in children(s)]


def test_a_killed_training_process_leaves_the_app_serving(fresh_server, page):
    """SIGKILL of the training's process mid-epoch (issue 11): the page says the job failed
    and why, keeps the last epoch's model, and the same server keeps serving."""
    server = fresh_server()
    start_training(page, server.url, epochs=200, **{"Training images (first N of 60,000)": 20_000})
    page.get_by_text("reconstruction after epoch 1").wait_for(timeout=60_000)
    [worker] = training_processes(server.proc.pid)
    os.kill(worker, signal.SIGKILL)
    page.get_by_text("The training process ended unexpectedly (killed by signal 9").wait_for(timeout=30_000)
    wait_for_app(page)
    failed = page.locator("[data-testid=stAlert]", has_text="ended unexpectedly").inner_text()
    assert "is kept" in failed and "(this session)" in failed, failed
    assert page.get_by_role("button", name="Start training").is_visible()
    assert not training_processes(server.proc.pid)
    page.locator("[data-testid=stSidebarNav]").get_by_role("link", name="Draw").click()
    wait_for_app(page)
    page.locator(CANVAS).wait_for()
    stroke(page, SEVEN)
    page.get_by_text("Reconstructions").wait_for(timeout=30_000)
    assert page.locator("[data-testid=stException]").count() == 0
