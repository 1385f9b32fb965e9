"""9. The Draw and Denoise pages against the stack's floor, in one real Chromium.

Three real `streamlit run` servers side by side: the app, floor (a) — only the Draw page's
canvas and one st.image of its PNG (bench/floor_pages/draw_floor.py) — and floor (b) — only
the Denoise page's noise slider and one st.image (denoise_floor.py). The same interaction
alternates between a page of the app and its floor, in both orders, so load on the machine
falls on both sides alike:

- a stroke: mouse-up on the canvas -> the script run finished and the page's images changed;
- a slider step: ArrowRight/ArrowLeft on the focused noise slider -> the same.

The time is taken in the page itself (the input event's timestamp to the first animation
frame where the condition holds), so Python's polling adds nothing and the browser's own
work (layout, images, charts) counts. `python -m bench.floor [--quick] [--samples N]`, or
`python -m bench --only floor`.

Where the time goes (always recorded, a second table): every websocket message the page
receives, with its time after the input, labelled by its Streamlit ForwardMsg type (decoded
from one extra, untimed interaction per side; the timed ones only note time and size)."""
from __future__ import annotations

import argparse
import base64
import math
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from .common import Table
from .server import REPO_ROOT, StreamlitServer

FLOOR_PAGES = REPO_ROOT / "bench" / "floor_pages"
TARGET_RATIO = 1.25
CANVAS = "[data-testid=stBidiComponentIsolated] canvas.upper-canvas"
IMAGES = ", ".join(f"[data-testid=stMain] [data-testid={kind}] img" for kind in ("stImage", "stHtml"))   # st.image, st.html
# Strokes of one digit (fractions of the canvas); the pages are reloaded after each digit.
DIGIT = [[(0.25, 0.2), (0.75, 0.2)], [(0.75, 0.2), (0.45, 0.85)], [(0.35, 0.5), (0.65, 0.5)]]

# Arms a measure: the next pointerup/keydown is t0; resolves with ms until the first frame
# where the script run is over (notRunning, nothing stale) and the page's images differ.
ARM_JS = """
(selector) => {
  const imgs = () => Array.from(document.querySelectorAll(selector));
  const before = imgs().map(i => i.src).join('|');
  let t0 = null, changed = null, busy = 0;
  const start = e => { if (t0 === null) t0 = e.timeStamp; };
  window.addEventListener('pointerup', start, {capture: true, once: true});
  window.addEventListener('keydown', start, {capture: true, once: true});
  const tasks = new PerformanceObserver(list => {   // the browser's own long tasks (> 50 ms)
    for (const e of list.getEntries()) if (t0 !== null && e.startTime >= t0) busy += e.duration; });
  try { tasks.observe({type: 'longtask'}); } catch (e) {}
  window.__floorDone = new Promise((resolve, reject) => {
    const limit = performance.now() + 60000;
    const check = now => {
      const app = document.querySelector('[data-testid=stApp]');
      const shown = imgs();
      const differ = t0 !== null && shown.map(i => i.src).join('|') !== before;
      if (differ && changed === null) changed = now - t0;
      const done = differ && app && app.dataset.testScriptState === 'notRunning'
        && !document.querySelector('[data-testid=stElementContainer][data-stale=true]')
        && shown.every(i => i.complete && i.naturalWidth > 0);   // the pictures are on screen
      if (done) { tasks.disconnect();
                  resolve({ms: now - t0, changed: changed, busy: busy, images: shown.length}); }
      else if (now > limit) reject(new Error('no finished run with changed images within 60 s'));
      else requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  });
}
"""


