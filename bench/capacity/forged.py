"""Forged protocol messages against a real server while other sessions draw.

A forger session sends, one after another, messages a browser never would: canvas values
that are malformed, huge or of the wrong type, widget ids that do not exist, frames over the
server's size limit and bytes that are no protobuf. Each has an expected outcome:
- "message": the Draw page's own clear message (an st.error "Cannot read the drawing: ..."),
  no exception on the page, and the same session's next real stroke works;
- "ignored": the run finishes normally, no exception, and the next real stroke works;
- "closed": the server closes that connection (Streamlit's own limits), and a new session
  works;
- "broken": Streamlit itself fails before the page runs (a json_value that is not JSON) and
  that session shows Streamlit's exception until it is reloaded; a reloaded session works.
Meanwhile `--quick`'s drawing sessions keep drawing (Locust, as in the ladder): they must see
no error. Every other outcome (an exception shown, a timeout, a server that stops answering)
is an error."""
from __future__ import annotations

import base64
import json
import os
import struct
import zlib

import gevent
import gevent.event

from bench.capacity.protocol import ConnectionClosed, ProtocolError, Session

DRAW_MESSAGE = "Cannot read the drawing"
NORMAL_SESSIONS = 3          # drawing alongside the forger
MAX_NORMAL_STROKES = 200     # their bound; they stop when the forger is done
MAX_FRAME_MB = 25            # Streamlit's server.maxWidgetStateSize default


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height pixels (no pixel data): a decompression bomb's
    header, 57 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _value(data, raw=None) -> str:
    return json.dumps({"drawing": {"raw": {"objects": [{"type": "Path"}]} if raw is None else raw, "data": data}})


