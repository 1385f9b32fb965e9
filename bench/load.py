"""Load test: N concurrent browser sessions against a real `streamlit run app.py`.

Each session is a Chromium browser context (its own cookies and websocket, like a separate
person): it opens the Draw page, draws strokes on the canvas with the mouse (pressing
Clear every few strokes), then opens the Denoise page and moves the noise-level slider
with the keyboard. Meanwhile one more session trains a model on the Train page.

Measured:
- Draw latency: mouse-up -> the page has rerun (script state notRunning, nothing stale)
  with a changed input image or timing caption, i.e. the reconstructions are on screen.
- Denoise latency: slider key press -> rerun finished with changed scores.
- errors: an exception box on a page, a JavaScript error, a lost websocket connection,
  a timeout, a traceback in the server log. Must be zero.
- the server's resident memory (RSS): at start, peak, end.

    python -m bench.load                     # sessions 1 2 4 8, 20 strokes and 5 slider moves each
    python -m bench.load --sessions 2 4 --strokes 10 --json out.json
    python -m bench.load --quick             # 2 sessions, 3 strokes, 2 moves: < 60 s (the test suite)

The browser runs on the same machine as the server: on 2 cores, Chromium's rendering
competes with the server for CPU, so the figures are an upper bound on what a remote
browser would see. Server start code is shared with the browser tests (bench/server.py).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .server import CHROMIUM_ARGS, ServerLogs, StreamlitServer

ROOT = Path(__file__).resolve().parent.parent

CANVAS = "[data-testid=stBidiComponentIsolated] canvas.upper-canvas"
CLEAR_EVERY = 4            # strokes between presses of Clear (a full canvas has no digit)
STEP_TIMEOUT_MS = 60_000   # one interaction taking longer counts as an error
LOST_CHECK_MS = 15_000     # no change after a stroke for this long: look whether the canvas lost it
CANVAS_PIXELS = "[data-testid=stBidiComponentIsolated] canvas.lower-canvas"   # Fabric's drawing layer
BLANK_JS = """c => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 128) return false;   // a white stroke pixel
  return true;
}"""

# Connection watch, installed in every page: counts CONNECTED -> anything else.
WATCH_JS = """
window.__load = {disconnects: 0, connected: false};
setInterval(() => {
  const app = document.querySelector('[data-testid=stApp]');
  if (!app) return;
  const now = app.getAttribute('data-test-connection-state') === 'CONNECTED';
  if (window.__load.connected && !now) window.__load.disconnects++;
  window.__load.connected = now;
}, 100);
"""
# What the page shows now: every main image's src (st.image and st.html) + all captions (timing, scores).
SNAPSHOT_JS = """() => {
  const imgs = [...document.querySelectorAll(
    '[data-testid=stMain] [data-testid=stImage] img, [data-testid=stMain] [data-testid=stHtml] img')];
  const caps = [...document.querySelectorAll('[data-testid=stMain] [data-testid=stCaptionContainer]')];
  return imgs.map(i => i.src).join('|') + '|' + caps.map(c => c.innerText).join('|');
}"""
# True once a rerun has finished and the page differs from `before`.
CHANGED_JS = """before => {
  const app = document.querySelector('[data-testid=stApp]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-testid=stElementContainer][data-stale=true]')) return false;
  return (%s)() !== before;
}""" % SNAPSHOT_JS
SETTLED_JS = """() => {
  const app = document.querySelector('[data-testid=stApp]');
  return app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
    && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid=stElementContainer][data-stale=true]')
    && !!document.querySelector('[data-testid=stMain] [data-testid=stElementContainer]');
}"""


@dataclass
class Round:
    """The result of one round: `sessions` drawing sessions (+ one training)."""
    sessions: int
    draw_ms: list[float] = field(default_factory=list)
    denoise_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lost_strokes: list[str] = field(default_factory=list)   # drawn again; see draw_once
    lost_clicks: list[str] = field(default_factory=list)    # clicked again; see denoise_moves
    rss_mb: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    load_before: float = 0.0
    seconds: float = 0.0


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): a value that occurred; None for no values."""
    return float(np.percentile(values, q, method="inverted_cdf")) if values else None


def summary(values: list[float]) -> dict:
    return {"count": len(values), "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
            "max_ms": max(values) if values else None,
            "mean_ms": statistics.fmean(values) if values else None}


# --------------------------------------------------------------------------- server memory

class RssSampler:
    """Samples the server process's VmRSS every `every_s` seconds in a thread."""

    def __init__(self, pid: int, every_s: float = 0.25):
        self.pid, self.every_s, self.samples = pid, every_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self.rss_mb()
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.every_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> dict:
        s = self.samples
        return {"start": round(s[0], 1), "peak": round(max(s), 1), "end": round(s[-1], 1)} if s else {}


