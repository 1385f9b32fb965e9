"""Capacity without browsers: Locust users, each ONE websocket speaking Streamlit's protocol
(bench/capacity/protocol.py), against a real `streamlit run app.py` on 127.0.0.1.

Each simulated session opens the Draw page, sends canvas strokes (a different drawing each
time, Clear every 4 strokes, as bench/load.py's browsers do), opens the Denoise page and moves
the noise-level slider, pausing `--think` seconds (±20%) between inputs like a person; then it
leaves. A round trip is the time from sending the rerun request until the server's
`script_finished`, reported to Locust as a request event (type WS, names "stroke", "slider",
"open Draw", ...). Meanwhile one more session trains on the Train page, started through the
protocol (Epochs + "Start training") and kept alive by the page's own fragment polls.

For each N of `--sessions` (a ladder) and each postScriptGC setting of `--gc` (alternating,
servers side by side): p50/p95 of strokes and slider steps, errors, the server's RSS
(before, peak, after the sessions left) and the peak's growth per session. "Sessions held":
the largest N with stroke and slider p95 ≤ 0.5 s and no error. At the end, the RSS once the
left sessions' state is gone (after `server.disconnectedSessionTTL`, set to `--session-ttl`).
Then forged messages (bench/capacity/forged.py) while sessions draw.

    python -m bench.capacity                          # ladder 5 10 20 30 40, postScriptGC on and off
    python -m bench.capacity --sessions 10 30 --gc off --json out.json
    python -m bench.capacity --quick                  # 3 sessions, forged messages: < 60 s (the test)

Bounded: every session makes at most `--strokes` + `--moves` inputs, every input waits at most
`--timeout` s, every ladder step at most `--step-seconds` s; only 127.0.0.1 is contacted.
Locust runs inside this process (gevent); start it as `python -m bench.capacity`, which
imports Locust first."""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import random
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gevent
import gevent.event
import numpy as np
import psutil
from locust import User, task
from locust.env import Environment
from locust.exception import StopUser
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench.capacity import forged
from bench.capacity.protocol import ProtocolError, Session, drawing_sequences
from bench.server import ServerLogs, StreamlitServer

