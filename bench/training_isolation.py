"""Does a training slow down when other sessions draw? A real `streamlit run app.py`; one
Chromium session starts a long training on the Train page (simple-32, the page's default
batch size) and keeps its tab open; N more sessions sit on the Draw page. The run then
alternates phases of `--phase-s` seconds: "alone" (the N sessions idle) and "with N
drawing" (each draws strokes as fast as the app answers, pressing Clear every few, as in
bench/load.py). The training's speed in a phase is the training steps it did (read from
the Train page's epoch bar, "Epoch e of E: batch b/B") times the batch size, over the
phase's seconds: the same run, alone and loaded in turn, so the machine's other load hits
both alike.

    python -m bench.training_isolation                 # 5 drawing sessions, 4 phases of 30 s
    python -m bench.training_isolation --sessions 5 --phases 6 --phase-s 20
    python -m bench.training_isolation --quick         # 2 sessions, 2 phases of 10 s

Target (issue 11): images/s with 5 drawing sessions >= 0.8 x alone. The load generator
(Chromium) runs on the same machine; it is started at the lowest priority (`--browser-nice`,
default +19 over this process), below the server and its training processes (which run at
+aecore.launcher.NICE), which it would not share a machine with in use. Under Linux's
autogroup scheduling a session gets a fair share of the CPU whatever its processes' nice
values, so the bench runs in a session of its own (it restarts itself in one), and after
starting the server (in its own session) sets its session's nice and that of Chromium's
session (Playwright starts Chromium in another) to --browser-nice (/proc/PID/autogroup).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import Table
from .load import (CANVAS, CHROMIUM_ARGS, CLEAR_EVERY, STEP_TIMEOUT_MS, Round, draw_once, new_canvas, settle,
                   summary, warm_up)
from .server import ServerLogs, StreamlitServer

ROOT = Path(__file__).resolve().parent.parent
OWN_SESSION_ENV = "AECORE_ISOLATION_SESSION"   # set in the copy of the bench that runs in its own session
EPOCH_BAR = "[data-testid=stProgress]"
TARGET = 0.8


async def steps_done(page) -> int:
    """Training steps so far, from the epoch bar's text (the page refreshes it twice a second)."""
    text = await page.locator(EPOCH_BAR).first.inner_text(timeout=STEP_TIMEOUT_MS)
    epoch, batch, batches = map(int, re.search(r"Epoch (\d+) of \d+: batch (\d+)/(\d+)", text).groups())
    return (epoch - 1) * batches + batch


async def start_training(browser, url: str, epochs: int, train_size: int):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(url + "/Train", timeout=STEP_TIMEOUT_MS)
    await settle(page)
    for label, value in (("Epochs", epochs),):
        box = page.get_by_label(label, exact=True)
        await box.fill(str(value))
        await box.press("Enter")
        await settle(page)
    if train_size:
        await page.get_by_text("Advanced").click()
        box = page.get_by_label("Training images (first N of 60,000)", exact=True)
        await box.fill(str(train_size))
        await box.press("Enter")
        await settle(page)
    batch = int(await page.get_by_label("Batch size", exact=True).input_value())
    await page.get_by_role("button", name="Start training").click()
    await page.locator(EPOCH_BAR).first.wait_for(timeout=STEP_TIMEOUT_MS)
    return page, batch


async def open_drawer(browser, url: str):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(url + "/Draw", timeout=STEP_TIMEOUT_MS)
    await settle(page)
    await page.locator(CANVAS).wait_for(timeout=STEP_TIMEOUT_MS)
    # one stroke first, not measured: a session's first rerun loads what later ones reuse
    await draw_once(page, page.locator(CANVAS), random.Random(0), Round(1), "warm-up stroke")
    return page


