"""4. Interactive latency: a canvas drawing -> `to_mnist` -> every shipped model's
reconstruction (what the Draw page does on each stroke), the Draw page's whole rerun
under AppTest, and the time from `streamlit run app.py` to a served and a rendered page."""
from __future__ import annotations

import base64
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from aecore import denoising
from aecore.preprocess import to_mnist
from aecore.shipped import shipped_models

from .common import Table, time_calls

ROOT = Path(__file__).resolve().parent.parent
DRAW_PAGE = ROOT / "pages" / "1_Draw.py"
CANVAS_KEY = "draw_canvas_0"   # the Draw page's canvas key before any Clear
TARGET_P95_MS = 30.0
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def canvas_drawing() -> np.ndarray:
    """A '7' as the canvas returns it: RGBA uint8 (280,280,4), white strokes 20 px wide
    on a transparent background."""
    img = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(img).line([(70, 60), (205, 55), (115, 235)], fill=(255, 255, 255, 255), width=20,
                             joint="curve")
    return np.asarray(img)


def pipeline_rows(models: dict, repeats: int) -> list[tuple]:
    """(name, timing) for to_mnist, each model alone, and the whole path."""
    drawing = canvas_drawing()
    x = torch.from_numpy(to_mnist(drawing)).view(1, 1, 28, 28)

    def whole():
        digit = torch.from_numpy(to_mnist(drawing)).view(1, 1, 28, 28)
        return [m.reconstruct(digit) for m in models.values()]

    rows = [("to_mnist: RGBA 280x280 canvas -> 28x28", time_calls(lambda: to_mnist(drawing), repeats))]
    rows += [(f"{name}.reconstruct (1 image)", time_calls(lambda m=m: m.reconstruct(x), repeats))
             for name, m in models.items()]
    rows.append((f"whole path: to_mnist + all {len(models)} models", time_calls(whole, repeats)))
    rows.append(("Draw page path: to_mnist + denoising.reconstructions (adds MSE/PSNR/SSIM)",
                 time_calls(lambda: denoising.reconstructions(to_mnist(drawing), models), repeats)))
    return rows