ROOT = Path(__file__).resolve().parents[2]
P95_TARGET_S = 0.5
CLEAR_EVERY = 4
TRAIN_EPOCHS = 500              # stopped when the step ends
TRAIN_START_TIMEOUT_S = 120.0
GC_ENV = "STREAMLIT_RUNNER_POST_SCRIPT_GC"
TTL_ENV = "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL"
INTERACTIONS = ("stroke", "slider")


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (a value that occurred), as bench/load.py."""
    return float(np.percentile(values, q, method="inverted_cdf")) if values else None


# --------------------------------------------------------------------------- one step's record

@dataclass
class Step:
    sessions: int
    gc: str
    samples: dict = field(default_factory=dict)      # request name -> [seconds]
    fragment_runs: dict = field(default_factory=dict)  # request name -> runs of one fragment only
    errors: list = field(default_factory=list)
    sessions_done: int = 0
    rss_mb: dict = field(default_factory=dict)       # before / peak / after
    children_rss_mb: float = 0.0                     # worker processes (a training job), at the peak
    metrics_after: dict = field(default_factory=dict)  # /_stcore/metrics once the sessions left
    training: dict = field(default_factory=dict)
    seconds: float = 0.0
    load_before: float = 0.0

    def add(self, name, seconds, error=None):
        if error is None:
            self.samples.setdefault(name, []).append(seconds)
        else:
            self.errors.append(f"{name}: {error}")

    def interactions(self) -> list[float]:
        return [s for n in INTERACTIONS for s in self.samples.get(n, [])]

    def p(self, name: str | None, q: float) -> float | None:
        values = self.interactions() if name is None else self.samples.get(name, [])
        return percentile(values, q)

    def held(self) -> bool:
        return (not self.errors and all(self.samples.get(n) for n in INTERACTIONS)
                and all(self.p(n, 95) <= P95_TARGET_S for n in INTERACTIONS))

    def summary(self) -> dict:
        return {name: {"count": len(v), "fragment_runs": self.fragment_runs.get(name, 0),
                       "p50_s": percentile(v, 50), "p95_s": percentile(v, 95), "max_s": max(v)}
                for name, v in self.samples.items() if v}


# --------------------------------------------------------------------------- the server

class Server:
    """A real `streamlit run app.py` (bench/server.py) with postScriptGC set, and its RSS."""

    def __init__(self, gc: str, ttl_s: int, log_dir: Path):
        self.gc, self.ttl_s = gc, ttl_s
        self.server = StreamlitServer(app=ROOT / "app.py", log_path=log_dir / f"server-gc-{gc}.log")
        self.log_offset = 0

    def start(self) -> "Server":
        saved = {k: os.environ.get(k) for k in (GC_ENV, TTL_ENV)}
        try:   # Streamlit reads STREAMLIT_<SECTION>_<OPTION>; "config" keeps .streamlit/config.toml's value
            if self.gc != "config":
                os.environ[GC_ENV] = "true" if self.gc == "on" else "false"
            os.environ[TTL_ENV] = str(self.ttl_s)
            self.server.start()
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        self.proc = psutil.Process(self.server.proc.pid)
        return self

    @property
    def port(self) -> int:
        return self.server.port

    def rss_mb(self) -> float:
        return self.proc.memory_info().rss / 2**20

    def children_rss_mb(self) -> float:
        total = 0
        for child in self.proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20

    def metrics(self) -> dict:
        """Streamlit's own counters (/_stcore/metrics): sessions connected, the bytes it counts in
        session state (sessions kept for reconnection included) and in its in-memory media store."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(f"{self.server.url}/_stcore/metrics", headers={"Accept": "text/plain"})
        with opener.open(req, timeout=30) as r:
            text = r.read(1_000_000).decode(errors="replace")
        out = {"active_sessions": 0, "session_state_bytes": 0, "media_bytes": 0}
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == "active_sessions":
                out["active_sessions"] = int(float(value))
            elif name.startswith("cache_memory_bytes{") and 'cache_type="st_session_state"' in name:
                out["session_state_bytes"] += int(float(value))
            elif name.startswith("cache_memory_bytes{") and 'cache_type="st_memory_media_file_storage"' in name:
                out["media_bytes"] += int(float(value))
        return out

    def new_log_errors(self) -> list[str]:
        text = self.server.log_path.read_text(errors="replace")
        new, self.log_offset = text[self.log_offset:], len(text)
        return [f"server log: {line.strip()}"[:300] for line in new.splitlines()
                if "Traceback" in line or " ERROR " in line][:10]

    def skip_log(self) -> None:
        self.log_offset = len(self.server.log_path.read_text(errors="replace"))

    def stop(self) -> None:
        self.server.stop()


# --------------------------------------------------------------------------- the Locust users