# Installed before a page loads: notes when each websocket message arrives after the last input
# event (and its size), and when the page sends; with window.__keep, the payloads too.
MESSAGES_JS = """
(() => {
  window.__msgs = []; window.__payloads = []; window.__t0 = null;
  const mark = e => { window.__t0 = e.timeStamp; window.__msgs = []; window.__payloads = []; };
  window.addEventListener('pointerup', mark, {capture: true});
  window.addEventListener('keydown', mark, {capture: true});
  const Native = window.WebSocket;
  class Noted extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', e => {
        if (window.__t0 === null) return;
        window.__msgs.push(['recv', performance.now() - window.__t0, e.data.byteLength || 0]);
        if (window.__keep && e.data instanceof ArrayBuffer) {
          let text = ''; for (const b of new Uint8Array(e.data)) text += String.fromCharCode(b);
          window.__payloads.push(btoa(text));
        }
      });
    }
    send(data) {
      if (window.__t0 !== null) window.__msgs.push(['send', performance.now() - window.__t0, data.byteLength || 0]);
      return super.send(data);
    }
  }
  window.WebSocket = Noted;
})();
"""


def settle(page, quiet_ms: int = 300, timeout_s: float = 60.0) -> None:
    """Until the script run is over and stays over for `quiet_ms` (untimed)."""
    page.wait_for_function(
        """q => { const a = document.querySelector('[data-testid=stApp]');
                  const ok = a && a.dataset.testScriptState === 'notRunning'
                    && a.dataset.testConnectionState === 'CONNECTED';
                  if (!ok) { window.__q = null; return false; }
                  window.__q = window.__q || performance.now();
                  return performance.now() - window.__q >= q; }""",
        arg=quiet_ms, polling=50, timeout=timeout_s * 1000)


class Side:
    """One page in its own browser context: an app page or a floor page."""

    def __init__(self, browser, url: str, name: str):
        self.name, self.url, self.ms, self.images, self.detail = name, url, [], 0, []
        self.messages: list[list] = []   # per timed interaction: [("send"|"recv", ms after the input, bytes)]
        self.labels: list[str] = []      # the ForwardMsg types of one untimed interaction's messages, in order
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(MESSAGES_JS)
        self.page = context.new_page()
        self.page.set_default_timeout(60_000)
        self.load()

    def load(self) -> None:
        self.page.goto(self.url)
        self.page.wait_for_selector("[data-testid=stMain] [data-testid=stElementContainer]")
        settle(self.page, 500)

    def measure(self, act) -> None:
        """`act(page)` under the armed measure; records its time."""
        self.page.bring_to_front()
        self.page.evaluate("window.__q = null")
        self.page.evaluate(ARM_JS, IMAGES)
        act(self.page)
        result = self.page.evaluate("window.__floorDone")
        self.ms.append(result["ms"])
        self.images = result["images"]
        self.detail.append((result["changed"], result["busy"]))
        self.messages.append(self.page.evaluate("window.__msgs"))
        settle(self.page)

    def label_messages(self, act) -> None:
        """One more interaction, untimed, whose messages are kept and decoded: `labels`."""
        self.page.evaluate("window.__keep = true")
        self.measure(act)
        self.page.evaluate("window.__keep = false")
        for record in (self.ms, self.detail, self.messages):
            record.pop()
        self.labels = [message_type(base64.b64decode(p)) for p in self.page.evaluate("window.__payloads")]


