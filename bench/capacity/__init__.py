"""Capacity: many Streamlit sessions without a browser each, driven by Locust.

`python -m bench.capacity` (see bench/capacity/load.py) runs the load in its own process,
because Locust patches the standard library for gevent on import; `run(quick)` below is the
`python -m bench --only capacity` section: it starts that command and turns its JSON into
tables. Nothing here imports Locust.

How the protocol was learnt: a Playwright websocket listener on real Chromium drawing on the
Draw page and moving the Denoise slider recorded the BackMsgs the frontend sends (see
protocol.py): a `rerun_script` with `page_name` on the first load, `page_script_hash`
afterwards, and every widget's state; the canvas (streamlit-drawable-canvas 0.13, a
components-v2 widget) sends `json_value` = {"drawing": {"raw": <Fabric JSON>, "data":
"data:image/png;base64,..."}}, the noise slider `double_array_value`, buttons `trigger_value`."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(quick: bool = False) -> list:
    """The section for bench/run.py: the ladder (or --quick) in a child process, as tables."""
    from bench.common import Table

    with tempfile.TemporaryDirectory(prefix="aecore-capacity-") as folder:
        out = Path(folder) / "capacity.json"
        cmd = [sys.executable, "-m", "bench.capacity", "--json", str(out)] + (["--quick"] if quick else [])
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300 if quick else 3600)
        if not out.exists():
            raise RuntimeError(f"bench.capacity wrote no results (exit {proc.returncode}): {proc.stderr[-2000:]}")
        result = json.loads(out.read_text())
    return tables(result, Table)


def tables(result: dict, Table) -> list:
    ladder = Table("Capacity: concurrent sessions (Locust over Streamlit's websocket protocol, one training "
                   "running)",
                   ["sessions", "postScriptGC", "stroke p50 ms", "stroke p95 ms", "slider p50 ms", "slider p95 ms",
                    "inputs", "errors", "RSS before MB", "RSS peak MB", "RSS after MB", "MB per session"],
                   formats={c: ".0f" for c in ("stroke p50 ms", "stroke p95 ms", "slider p50 ms", "slider p95 ms")})
    for s in result["steps"]:
        summ, rss = s["summary"], s["rss_mb"]
        ms = lambda name, key: None if name not in summ else summ[name][key] * 1000   # noqa: E731
        per = (rss["peak"] - rss["before"]) / s["sessions"] if rss.get("peak") and rss.get("before") else None
        ladder.add(s["sessions"], s["gc"], ms("stroke", "p50_s"), ms("stroke", "p95_s"), ms("slider", "p50_s"),
                   ms("slider", "p95_s"), sum(summ[n]["count"] for n in ("stroke", "slider") if n in summ),
                   len(s["errors"]), rss.get("before"), rss.get("peak"), rss.get("after"), per)
    held = {}
    for gc, info in result["servers"].items():
        ok = [s["sessions"] for s in result["steps"] if s["gc"] == gc and s["held"]]
        held[gc] = max(ok) if ok else 0
        ladder.notes.append(f"postScriptGC {gc}: **sessions held at p95 ≤ 500 ms, no error: {held[gc] or 'none'}**; "
                            f"server RSS after warm-up {info['rss_warm']} MB, after every session left and its "
                            f"state expired ({info['ttl_s']} s TTL) {info.get('rss_released', '—')} MB, with "
                            f"{info.get('metrics_released', {}).get('active_sessions', '—')} sessions and "
                            f"{info.get('metrics_released', {}).get('session_state_bytes', '—')} bytes of session "
                            "state left (Streamlit's /_stcore/metrics).")
    args = result["args"]
    ladder.notes.append(f"Each session: one websocket, open Draw, {args['strokes']} strokes (Clear every 4), open "
                        f"Denoise, {args['moves']} slider steps, {args['think']} s ±20% between inputs; round trip = "
                        "rerun request sent → `script_finished` received. Load generator on the same cores.")
    best = max(held.values(), default=0)
    ladder.headline = f"Capacity: {best or 'no'} concurrent drawing sessions held at p95 ≤ 500 ms while a training runs."
    out = [ladder]
    if result.get("forged"):
        f = Table("Forged protocol messages (while other sessions draw)",
                  ["message", "expected", "outcome", "answered in ms", "next real stroke"],
                  formats={"answered in ms": ".0f"})
        for r in result["forged"]["cases"]:
            f.add(r["case"], r["expected"], r["outcome"] + (f" (code {r['close_code']})" if r.get("close_code") else ""),
                  r["seconds"] * 1000 if r.get("seconds") is not None else "n/a", r["next_stroke"])
        f.notes.append(f"Meanwhile {result['forged']['normal_sessions']} sessions drew "
                       f"{result['forged']['normal_strokes']} strokes; errors: {len(result['forged']['errors'])}.")
        out.append(f)
    return out