async def draw_until(page, n: int, deadline: float, out: Round) -> None:
    """Strokes back to back (each waits for its reconstructions) until `deadline`."""
    rng, canvas, i = random.Random(n * 1000 + int(deadline)), page.locator(CANVAS), 0
    try:
        while time.monotonic() < deadline:
            if i and i % CLEAR_EVERY == 0:
                await canvas.evaluate_all("cs => cs.forEach(c => { c.__old = true; })")
                await page.get_by_role("button", name="Clear").click()
                await settle(page)
                await new_canvas(canvas)
            await draw_once(page, canvas, rng, out, f"session {n}, stroke {i + 1}")
            i += 1
    except Exception as e:  # noqa: BLE001 - a timeout under load is a result, not a crash
        out.errors.append(f"session {n}: {type(e).__name__}: {str(e).splitlines()[0]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the fork server, the training processes, ...)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def cpu(server_pid: int) -> tuple[float, float]:
    """(the server process's CPU seconds, its descendants' CPU seconds: the training)."""
    return cpu_seconds(server_pid), sum(cpu_seconds(p) for p in descendants(server_pid))


async def phase(trainer, drawers: list, seconds: float, batch: int, server_pid: int) -> dict:
    out = Round(len(drawers))
    s0, t0 = await steps_done(trainer), time.monotonic()
    c0 = cpu(server_pid)
    deadline = t0 + seconds
    if drawers:
        await asyncio.gather(*(draw_until(p, n, deadline, out) for n, p in enumerate(drawers)))
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    s1, t1, c1 = await steps_done(trainer), time.monotonic(), cpu(server_pid)
    return {"sessions": len(drawers), "seconds": t1 - t0, "steps": s1 - s0,
            "images_per_s": (s1 - s0) * batch / (t1 - t0), "draw": summary(out.draw_ms), "errors": out.errors,
            "server_cpu": (c1[0] - c0[0]) / (t1 - t0), "training_cpu": (c1[1] - c0[1]) / (t1 - t0),
            "load": os.getloadavg()[0]}


def lower_sessions(nice: int, keep: set[int]) -> None:
    """Give this process's session and its descendants' (Chromium's, the Playwright
    driver's) the autogroup nice `nice` (module docstring), except the sessions in `keep`
    (the server's, and a session this bench shares with its caller). Best effort: without
    autogroup scheduling (no /proc/PID/autogroup) the processes' own nice applies."""
    import psutil
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            if os.getsid(process.pid) not in keep:
                Path(f"/proc/{process.pid}/autogroup").write_text(str(nice))
        except OSError:   # gone, not allowed, or no autogroup scheduling
            pass


async def measure(sessions: int, phases: int, phase_s: float, browser_nice: int) -> tuple[list[dict], int]:
    from playwright.async_api import async_playwright
    chromium = shutil.which(os.environ.get("AELAB_CHROMIUM", "chromium"))
    if not chromium:
        raise SystemExit("error: Chromium is not installed (scripts/install-browser.sh)")
    with ServerLogs("aecore-isolation-") as logs:
        log = logs.path / "server.log"
        server = StreamlitServer(app=ROOT / "app.py", log_path=log).start()
        try:
            os.nice(browser_nice)   # the Playwright driver and Chromium inherit it; the server is started already
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
                keep = {os.getsid(server.proc.pid)} | (set() if os.getsid(0) == os.getpid() else {os.getsid(0)})
                lower_sessions(browser_nice, keep)
                try:
                    await warm_up(browser, server.url)
                    drawers = await asyncio.gather(*(open_drawer(browser, server.url) for _ in range(sessions)))
                    trainer, batch = await start_training(browser, server.url, epochs=1000, train_size=0)
                    await asyncio.sleep(3)   # past the process start and the first batches
                    results = []
                    for i in range(phases):
                        results.append(await phase(trainer, drawers if i % 2 else [], phase_s, batch, server.proc.pid))
                        r = results[-1]
                        print(f"phase {i + 1}: {r['sessions']} drawing, {r['images_per_s']:,.0f} training images/s, "
                              f"draw p50 {r['draw']['p50_ms']} ms, n={r['draw']['count']}, errors {len(r['errors'])}",
                              file=sys.stderr, flush=True)
                    await trainer.get_by_role("button", name="Stop (keep the model so far)").click()
                    await trainer.get_by_text("Stopped").first.wait_for(timeout=STEP_TIMEOUT_MS)
                finally:
                    await browser.close()
        finally:
            server.stop()
        logs.keep = any(r["errors"] for r in results)
    return results, batch


def table(results: list[dict], batch: int, sessions: int, phase_s: float) -> Table:
    t = Table(f"Training speed while {sessions} other sessions draw (simple-32, batch {batch})",
              ["phase", "drawing sessions", "seconds", "training steps", "training images/s",
               "Draw p50 ms", "Draw p95 ms", "strokes", "errors", "server CPU", "training CPU",
               "images per training CPU-s", "load avg"],
              formats={"seconds": ".1f", "server CPU": ".0%", "training CPU": ".0%", "load avg": ".1f"})
    for i, r in enumerate(results, 1):
        t.add(f"{i} ({'with' if r['sessions'] else 'alone'})", r["sessions"], r["seconds"], r["steps"],
              round(r["images_per_s"]), r["draw"]["p50_ms"], r["draw"]["p95_ms"], r["draw"]["count"],
              len(r["errors"]), r["server_cpu"], r["training_cpu"],
              round(r["images_per_s"] / r["training_cpu"]) if r["training_cpu"] > 0 else None, r["load"])
    alone = [r["images_per_s"] for r in results if not r["sessions"]]
    loaded = [r["images_per_s"] for r in results if r["sessions"]]
    ratio = statistics.fmean(loaded) / statistics.fmean(alone) if alone and loaded and min(alone) > 0 else None
    verdict = "—" if ratio is None else "met" if ratio >= TARGET else "missed"
    t.headline = (f"A training keeps {ratio:.2f}× its speed alone while {sessions} sessions draw "
                  f"(target ≥ {TARGET}: {verdict})." if ratio is not None else None)
    t.notes += [f"Ratio with/alone (means of the phases): **{ratio:.2f}** (target ≥ {TARGET}: {verdict})."
                if ratio is not None else "No ratio: a phase kind is missing.",
                f"Phases of {phase_s:g} s alternate in one run (alone first); the training runs in its own "
                "process (aecore.launcher); Chromium runs on the same machine at a lower priority. Server "
                "CPU: the Streamlit process (1 = one core); training CPU: the processes it started "
                "(the training's); images per training CPU-s: its work per second of CPU it got, which the "
                "server's load cannot touch in another process (a thread sharing the server's GIL lost "
                "its CPU time to waiting); load avg: the machine's, at the phase's end."]
    t.notes += [f"- phase {i}: {e}" for i, r in enumerate(results, 1) for e in r["errors"][:3]]
    return t


def run(quick: bool = False, sessions: int = 5, phases: int = 4, phase_s: float = 30.0,
        browser_nice: int = 19) -> list[Table]:
    if quick:
        sessions, phases, phase_s = 2, 2, 10.0
    results, batch = asyncio.run(measure(sessions, phases, phase_s, browser_nice))
    return [table(results, batch, sessions, phase_s)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.training_isolation", description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=5, help="drawing sessions besides the training one")
    p.add_argument("--phases", type=int, default=4, help="alternating phases, alone first (at least 2)")
    p.add_argument("--phase-s", type=float, default=30.0, help="seconds per phase")
    p.add_argument("--browser-nice", type=int, default=19, help="niceness added for Chromium (0: none)")
    p.add_argument("--quick", action="store_true", help="2 sessions, 2 phases of 10 s")
    args = p.parse_args(argv)
    if args.sessions < 1 or args.phases < 2 or not 1 <= args.phase_s <= 600 or not 0 <= args.browser_nice <= 19:
        p.error("--sessions >= 1, --phases >= 2, --phase-s from 1 to 600, --browser-nice from 0 to 19")
    if os.getsid(0) != os.getpid() and not os.environ.get(OWN_SESSION_ENV):
        # rerun in a session of its own, whose CPU share it may lower (module docstring)
        argv = sys.argv[1:] if argv is None else argv
        return subprocess.run([sys.executable, "-m", "bench.training_isolation", *argv], cwd=ROOT,
                              env=dict(os.environ, **{OWN_SESSION_ENV: "1"}), start_new_session=True).returncode
    for t in run(args.quick, args.sessions, args.phases, args.phase_s, args.browser_nice):
        print(t.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