class DrawingUser(User):
    """One person: Draw (strokes, Clear), then Denoise (slider steps), then leaves."""
    abstract = True   # made concrete per step by `drawing_user_class`

    port: int = 0
    plan: dict = {}
    drawings: list = []
    step: Step | None = None
    done: list = []

    def fire(self, name: str, start: float, run=None, error: Exception | str | None = None) -> None:
        seconds = run.seconds if run is not None else time.perf_counter() - start
        if error is None and run is not None and run.exceptions:
            error = f"exception on the page: {run.exceptions[0]}"
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=seconds * 1000,
            response_length=run.bytes_received if run is not None else 0,
            exception=None if error is None else RuntimeError(str(error)), context={})
        self.step.add(name, seconds, None if error is None else str(error)[:300])
        if run is not None and run.status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
            self.step.fragment_runs[name] = self.step.fragment_runs.get(name, 0) + 1
        if error is not None:
            raise StopUser()

    def interact(self, name: str, **rerun) -> object:
        start = time.perf_counter()
        try:
            run = self.session.rerun(**rerun)
        except (ProtocolError, OSError) as e:
            self.fire(name, start, error=e)
        self.fire(name, start, run)
        return run

    def think(self) -> None:
        gevent.sleep(self.plan["think"] * self.rng.uniform(0.8, 1.2))

    @task
    def visit(self) -> None:
        self.index = next(self.counter)
        self.rng = random.Random(self.index)
        try:
            start = time.perf_counter()
            try:
                self.session = Session(self.port, timeout_s=self.plan["timeout"])
            except Exception as e:  # noqa: BLE001 - a refused connection is a load failure
                self.fire("connect", start, error=f"{type(e).__name__}: {e}")
            self.draw()
            self.denoise()
            self.done.append(self.index)
        finally:
            session = getattr(self, "session", None)
            if session is not None:
                session.close()
        raise StopUser()

    def draw(self) -> None:
        run = self.interact("open Draw", page="Draw")
        canvas = run.widget("bidi_component", contains="drawable_canvas")
        if canvas is None:
            self.fire("open Draw", 0, run, error="no canvas on the Draw page")
        drawing = self.drawings[self.index % len(self.drawings)]
        for i in range(self.plan["strokes"]):
            self.think()
            k = i % CLEAR_EVERY
            if i and k == 0:   # Clear: the canvas gets a new key (a new, empty canvas)
                clear = run.widget("button", "Clear")
                run = self.interact("Clear", widgets={canvas.id: {"json_value": drawing[-1]},
                                                      clear.id: {"trigger_value": True}}, fragment_id=clear.fragment)
                canvas = run.widget("bidi_component", contains="drawable_canvas")
                drawing = self.drawings[(self.index + i) % len(self.drawings)]
                self.think()
            run = self.interact("stroke", widgets={canvas.id: {"json_value": drawing[k]}}, fragment_id=canvas.fragment)

    def denoise(self) -> None:
        if not self.plan["moves"]:
            return
        self.think()
        run = self.interact("open Denoise", page="Denoise")
        slider = run.widget("slider", "Noise level")
        if slider is None:
            self.fire("open Denoise", 0, run, error="no noise-level slider on the Denoise page")
        value, step = slider.proto.default[0], slider.proto.step
        for j in range(self.plan["moves"]):
            self.think()
            value = round(value + (step if j % 2 == 0 else -step), 6)
            self.interact("slider", widgets={slider.id: {"double_array_value": [value]}}, fragment_id=slider.fragment)


def drawing_user_class(port: int, plan: dict, drawings: list, step: Step) -> type:
    return type("DrawingSession", (DrawingUser,), {"abstract": False, "port": port, "plan": plan,
                                                   "drawings": drawings, "step": step, "done": [],
                                                   "counter": itertools.count()})


# --------------------------------------------------------------------------- the training

class Trainer:
    """One session that starts a training on the Train page and keeps the page open (its
    fragment polls, sent as the browser does) until stopped; it presses Stop at the end."""

    def __init__(self, port: int, timeout_s: float):
        self.port, self.timeout_s = port, timeout_s
        self.info: dict = {}
        self.errors: list[str] = []
        self.polls: list[float] = []
        self._stop = gevent.event.Event()
        self._greenlet = None

    def start(self) -> None:
        self.session = Session(self.port, timeout_s=self.timeout_s, fetch_media=False)
        run = self.session.rerun(page="Train")
        epochs, start = run.widget("number_input", "Epochs"), run.widget("button", "Start training")
        if epochs is None or start is None:
            raise ProtocolError("the Train page shows no Epochs input or no Start training button")
        self.state = {epochs.id: {"int_value": TRAIN_EPOCHS}}
        run = self.session.rerun({**self.state, start.id: {"trigger_value": True}})
        deadline = time.monotonic() + TRAIN_START_TIMEOUT_S
        while run.widget("button", contains="Stop") is None or not self._progress(run):
            if run.exceptions or run.errors_shown:
                raise ProtocolError(f"the training did not start: {(run.exceptions + run.errors_shown)[0]}")
            if time.monotonic() > deadline:
                raise ProtocolError(f"no training progress within {TRAIN_START_TIMEOUT_S:g} s")
            run = self._poll(run)
        self.info["started"] = True
        self.last = run
        self._greenlet = gevent.spawn(self._keep_polling)

    @staticmethod
    def _progress(run) -> str | None:
        """The job's progress line ("... images/s · elapsed ..."), not the expected-time caption."""
        return next((t for t in run.texts if "images/s" in t and "elapsed" in t), None)

    def _poll(self, run):
        interval, fragment = run.auto_rerun or (1.0, None)
        gevent.sleep(interval)
        return self.session.rerun(self.state, fragment_id=fragment, auto=True)

    def _keep_polling(self) -> None:
        run = self.last
        for _ in range(100_000):   # bounded; the step's own deadline ends it long before
            if self._stop.is_set():
                break
            try:
                run = self._poll(run)
            except ProtocolError as e:
                self.errors.append(f"trainer: {e}")
                return
            self.polls.append(run.seconds)
            if run.exceptions:
                self.errors.append(f"trainer: exception on the page: {run.exceptions[0]}")
            self.last = run

    def stop(self) -> dict:
        self._stop.set()
        if self._greenlet is not None:
            self._greenlet.join(timeout=self.timeout_s)
        self.info["progress_at_end"] = " ".join((self._progress(self.last) or "").split())[:200]
        try:   # a fragment run re-sends only the fragment: the whole page shows whether Stop is there
            run = self.session.rerun(self.state)
            stop = run.widget("button", contains="Stop")
            self.info["running_at_end"] = stop is not None
            if stop is not None:
                self.session.rerun({**self.state, stop.id: {"trigger_value": True}})
        except ProtocolError as e:
            self.errors.append(f"trainer: Stop: {e}")
        self.session.close()
        self.info["polls"] = len(self.polls)
        self.info["poll_p95_s"] = percentile(self.polls, 95)
        return self.info