def _data_url(payload: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(payload).decode("ascii")


# name -> (expected outcome, build(canvas_id) -> {widget id: value} or raw bytes)
CASES = {
    # Streamlit json.loads() a json_value before the page runs (session_state.py, unpack_widget_state_value)
    # and keeps it: that session shows Streamlit's JSONDecodeError on every rerun until it is reloaded.
    # Nothing in the page can catch it; other sessions are not affected. Recorded as "broken".
    "canvas value is not JSON": ("broken", lambda c: {c: {"json_value": "{not json"}}),
    "canvas value is a JSON list": ("ignored", lambda c: {c: {"json_value": "[1, 2, 3]"}}),
    "drawing is a string": ("message", lambda c: {c: {"json_value": json.dumps({"drawing": "x"})}}),
    "image data is a number": ("message", lambda c: {c: {"json_value": _value(42, raw=[])}}),
    "image data is not a data URL": ("message", lambda c: {c: {"json_value": _value("hello")}}),
    "image data is not base64": ("message", lambda c: {c: {"json_value": _value("data:image/png;base64,@@@@")}}),
    "image is not a PNG": ("message", lambda c: {c: {"json_value": _value(_data_url(b"GIF89a" + b"\0" * 64))}}),
    "PNG header claims 30000×30000 pixels": ("message", lambda c: {c: {"json_value": _value(
        _data_url(_png_header(30_000, 30_000)))}}),
    "huge image data (6 MB)": ("message", lambda c: {c: {"json_value": _value(
        _data_url(b"\x89PNG\r\n\x1a\n" + os.urandom(6_000_000)))}}),
    "canvas value of the wrong type (a string)": ("ignored", lambda c: {c: {"string_value": "hello"}}),
    "widget id that does not exist": ("ignored", lambda c: {
        "$$ID-00000000000000000000000000000000-forged": {"json_value": _value("data:,")},
        "$$ID-ffffffffffffffffffffffffffffffff-None": {"trigger_value": True}}),
    f"frame over {MAX_FRAME_MB} MB": ("closed", lambda c: b"\n" + b"\xff" * (MAX_FRAME_MB * 1_000_000 + 1)),
    "bytes that are no protobuf": ("closed", lambda c: b"\xff\xfe\xfd not a BackMsg"),
}


def _open_draw(port: int, timeout_s: float) -> tuple[Session, str]:
    s = Session(port, timeout_s=timeout_s, fetch_media=False)
    run = s.rerun(page="Draw")
    canvas = run.widget("bidi_component", contains="drawable_canvas")
    if canvas is None:
        raise ProtocolError("no canvas on the Draw page")
    return s, canvas.id


def _real_stroke(s: Session, canvas_id: str, value: str) -> str | None:
    """None if a real stroke works in this session, else what went wrong (no answer included)."""
    try:
        run = s.rerun({canvas_id: {"json_value": value}})
    except ProtocolError as e:
        return str(e)
    if run.exceptions or run.errors_shown:
        return (run.exceptions + run.errors_shown)[0]
    if not any("took" in t and "ms" in t for t in run.texts):
        return "no reconstructions after a real stroke"
    return None


def forge(port: int, drawings: list, timeout_s: float) -> tuple[list[dict], list[str]]:
    rows, errors = [], []
    s, canvas_id = _open_draw(port, timeout_s)
    try:
        for i, (name, (expected, build)) in enumerate(CASES.items()):
            payload = build(canvas_id)
            row = {"case": name, "expected": expected, "outcome": "", "next_stroke": ""}
            try:
                run = s.send_raw(payload) if isinstance(payload, bytes) else s.rerun(payload)
                row["seconds"] = run.seconds
                if run.exceptions:
                    row["outcome"] = f"exception shown: {run.exceptions[0]}"
                elif any(DRAW_MESSAGE in m for m in run.errors_shown):
                    row["outcome"] = "message"
                    row["shown"] = next(m for m in run.errors_shown if DRAW_MESSAGE in m)[:200]
                elif run.errors_shown:
                    row["outcome"] = f"other error shown: {run.errors_shown[0][:200]}"
                else:
                    row["outcome"] = "ignored"
            except ConnectionClosed as e:
                row["outcome"], row["close_code"] = "closed", e.code
                s.close()
                s, canvas_id = _open_draw(port, timeout_s)   # a new session (a reload)
            except ProtocolError as e:
                row["outcome"] = f"no answer: {e}"
                s.close()
                s, canvas_id = _open_draw(port, timeout_s)
            problem = _real_stroke(s, canvas_id, drawings[i % len(drawings)][0])
            row["next_stroke"] = "works" if problem is None else f"fails: {problem}"[:200]
            if problem is not None and row["outcome"].startswith("exception shown") and expected == "broken":
                row["outcome"] = "broken"
            if problem is not None:   # a reload: a new session for the next cases
                s.close()
                s, canvas_id = _open_draw(port, timeout_s)
                again = _real_stroke(s, canvas_id, drawings[i % len(drawings)][0])
                row["next_stroke"] += "; after a reload: " + ("works" if again is None else f"fails: {again}"[:200])
                if again is not None:
                    errors.append(f"forged '{name}': a new session's real stroke failed: {again}")
            if row["outcome"] != expected:
                errors.append(f"forged '{name}': expected {expected}, got {row['outcome']}")
            if problem is not None and expected != "broken":
                errors.append(f"forged '{name}': the next real stroke failed: {problem}")
            rows.append(row)
    finally:
        s.close()
    return rows, errors


def run(server, plan: dict, drawings: list) -> dict:
    """The forger while NORMAL_SESSIONS sessions draw (a ladder step without training)."""
    from bench.capacity.load import percentile, run_step
    # they draw until the forger is done (at most MAX_NORMAL_STROKES strokes each)
    normal_plan = {**plan, "strokes": MAX_NORMAL_STROKES, "moves": 0, "think": max(plan["think"], 0.3)}
    forger_done = gevent.event.Event()
    drawing = gevent.spawn(run_step, server, NORMAL_SESSIONS, normal_plan, drawings, False, forger_done)
    gevent.sleep(1.0)
    try:
        rows, errors = forge(server.port, drawings, plan["timeout"])
    except ProtocolError as e:
        rows, errors = [], [f"forger: {e}"]
    finally:
        forger_done.set()
    step = drawing.get(timeout=plan["step_seconds"] + 60)
    # the server logs the refused frames and the undecodable JSON with a traceback: expected here
    normal_errors = [e for e in step.errors if not e.startswith("server log:")]
    errors += [f"a drawing session alongside the forger: {e}" for e in normal_errors]
    strokes = step.samples.get("stroke", [])
    if len(strokes) < NORMAL_SESSIONS:
        errors.append(f"the {NORMAL_SESSIONS} drawing sessions alongside the forger drew only {len(strokes)} strokes")
    return {"cases": rows, "errors": errors, "normal_sessions": NORMAL_SESSIONS, "normal_strokes": len(strokes),
            "normal_stroke_p95_s": percentile(strokes, 95)}


def markdown(result: dict) -> str:
    lines = ["| forged message | expected | outcome | the session's next real stroke |", "|:---|:---|:---|:---|"]
    for r in result["cases"]:
        outcome = r["outcome"] + (f" (code {r['close_code']})" if r.get("close_code") else "") + (
            f": “{r['shown']}”" if r.get("shown") else "")
        lines.append(f"| {r['case']} | {r['expected']} | {outcome} | {r['next_stroke']} |")
    lines.append("")
    p95 = result.get("normal_stroke_p95_s")
    lines.append(f"Meanwhile {result['normal_sessions']} sessions drew {result['normal_strokes']} strokes "
                 f"(p95 {'—' if p95 is None else f'{p95 * 1000:.0f}'} ms); errors: {len(result['errors'])}.")
    lines += [f"- {e}" for e in result["errors"]]
    return "\n".join(lines)