# --------------------------------------------------------------------------- sessions

async def settle(page, timeout_ms: int = STEP_TIMEOUT_MS, quiet_s: float = 0.4) -> None:
    """Until the app has been idle and connected for `quiet_s` (it blinks 'notRunning'
    between the script runs of one interaction)."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        await page.wait_for_function(SETTLED_JS, polling=100, timeout=max(1, (deadline - time.monotonic()) * 1000))
        await asyncio.sleep(quiet_s)
        if await page.evaluate(SETTLED_JS):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not settle")


async def timed_change(page, action) -> float:
    """Milliseconds from `action()` (the user's input) to the finished, changed page."""
    before = await page.evaluate(SNAPSHOT_JS)
    start = await action()
    await page.wait_for_function(CHANGED_JS, arg=before, polling=50, timeout=STEP_TIMEOUT_MS)
    return (time.perf_counter() - start) * 1000


async def stroke(page, box: dict, rng: random.Random) -> float:
    """Draw a random three-point stroke; returns perf_counter() at mouse-up."""
    points = [(box["x"] + rng.uniform(0.2, 0.8) * box["width"], box["y"] + rng.uniform(0.15, 0.85) * box["height"])
              for _ in range(3)]
    await page.mouse.move(*points[0])
    await page.mouse.down()
    for point in points[1:]:
        await page.mouse.move(*point, steps=6)
    start = time.perf_counter()
    await page.mouse.up()
    return start


async def draw_once(page, canvas, rng: random.Random, out: "Round", step: str) -> None:
    """One timed stroke. A stroke the canvas lost (nothing changed after LOST_CHECK_MS and
    the canvas is blank: it happens right after Clear under heavy load) is recorded in
    `out.lost_strokes` and drawn again, as a person would."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    for _ in range(3):
        before = await page.evaluate(SNAPSHOT_JS)
        start = await stroke(page, await canvas.last.bounding_box(), rng)
        try:
            await page.wait_for_function(CHANGED_JS, arg=before, polling=50, timeout=LOST_CHECK_MS)
        except PlaywrightTimeout:
            if await page.locator(CANVAS_PIXELS).last.evaluate(BLANK_JS):
                out.lost_strokes.append(step)
                continue
            await page.wait_for_function(CHANGED_JS, arg=before, polling=50, timeout=STEP_TIMEOUT_MS)
        out.draw_ms.append((time.perf_counter() - start) * 1000)
        return
    raise TimeoutError("the canvas lost the same stroke three times")


async def check_page(page, where: str, errors: list[str]) -> None:
    shown = await page.locator("[data-testid=stException]").count()
    if shown:
        text = (await page.locator("[data-testid=stException]").first.inner_text()).splitlines()[:2]
        errors.append(f"{where}: exception on the page: {' / '.join(text)}")
    lost = await page.evaluate("window.__load ? window.__load.disconnects : 0")
    if lost:
        errors.append(f"{where}: websocket disconnected {lost} time(s)")


async def drawing_session(browser, url: str, n: int, strokes: int, moves: int, out: Round) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.add_init_script(WATCH_JS)
    page = await context.new_page()
    page.on("pageerror", lambda exc: out.errors.append(f"session {n}: JavaScript error: {exc}"))
    rng = random.Random(n)
    where = step = f"session {n}"
    try:
        await page.goto(url + "/Draw", timeout=STEP_TIMEOUT_MS)
        await settle(page)
        canvas = page.locator(CANVAS)
        await canvas.wait_for(timeout=STEP_TIMEOUT_MS)
        for i in range(strokes):
            if i and i % CLEAR_EVERY == 0:
                step = f"{where}, Clear before stroke {i + 1}"
                await canvas.evaluate_all("cs => cs.forEach(c => { c.__old = true; })")
                await page.get_by_role("button", name="Clear").click()
                await settle(page)
                await new_canvas(canvas)
                await asyncio.sleep(1.0)   # a person needs about that long to get back to the canvas
            step = f"{where}, stroke {i + 1}"
            await draw_once(page, canvas, rng, out, step)
            await check_page(page, step, out.errors)
        if moves:
            step = f"{where}, Denoise"
            await denoise_moves(page, moves, out, where)
    except Exception as e:  # noqa: BLE001 - a timeout or a vanished element is a load failure
        shot = Path(tempfile.gettempdir()) / f"aecore-load-{n}-{int(time.time())}.png"
        await page.screenshot(path=str(shot))
        out.errors.append(f"{step}: {type(e).__name__}: {str(e).splitlines()[0]} (screenshot {shot})")
    finally:
        await context.close()


async def new_canvas(canvas, timeout_s: float = STEP_TIMEOUT_MS / 1000) -> None:
    """Wait until Clear's new canvas has replaced the old one (marked `__old`): strokes
    before its Fabric layer exists are lost. (The canvas lives in a shadow root, which
    locators pierce and document.querySelector does not.)"""
    deadline = time.monotonic() + timeout_s
    while not await canvas.evaluate_all("cs => cs.length === 1 && !cs[0].__old"):
        if time.monotonic() > deadline:
            raise TimeoutError("Clear did not replace the canvas")
        await asyncio.sleep(0.1)


async def denoise_moves(page, moves: int, out: Round, where: str) -> None:
    """Open Denoise through the sidebar (same session) and move the noise level. A click
    on the link that changed nothing (seen under load, right after a stroke's rerun) is
    recorded in `out.lost_clicks` and made again, as a person would."""
    for _ in range(3):
        await page.locator("[data-testid=stSidebarNavLink]", has_text="Denoise").click()
        await settle(page)
        if page.url.rstrip("/").endswith("/Denoise"):
            break
        out.lost_clicks.append(f"{where}: still on {page.url.rsplit('/', 1)[-1] or 'Home'}")
    slider = page.locator("[data-testid=stSlider]", has_text="Noise level").locator("input[type=range]")
    try:
        await slider.wait_for(timeout=STEP_TIMEOUT_MS)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError
        shows = await page.locator("[data-testid=stMain]").inner_text(timeout=5_000)
        out.errors.append(f"{where}: the Denoise page shows no noise slider; it shows: "
                          + " | ".join(shows.split("\n")[:12])[:600])
        return
    await settle(page)
    for j in range(moves):
        key = "ArrowRight" if j % 2 == 0 else "ArrowLeft"

        async def press():
            await slider.focus()
            start = time.perf_counter()
            await slider.press(key)
            return start
        out.denoise_ms.append(await timed_change(page, press))
        await check_page(page, f"{where}, slider move {j + 1}", out.errors)


async def training_session(browser, url: str, epochs: int, started: asyncio.Event, done: asyncio.Event,
                           out: Round) -> None:
    """Start a training on the Train page, keep the tab open until `done`, then Stop."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.add_init_script(WATCH_JS)
    page = await context.new_page()
    page.on("pageerror", lambda exc: out.errors.append(f"trainer: JavaScript error: {exc}"))
    try:
        await page.goto(url + "/Train", timeout=STEP_TIMEOUT_MS)
        await settle(page)
        epochs_box = page.get_by_label("Epochs")
        await epochs_box.fill(str(epochs))
        await epochs_box.press("Enter")
        await settle(page)
        await page.get_by_role("button", name="Start training").click()
        await page.get_by_text("images/s").first.wait_for(timeout=STEP_TIMEOUT_MS)
        out.training["started"] = True
        started.set()
        await done.wait()
        progress = await page.get_by_text("images/s").first.inner_text()
        out.training["progress_at_end"] = " ".join(progress.split())
        stop = page.get_by_role("button", name="Stop (keep the model so far)")
        out.training["running_at_end"] = await stop.count() > 0
        if out.training["running_at_end"]:
            await stop.click()
            await page.get_by_text("Stopped").first.wait_for(timeout=STEP_TIMEOUT_MS)
        await check_page(page, "trainer", out.errors)
    except Exception as e:  # noqa: BLE001
        out.errors.append(f"trainer: {type(e).__name__}: {str(e).splitlines()[0]}")
    finally:
        started.set()
        await context.close()


async def run_round(browser, server: StreamlitServer, sessions: int, strokes: int, moves: int,
                    train_epochs: int | None) -> Round:
    out = Round(sessions, load_before=round(os.getloadavg()[0], 2))
    started, done = asyncio.Event(), asyncio.Event()
    began = time.perf_counter()
    with RssSampler(server.proc.pid) as rss:
        trainer = None
        if train_epochs:
            trainer = asyncio.create_task(training_session(browser, server.url, train_epochs, started, done, out))
            await started.wait()   # measure while it trains
        await asyncio.gather(*(drawing_session(browser, server.url, n, strokes, moves, out)
                               for n in range(sessions)))
        done.set()
        if trainer:
            await trainer
    out.rss_mb, out.seconds = rss.result(), round(time.perf_counter() - began, 1)
    return out


def server_log_errors(log: Path, offset: int) -> list[str]:
    text = log.read_text(errors="replace")[offset:]
    return [f"server log: {line.strip()}" for line in text.splitlines()
            if "Traceback" in line or " ERROR " in line][:10]


async def run(args) -> list[Round]:
    from playwright.async_api import async_playwright
    chromium = shutil.which(os.environ.get("AELAB_CHROMIUM", "chromium"))
    if not chromium:
        raise SystemExit("error: Chromium is not installed (scripts/install-browser.sh)")
    with ServerLogs("aecore-load-") as logs:
        log = logs.path / "server.log"
        server = StreamlitServer(app=ROOT / "app.py", log_path=log)
        server.start()
        rounds = []
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
                try:
                    await warm_up(browser, server.url)
                    for n in args.sessions:
                        offset = len(log.read_text(errors="replace"))
                        result = await run_round(browser, server, n, args.strokes, args.moves,
                                                 None if args.no_train else args.train_epochs)
                        result.errors += server_log_errors(log, offset)
                        rounds.append(result)
                        print(format_round(result), file=sys.stderr, flush=True)
                finally:
                    await browser.close()
        finally:
            server.stop()
        logs.keep = any(r.errors for r in rounds)
    return rounds


async def warm_up(browser, url: str) -> None:
    """One visit to Draw and Denoise first: model loading and first imports are not load."""
    context = await browser.new_context()
    page = await context.new_page()
    for path in ("/Draw", "/Denoise"):
        await page.goto(url + path, timeout=STEP_TIMEOUT_MS * 2)
        await settle(page, STEP_TIMEOUT_MS * 2)
    await context.close()


# --------------------------------------------------------------------------- output

def _ms(value) -> str:
    return "—" if value is None else f"{value:.0f}"


def format_round(r: Round) -> str:
    d, s = summary(r.draw_ms), summary(r.denoise_ms)
    return (f"sessions {r.sessions}: draw p50 {_ms(d['p50_ms'])} ms, p95 {_ms(d['p95_ms'])} ms (n={d['count']}); "
            f"denoise p50 {_ms(s['p50_ms'])} ms, p95 {_ms(s['p95_ms'])} ms (n={s['count']}); "
            f"errors {len(r.errors)}; strokes lost by the canvas {len(r.lost_strokes)}; "
            f"sidebar clicks lost {len(r.lost_clicks)}; RSS {r.rss_mb.get('start', '—')}→{r.rss_mb.get('peak', '—')} MB; "
            f"{r.seconds} s; load before {r.load_before}")


def markdown(rounds: list[Round], args) -> str:
    lines = [f"| sessions{'' if args.no_train else ' (+1 training)'} | Draw p50 ms | Draw p95 ms | Draw n | Denoise p50 ms | Denoise p95 ms "
             "| errors | server RSS start / peak MB | load avg before |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rounds:
        d, s = summary(r.draw_ms), summary(r.denoise_ms)
        lines.append(f"| {r.sessions} | {_ms(d['p50_ms'])} | {_ms(d['p95_ms'])} | {d['count']} | {_ms(s['p50_ms'])} "
                     f"| {_ms(s['p95_ms'])} | {len(r.errors)} | {r.rss_mb.get('start', '—')} / "
                     f"{r.rss_mb.get('peak', '—')} | {r.load_before} |")
    ok = [r.sessions for r in rounds if not r.errors and (summary(r.draw_ms)["p95_ms"] or 1e9) < 1000]
    lines.append("")
    lines.append(f"Sessions served with Draw p95 under 1 s and no errors: {max(ok) if ok else 'none'} "
                 f"({os.cpu_count()} cores, browser on the same machine"
                 f"{'' if args.no_train else ', one training running'}).")
    for r in rounds:
        lines += [f"- {r.sessions} sessions: {e}" for e in r.errors]
        lines += [f"- {r.sessions} sessions: the canvas lost a stroke ({s}), drawn again" for s in r.lost_strokes]
        lines += [f"- {r.sessions} sessions: a click on the Denoise link was lost ({c}), clicked again"
                  for c in r.lost_clicks]
    return "\n".join(lines)


def to_json(rounds: list[Round], args) -> dict:
    return {"args": {k: v for k, v in vars(args).items() if k != "json"}, "cores": os.cpu_count(),
            "rounds": [{**asdict(r), "draw": summary(r.draw_ms), "denoise": summary(r.denoise_ms)} for r in rounds],
            "errors": sum(len(r.errors) for r in rounds)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4, 8], help="concurrent sessions per round")
    p.add_argument("--strokes", type=int, default=20, help="canvas strokes per session")
    p.add_argument("--moves", type=int, default=5, help="Denoise slider moves per session")
    p.add_argument("--train-epochs", type=int, default=200, help="epochs of the background training "
                   "(it is stopped when the round ends)")
    p.add_argument("--no-train", action="store_true", help="no training session")
    p.add_argument("--quick", action="store_true", help="2 sessions, 3 strokes, 2 moves (< 60 s)")
    p.add_argument("--json", help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.sessions, args.strokes, args.moves = [2], 3, 2
    if min(args.sessions) < 1 or args.strokes < 1 or args.moves < 0:
        p.error("--sessions and --strokes must be at least 1, --moves at least 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    rounds = asyncio.run(run(args))
    print(markdown(rounds, args))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(rounds, args), indent=2) + "\n")
    return 1 if any(r.errors for r in rounds) else 0


if __name__ == "__main__":
    raise SystemExit(main())