# --------------------------------------------------------------------------- a ladder step

def rss_sampler(server: Server, out: dict, stop: gevent.event.Event, every_s: float = 0.5) -> None:
    peak, children = 0.0, 0.0
    while not stop.is_set():
        try:
            rss = server.rss_mb()
            if rss > peak:
                peak, children = rss, server.children_rss_mb()
        except psutil.Error:
            break
        stop.wait(every_s)
    out["peak"], out["children"] = round(peak, 1), round(children, 1)


def run_step(server: Server, n: int, plan: dict, drawings: list, train: bool,
             until: gevent.event.Event | None = None) -> Step:
    """N drawing sessions (Locust) on `server`, with one training if `train`; ends when every
    session has left, at `plan["step_seconds"]` (an error) or when `until` is set."""
    step = Step(n, server.gc, load_before=round(os.getloadavg()[0], 2))
    began = time.perf_counter()
    server.skip_log()
    trainer = None
    if train:
        trainer = Trainer(server.port, plan["timeout"])
        try:
            trainer.start()
        except (ProtocolError, OSError) as e:
            step.errors.append(f"trainer: {e}")
            trainer = None
    step.rss_mb["before"] = round(server.rss_mb(), 1)
    user = drawing_user_class(server.port, plan, drawings, step)
    env = Environment(user_classes=[user], host=f"http://127.0.0.1:{server.port}")
    runner = env.create_local_runner()
    peak, stop_sampling = {}, gevent.event.Event()
    sampler = gevent.spawn(rss_sampler, server, peak, stop_sampling)
    runner.start(n, spawn_rate=plan["spawn_rate"])
    deadline = time.monotonic() + plan["step_seconds"]
    gevent.sleep(0.5)
    while time.monotonic() < deadline and runner.user_count > 0 and not (until and until.is_set()):
        gevent.sleep(0.25)
    if runner.user_count > 0 and not (until and until.is_set()):
        step.errors.append(f"{runner.user_count} session(s) still running after {plan['step_seconds']:g} s: stopped")
    runner.quit()
    step.sessions_done = len(user.done)
    if trainer is not None:
        step.training = trainer.stop()
        step.errors += trainer.errors
        if not step.training.get("running_at_end"):
            step.errors.append("trainer: the training was no longer running at the end of the step")
    stop_sampling.set()
    sampler.join()
    gevent.sleep(2.0)
    step.rss_mb.update(peak=peak.get("peak"), after=round(server.rss_mb(), 1))
    step.metrics_after = server.metrics()
    step.children_rss_mb = peak.get("children", 0.0)
    step.errors += server.new_log_errors()
    step.seconds = round(time.perf_counter() - began, 1)
    return step