def stroke(page, points, steps: int = 8) -> None:
    box = page.locator(CANVAS).bounding_box()
    at = lambda fx, fy: (box["x"] + fx * box["width"], box["y"] + fy * box["height"])  # noqa: E731
    page.mouse.move(*at(*points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*at(*point), steps=steps)
    page.mouse.up()


def slider(page):
    """The noise level slider (an <input type=range>)."""
    return page.locator("[data-testid=stSlider]").filter(has_text="Noise level").get_by_role("slider").first


def slider_step(key: str):
    def act(page):
        slider(page).focus()
        page.keyboard.press(key)
    return act


def alternate(pair: tuple[Side, Side], act, i: int) -> None:
    """The same interaction on both sides, the app first on even rounds, the floor on odd."""
    for side in (pair if i % 2 == 0 else pair[::-1]):
        side.measure(act)


def message_type(payload: bytes) -> str:
    """A ForwardMsg's type, and for a delta what it adds (an element's kind, or a block)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    msg = ForwardMsg.FromString(payload)
    kind = msg.WhichOneof("type")
    if kind == "delta":
        delta = msg.delta.WhichOneof("type")
        return msg.delta.new_element.WhichOneof("type") if delta == "new_element" else delta
    return kind


def timeline(side: Side) -> str:
    """Median arrival of each message after the input (ms), over the timed interactions whose
    message count matches the labelled one: 'send 14 · new_session 20 (0.8 kB) · …'."""
    runs = [[m for m in ms if m[0] == "recv"] for ms in side.messages]
    runs = [r for r in runs if len(r) == len(side.labels)]
    sends = [next((m[1] for m in ms if m[0] == "send"), math.nan) for ms in side.messages]
    if not runs:
        return f"send {statistics.median(sends):.0f} · (no run with the labelled messages)"
    parts = [f"send {statistics.median(sends):.0f}"]
    for i, label in enumerate(side.labels):
        size = statistics.median(r[i][2] for r in runs)
        parts.append(f"{label} {statistics.median(r[i][1] for r in runs):.0f}"
                     + (f" ({size / 1000:.1f} kB)" if size >= 1000 else ""))
    parts.append(f"done {statistics.median(side.ms):.0f}")
    return " · ".join(parts) + f" ({len(runs)} of {len(side.messages)} runs)"


def warm_up(pair, act) -> None:
    """One untimed interaction per side: a fresh server loads models and scripts on its first."""
    for side in pair:
        side.measure(act)
        for record in (side.ms, side.detail, side.messages):
            record.pop()


def rss_mb(server) -> float:
    """The server process's resident memory (Linux), MB."""
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_draw(pair, samples: int, after_round=lambda: None) -> None:
    for side in pair:
        side.page.locator(CANVAS).wait_for()
    for i in range(samples):
        if i % len(DIGIT) == 0:   # a fresh canvas for the next digit (untimed)
            for side in pair:
                side.load()
                side.page.locator(CANVAS).wait_for()
        alternate(pair, lambda page, s=DIGIT[i % len(DIGIT)]: stroke(page, s), i)
        after_round()


def run_denoise(pair, samples: int, after_round=lambda: None) -> None:
    for side in pair:
        slider(side.page).wait_for()
    for i in range(samples):   # 4 steps right, 4 left: stays inside the slider's range
        alternate(pair, slider_step("ArrowRight" if (i // 4) % 2 == 0 else "ArrowLeft"), i)
        after_round()


def stats(ms: list[float]) -> tuple[float, float]:
    ordered = sorted(ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


def measure(samples: int, log_dir: Path) -> dict:
    """{interaction: (app Side, floor Side)} after `samples` alternating rounds each."""
    from .latency import launch_browser
    with ExitStack() as stack:
        servers = {name: StreamlitServer(app=app, log_path=log_dir / f"{name}.log") for name, app in (
            ("app", REPO_ROOT / "app.py"), ("floor_a", FLOOR_PAGES / "draw_floor.py"),
            ("floor_b", FLOOR_PAGES / "denoise_floor.py"))}
        for server in servers.values():   # from this thread: a server dies with the thread that started it
            stack.enter_context(server)
        browser, why = launch_browser(stack)
        if browser is None:
            raise RuntimeError(f"the floor bench needs a real browser: {why}")
        draw = (Side(browser, servers["app"].url + "/Draw", "Draw page"),
                Side(browser, servers["floor_a"].url, "floor (a)"))
        denoise = (Side(browser, servers["app"].url + "/Denoise", "Denoise page"),
                   Side(browser, servers["floor_b"].url, "floor (b)"))
        warm_up(draw, lambda page: stroke(page, DIGIT[0]))
        warm_up(denoise, slider_step("ArrowLeft"))
        warm_up(denoise, slider_step("ArrowRight"))
        rss = [rss_mb(servers["app"])]   # then after every round: is memory flat over many reruns?
        run_draw(draw, samples, lambda: rss.append(rss_mb(servers["app"])))
        run_denoise(denoise, samples, lambda: rss.append(rss_mb(servers["app"])))
        for side in draw:
            side.label_messages(lambda page: stroke(page, DIGIT[samples % len(DIGIT)]))
        for side in denoise:
            side.label_messages(slider_step("ArrowRight"))
        return {"a stroke on Draw": draw, "a slider step on Denoise": denoise}, rss


def samples_of(results: dict) -> int:
    return sum(len(app.ms) for app, _ in results.values())


def table(results: dict, quick: bool, load_before: float, rss: list[float]) -> Table:
    t = Table("Draw and Denoise against the stack's floor" + (" (quick)" if quick else ""),
              ["interaction", "page", "samples", "images", "median ms", "p90 ms", "median ratio page/floor", "goal",
               "first change ms", "browser long tasks ms"],
              formats={"median ms": ".0f", "p90 ms": ".0f", "median ratio page/floor": ".2f",
                       "first change ms": ".0f", "browser long tasks ms": ".0f"})
    heads = []
    for interaction, (app, floor) in results.items():
        (am, ap), (fm, fp) = stats(app.ms), stats(floor.ms)
        for side, median, p90, ratio, goal in ((app, am, ap, am / fm, f"≤ {TARGET_RATIO:g}"),
                                               (floor, fm, fp, 1.0, "")):
            changed, busy = (statistics.median(v) for v in zip(*side.detail))
            t.add(interaction, side.name, len(side.ms), side.images, median, p90, ratio, goal, changed, busy)
        heads.append(f"{interaction} {am:.0f} ms vs {fm:.0f} ms on its floor ({am / fm:.2f}×, goal ≤ {TARGET_RATIO:g}×)")
    t.headline = "Floor: " + "; ".join(heads) + "."
    t.notes += [
        "Real Chromium, three real `streamlit run` servers on this machine (the app, floor (a): "
        "bench/floor_pages/draw_floor.py, floor (b): denoise_floor.py). Each round does the same "
        "interaction on the page and on its floor, alternating which goes first. Time: from the input "
        "event (mouse-up, key press) to the first animation frame where the script run is over and the "
        "page's images changed and loaded, measured in the page (first change: the first frame where an "
        "image's address changed; long tasks: the browser's main-thread tasks over 50 ms in that time, "
        "medians). Strokes: three per digit, then both pages reload; "
        "slider: four steps right, four left, from the default level.",
        f"The app server's memory (RSS): {rss[0]:.0f} MB after a first stroke and slider step, "
        f"{rss[-1]:.0f} MB after the {samples_of(results)} timed reruns (a new session on the Draw page "
        f"every {len(DIGIT)} strokes), at most {max(rss):.0f} MB in between.",
        f"Load average before the run: {load_before:.2f} (1 min), on {os.cpu_count()} cores."]
    return t


def messages_table(results: dict) -> Table:
    """Where the time goes: each websocket message's median arrival after the input."""
    t = Table("Where the time goes: the page's websocket messages after the input",
              ["interaction", "page", "median ms after the input: send (the page asks for a rerun), "
               "then each message the server sends, then done"])
    for interaction, pair in results.items():
        for side in pair:
            t.add(interaction, side.name, timeline(side))
    t.notes.append("Times in the page, from the input event; each message is labelled with its Streamlit "
                   "ForwardMsg type (a delta by what it adds: an element's kind, add_block for a container) "
                   "from one more, untimed interaction; the medians are over the timed ones with as many "
                   "messages. Between two messages lies the server's work and its send loop (Streamlit "
                   "flushes its queue, then waits 5 ms).")
    return t


def run(quick: bool = False, samples: int | None = None, raw: bool = False) -> list[Table]:
    samples = samples or (2 if quick else 24)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="aecore-floor-") as logs:
        results, rss = measure(samples, Path(logs))
    if raw:
        for app, floor in results.values():
            for side in (app, floor):
                print(f"{side.name}: " + " ".join(f"{ms:.0f}" for ms in side.ms))
    return [table(results, quick, load_before, rss), messages_table(results)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 samples per side: a smoke test")
    p.add_argument("--samples", type=int, help="rounds per interaction (default 24, 2 with --quick)")
    p.add_argument("--raw", action="store_true", help="also print every sample, in order")
    args = p.parse_args(argv)
    if args.samples is not None and args.samples < 1:
        p.error("--samples must be at least 1")
    started = time.perf_counter()
    for item in run(args.quick, args.samples, raw=args.raw):
        print(item.markdown(figures=False))
    print(f"[floor: {time.perf_counter() - started:.0f} s]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