def draw_page_rows(reruns: int) -> list[tuple]:
    """The Draw page under AppTest with the drawing injected as the canvas' value: the
    first (cold) run and then `reruns` reruns, as a stroke triggers."""
    if not DRAW_PAGE.is_file():
        return [("Draw page rerun under AppTest", None)]
    from streamlit.testing.v1 import AppTest
    buf = io.BytesIO()
    Image.fromarray(canvas_drawing()).save(buf, "PNG")
    value = {"drawing": {"raw": {"objects": [{"type": "path"}]},
                         "data": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}}
    at = AppTest.from_file(str(DRAW_PAGE), default_timeout=120)
    at.session_state[CANVAS_KEY] = value
    start = time.perf_counter()
    at.run()
    first = 1000 * (time.perf_counter() - start)
    if at.exception:
        raise RuntimeError(f"{DRAW_PAGE.name} raised under AppTest: {at.exception[0].message}")
    if sum('class="digit-grid"' in h.value for h in at.html) < 2:   # the 28x28 input, the reconstructions
        raise RuntimeError(f"{DRAW_PAGE.name} showed no reconstruction for the injected drawing "
                           f"(canvas key {CANVAS_KEY!r} changed?)")
    return [("Draw page first run under AppTest (cold: imports, models, first SSIM)",
             {"median_ms": first, "p95_ms": first, "runs": 1}),
            ("Draw page rerun under AppTest (a stroke)", time_calls(at.run, reruns, warmup=1))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> bytes | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: never a proxy
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.read() if r.status == 200 else None
    except OSError:
        return None


def server_start(browser=None, timeout: float = 90.0, path: str = "/") -> dict:
    """Seconds from spawning `streamlit run app.py` to /_stcore/health answering, to the
    first GET of the page, and (with a Playwright `browser`) to the rendered page at `path`."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    url, out = f"http://127.0.0.1:{port}", {}
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            while _get(url + "/_stcore/health", 1.0) != b"ok":
                if proc.poll() is not None or time.perf_counter() - start > timeout:
                    log.seek(0)
                    raise RuntimeError(f"`{' '.join(cmd)}` did not answer /_stcore/health within {timeout:.0f} s; "
                                       f"its output ends: {log.read()[-500:].decode(errors='replace')}")
                time.sleep(0.05)
            out["health"] = time.perf_counter() - start
            if _get(url + "/") is None:
                raise RuntimeError(f"GET {url}/ failed after the health check passed")
            out["get"] = time.perf_counter() - start
            if browser is not None:
                rendered, error = render(browser, url + path, timeout)
                out["rendered"] = rendered - start
                out.update({"error": error} if error else {})
        finally:
            stop(proc)
    return out


def stop(proc: subprocess.Popen) -> None:
    """End the server and everything it started (its own process group)."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def render(browser, url: str, timeout: float) -> tuple[float, str | None]:
    """Open `url` in a new page: (perf_counter() when the script run finished, the first line
    of an exception the page shows, if any)."""
    page = browser.new_page()
    try:
        page.goto(url, timeout=timeout * 1000)
        done = settled(page, timeout)
        errors = page.locator("[data-testid=stException]")
        return done, errors.first.inner_text().splitlines()[0] if errors.count() else None
    finally:
        page.close()


def settled(page, timeout: float, quiet_s: float = 0.5) -> float:
    """perf_counter() when the page's script run finished: Streamlit reports 'notRunning'
    with content on the page, and keeps doing so for `quiet_s` (it blinks 'notRunning'
    for a moment before a run starts)."""
    deadline, since = time.perf_counter() + timeout, None
    state = "() => [document.querySelector('[data-testid=stApp]')?.dataset.testScriptState, " \
            "document.querySelectorAll('[data-testid=stMain] [data-testid=stElementContainer]').length]"
    while time.perf_counter() < deadline:
        script, elements = page.evaluate(state)
        now = time.perf_counter()
        if script == "notRunning" and elements:
            since = since or now
            if now - since >= quiet_s:
                return since
        else:
            since = None
        time.sleep(0.05)
    raise RuntimeError(f"the page did not finish rendering within {timeout:.0f} s")


def launch_browser(stack):
    """A headless Chromium through Playwright, or None (with why) when either is missing."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, "playwright is not installed"
    if not chromium:
        return None, "chromium is not on PATH"
    p = stack.enter_context(sync_playwright())
    browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
    stack.callback(browser.close)
    return browser, None


def startup_rows(starts: int, use_browser: bool) -> tuple[list[tuple], list[str]]:
    from contextlib import ExitStack
    notes = []
    with ExitStack() as stack:
        browser, why = launch_browser(stack) if use_browser else (None, "skipped in quick mode")
        runs = [server_start(browser) for _ in range(starts)]
        draw = [server_start(browser, path="/Draw") for _ in range(starts)] if browser else []
    if browser is None:
        notes.append(f"Rendered-page time not measured: {why}.")
    notes += sorted({f"The page showed an error: {r['error']}" for r in runs + draw if "error" in r})
    rows = []
    for name, seconds in (
            ("app start -> /_stcore/health answers", [r["health"] for r in runs]),
            ("app start -> first GET / served (HTML; the script has not run yet)", [r["get"] for r in runs]),
            ("app start -> Home page rendered in Chromium (script run finished)",
             [r["rendered"] for r in runs if "rendered" in r]),
            ("app start -> Draw page (deep link) rendered: torch and all models load in that run",
             [r["rendered"] for r in draw if "rendered" in r])):
        if not seconds and browser is None:
            continue   # said in the notes
        ms = [1000 * t for t in seconds]
        timing = {"median_ms": float(np.median(ms)), "p95_ms": max(ms), "runs": len(ms)} if ms else None
        rows.append((name, timing))
    return rows, notes


def headline(timings: dict, count: int) -> str:
    whole = next(t for name, t in timings.items() if name.startswith("whole path"))
    text = (f"Latency: drawing -> preprocessing -> the Draw page's {count} models (every shipped autoencoder) "
            f"takes {whole['median_ms']:.1f} ms "
            f"(median), {whole['p95_ms']:.1f} ms (p95; goal < {TARGET_P95_MS:g} ms)")
    rerun = timings.get("Draw page rerun under AppTest (a stroke)")
    rendered = next((t for name, t in timings.items() if "Home page rendered" in name and t), None)
    text += f"; a Draw page rerun {rerun['median_ms']:.0f} ms" if rerun else ""
    text += f"; app start to a rendered Home page {rendered['median_ms'] / 1000:.1f} s (goal < 3 s)" if rendered else ""
    return text + "."


def run(quick: bool = False) -> list[Table]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as the app: ui.shipped() leaves the other core to training
    try:
        shipped = shipped_models()
        models = {s.name: s.model for s in shipped if s.is_autoencoder}   # the Draw page's (ui.available_models)
        rows = pipeline_rows(models, 20 if quick else 300)
        rows += draw_page_rows(2 if quick else 20)
        table = Table("Interactive latency" + (" (quick)" if quick else ""),
                      ["measurement", "runs", "median ms", "p95 ms", "goal"],
                      formats={"median ms": ".2f", "p95 ms": ".2f"})
    finally:
        torch.set_num_threads(threads)
    start_rows, notes = startup_rows(1 if quick else 3, use_browser=not quick)
    table.headline = headline(dict(rows + start_rows), len(models))
    for name, t in rows + start_rows:
        goal = (f"p95 < {TARGET_P95_MS:g} ms" if name.startswith("whole path") else
                "< 3 s" if "Home page rendered" in name else "")
        if t is None:
            table.add(name, None, "n/a", "n/a", goal)
        else:
            table.add(name, t["runs"], t["median_ms"], t["p95_ms"], goal)
    table.notes += [
        "Model inference in this process with 1 torch thread, as the app runs it; the drawing is a "
        "white '7' on a transparent 280x280 RGBA canvas. The AppTest rows run the real page script with "
        f"the drawing injected as the canvas value ({CANVAS_KEY!r}). App start rows: a fresh "
        "`streamlit run app.py` on a free port of 127.0.0.1 (p95 column: the slowest start).",
        *notes, *[f"Unavailable: {s.name} ({s.error})" for s in shipped if s.model is None]]
    return [table]