def warm_up(server: Server, drawings: list, timeout_s: float) -> None:
    """One visit to Draw and Denoise: first imports and model loads are not load."""
    s = Session(server.port, timeout_s=max(timeout_s, 120))
    try:
        run = s.rerun(page="Draw")
        canvas = run.widget("bidi_component", contains="drawable_canvas")
        s.rerun({canvas.id: {"json_value": drawings[0][0]}})
        run = s.rerun(page="Denoise")
        slider = run.widget("slider", "Noise level")
        s.rerun({slider.id: {"double_array_value": [slider.proto.default[0] + slider.proto.step]}})
    finally:
        s.close()


def released(server: Server) -> dict:
    """RSS and Streamlit's counters once the sessions that left are gone: after
    server.disconnectedSessionTTL, a probe session connects and leaves (storing a session
    evicts expired ones), then a moment."""
    gevent.sleep(server.ttl_s + 1)
    s = Session(server.port, timeout_s=60, fetch_media=False)
    s.rerun()   # the main page
    s.close()
    gevent.sleep(1.5)
    return {"rss_released": round(server.rss_mb(), 1), "metrics_released": server.metrics()}


# --------------------------------------------------------------------------- output

def _ms(seconds) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f}"


def markdown(result: dict) -> str:
    steps = [Step(**{k: v for k, v in s.items() if k in Step.__dataclass_fields__}) for s in result["steps"]]
    lines = ["| sessions (+1 training) | postScriptGC | stroke p50 ms | stroke p95 ms | slider p50 ms | slider p95 ms "
             "| inputs | errors | server RSS before / peak / after MB | MB per session | load avg before |",
             "|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in steps:
        rss = s.rss_mb
        per = (rss["peak"] - rss["before"]) / s.sessions if rss.get("peak") and rss.get("before") else None
        lines.append(f"| {s.sessions} | {s.gc} | {_ms(s.p('stroke', 50))} | {_ms(s.p('stroke', 95))} "
                     f"| {_ms(s.p('slider', 50))} | {_ms(s.p('slider', 95))} | {len(s.interactions())} "
                     f"| {len(s.errors)} | {rss.get('before')} / {rss.get('peak')} / {rss.get('after')} "
                     f"| {'—' if per is None else f'{per:.1f}'} | {s.load_before} |")
    lines.append("")
    for gc, info in result["servers"].items():
        held = [s.sessions for s in steps if s.gc == gc and s.held()]
        lines.append(f"- postScriptGC {gc}: sessions held (stroke and slider p95 ≤ {P95_TARGET_S * 1000:.0f} ms, "
                     f"no error, one training running): **{max(held) if held else 'none'}** of "
                     f"{', '.join(str(s.sessions) for s in steps if s.gc == gc)}; server RSS after warm-up "
                     f"{info['rss_warm']} MB, after every session left and its state expired "
                     f"({info['ttl_s']} s TTL) {info.get('rss_released', '—')} MB; then Streamlit counts "
                     f"{info.get('metrics_released', {}).get('active_sessions', '—')} sessions, "
                     f"{info.get('metrics_released', {}).get('session_state_bytes', '—')} bytes of session state "
                     f"and {info.get('metrics_released', {}).get('media_bytes', 0) / 1e3:.0f} kB of media "
                     f"(after warm-up: {info['metrics_warm']['media_bytes'] / 1e3:.0f} kB).")
    for s in steps:
        t = s.training
        if t:
            lines.append(f"- {s.sessions} sessions, postScriptGC {s.gc}: training {t.get('progress_at_end') or '—'} "
                         f"(Train page polls: {t.get('polls')}, p95 {_ms(t.get('poll_p95_s'))} ms)")
        lines += [f"- {s.sessions} sessions, postScriptGC {s.gc}: error: {e}" for e in s.errors[:10]]
    if result.get("forged"):
        lines += ["", forged.markdown(result["forged"])]
    lines.append("")
    lines.append(f"{os.cpu_count()} cores; load generator (Locust {result['locust']}, one process, "
                 f"{result.get('generator_cpu_s', '—')} CPU-s in {result.get('wall_s', '—')} s) on the same "
                 f"machine; think time {result['args']['think']} s ±20%; {result['args']['strokes']} strokes "
                 f"and {result['args']['moves']} slider steps per session.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, nargs="+", default=[5, 10, 20, 30, 40], help="concurrent sessions (ladder)")
    p.add_argument("--gc", nargs="+", choices=["on", "off", "config"], default=["on", "off"],
                   help="Streamlit's runner.postScriptGC per server: on, off, or what .streamlit/config.toml says "
                        "(config); several: servers side by side, steps alternate")
    p.add_argument("--strokes", type=int, default=8, help="canvas strokes per session (at most)")
    p.add_argument("--moves", type=int, default=4, help="Denoise slider steps per session (at most)")
    p.add_argument("--think", type=float, default=1.0, help="seconds between a person's inputs (±20%%)")
    p.add_argument("--spawn-rate", type=float, default=10.0, help="sessions started per second")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds one input may take before it is an error")
    p.add_argument("--step-seconds", type=float, default=240.0, help="the most one ladder step may take")
    p.add_argument("--session-ttl", type=int, default=5,
                   help="server.disconnectedSessionTTL for the bench's servers (Streamlit's default: 120 s)")
    p.add_argument("--no-train", action="store_true", help="no training during the steps")
    p.add_argument("--no-forged", action="store_true", help="skip the forged messages")
    p.add_argument("--quick", action="store_true", help="3 sessions, 3 strokes, 2 slider steps, forged messages, "
                   "postScriptGC as configured: < 60 s (the test suite)")
    p.add_argument("--json", help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.sessions, args.gc, args.strokes, args.moves, args.think = [3], ["config"], 3, 2, 0.3
        args.session_ttl = min(args.session_ttl, 2)
        args.step_seconds = min(args.step_seconds, 90.0)
    if min(args.sessions) < 1 or args.strokes < 1 or args.moves < 0 or args.think < 0 or args.timeout <= 0:
        p.error("--sessions and --strokes must be at least 1, --moves and --think at least 0")
    args.gc = list(dict.fromkeys(args.gc))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("locust").setLevel(logging.WARNING)
    import locust
    plan = {"strokes": args.strokes, "moves": args.moves, "think": args.think, "timeout": args.timeout,
            "spawn_rate": args.spawn_rate, "step_seconds": args.step_seconds}
    drawings = drawing_sequences(24, CLEAR_EVERY)
    with ServerLogs("aecore-capacity-") as logs:
        log_dir = logs.path
        result = {"args": {k: v for k, v in vars(args).items() if k != "json"}, "cores": os.cpu_count(),
                  "locust": locust.__version__, "servers": {}, "steps": [], "forged": None}
        servers, began = [], time.monotonic()
        try:
            for gc in args.gc:
                server = Server(gc, args.session_ttl, log_dir).start()
                servers.append(server)
                warm_up(server, drawings, args.timeout)
                result["servers"][gc] = {"rss_warm": round(server.rss_mb(), 1), "ttl_s": args.session_ttl,
                                         "startup_s": round(server.server.startup_s, 1),
                                         "metrics_warm": server.metrics()}
            for n in args.sessions:
                for server in servers:
                    step = run_step(server, n, plan, drawings, train=not args.no_train)
                    result["steps"].append({**asdict(step), "summary": step.summary(), "held": step.held()})
                    print(f"[{n} sessions, postScriptGC {server.gc}: stroke p95 {_ms(step.p('stroke', 95))} ms, "
                          f"slider p95 {_ms(step.p('slider', 95))} ms, errors {len(step.errors)}, "
                          f"RSS {step.rss_mb}, {step.seconds} s]", file=sys.stderr, flush=True)
            if not args.no_forged:
                result["forged"] = forged.run(servers[0], plan, drawings)
                print(f"[forged messages: {len(result['forged']['cases'])} sent, "
                      f"errors {len(result['forged']['errors'])}]", file=sys.stderr, flush=True)
            for server in servers:
                result["servers"][server.gc].update(released(server))
        finally:
            for server in servers:
                server.stop()
        cpu = psutil.Process().cpu_times()
        result["generator_cpu_s"] = round(cpu.user + cpu.system, 1)   # this process: Locust and its sessions
        result["wall_s"] = round(time.monotonic() - began, 1)
        result["errors"] = sum(len(s["errors"]) for s in result["steps"]) + (
            len(result["forged"]["errors"]) if result["forged"] else 0)
        logs.keep = bool(result["errors"])
        result["log_dir"] = str(log_dir) if logs.keep else None   # removed after a clean run
        print(markdown(result))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 1 if result["errors"] else 0
