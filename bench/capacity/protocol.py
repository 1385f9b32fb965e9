"""One Streamlit browser session without a browser: a websocket to `/_stcore/stream` speaking
Streamlit 1.67's own protobufs, as its frontend does (recorded from real Chromium, see
bench/capacity/__init__.py).

The frontend sends a `BackMsg` whose `rerun_script` (a ClientState) carries the page (its name
on the first load, its script hash afterwards) and the widget states; the server answers with
`ForwardMsg`s: `new_session` (the pages), `delta`s (every element, widgets with their ids) and
`script_finished` when the run is over. Widget ids are read from the deltas, never hard-coded:
they hash a widget's parameters, so they change when a page changes.

Only 127.0.0.1 is ever contacted. Every wait has a deadline. No gevent or Locust here: the
Locust users (bench/capacity/load.py) drive this class."""
from __future__ import annotations

import base64
import io
import json
import random
import time
import urllib.request
from dataclasses import dataclass, field

import websocket  # websocket-client
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

HOST = "127.0.0.1"          # the only host this bench talks to
STREAM_PATH = "/_stcore/stream"
SUBPROTOCOL = "streamlit"   # first Sec-WebSocket-Protocol entry; 2nd would be an XSRF token, 3rd a session id
FINISHED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}
MAX_MESSAGES_PER_RUN = 5_000   # a run that sends more than this is an error, not a hang
MAX_MEDIA_PER_RUN = 32         # images a browser would fetch after a run; more are not fetched
CANVAS_COMPONENT = "drawable_canvas"   # part of streamlit-drawable-canvas's component name
ALERT_ERROR = 1                # streamlit.proto.Alert.Format.ERROR


class ProtocolError(RuntimeError):
    """The server closed the connection, sent garbage, or a run did not finish in time."""


class ConnectionClosed(ProtocolError):
    def __init__(self, code: int | None, why: str):
        super().__init__(f"the server closed the connection (code {code}): {why}")
        self.code = code


@dataclass
class Widget:
    kind: str          # element type: slider, button, number_input, bidi_component, ...
    id: str
    label: str
    proto: object = field(repr=False, default=None)
    fragment: str = ""  # the st.fragment it is in: a change reruns only that fragment, as in a browser


@dataclass
class Run:
    """What one script run sent back."""
    seconds: float
    status: int | None = None
    widgets: list[Widget] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    errors_shown: list[str] = field(default_factory=list)     # st.error boxes (the page's clear messages)
    texts: list[str] = field(default_factory=list)            # markdown, alerts, captions, text
    media: list[str] = field(default_factory=list)            # /media/... URLs of images
    auto_rerun: tuple[float, str] | None = None               # (interval s, fragment id) of a run_every fragment
    bytes_received: int = 0

    def widget(self, kind: str, label: str | None = None, contains: str | None = None) -> Widget | None:
        for w in self.widgets:
            if w.kind == kind and (label is None or w.label == label) and (contains is None or contains in w.label):
                return w
        return None


def _element_texts(el, kind: str) -> list[str]:
    sub = getattr(el, kind)
    out = []
    for attr in ("body", "text", "label", "message"):
        value = getattr(sub, attr, None)
        if isinstance(value, str) and value:
            out.append(value)
    return out


class Session:
    """One websocket = one Streamlit session (one browser tab)."""

    def __init__(self, port: int, timeout_s: float = 30.0, fetch_media: bool = True):
        self.port, self.timeout_s, self.fetch_media = port, timeout_s, fetch_media
        self.url = f"http://{HOST}:{port}"
        self.pages: dict[str, str] = {}      # page name -> page_script_hash
        self.page_hash: str | None = None
        self.page_name: str | None = None
        self.ws = websocket.create_connection(
            f"ws://{HOST}:{port}{STREAM_PATH}", subprotocols=[SUBPROTOCOL], timeout=timeout_s,
            origin=self.url, enable_multithread=False)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: no proxies

    # ------------------------------------------------------------------ sending
    def _client_state(self, msg: BackMsg, page: str | None, fragment_id: str | None, auto: bool) -> None:
        cs = msg.rerun_script
        if page is not None and page not in self.pages:
            cs.page_name = page                      # first visit, as a deep link does
        elif page is not None:
            cs.page_script_hash = self.pages[page]   # a click in the sidebar
        elif self.page_hash:
            cs.page_script_hash = self.page_hash
        if fragment_id:
            cs.fragment_id, cs.is_auto_rerun = fragment_id, auto
        ci = cs.context_info
        ci.timezone, ci.timezone_offset, ci.locale = "UTC", 0, "en-US"
        ci.url = f"{self.url}/{page or self.page_name or ''}"
        ci.is_embedded, ci.color_scheme = False, "light"

    def rerun(self, widgets: dict[str, dict] | None = None, page: str | None = None,
              fragment_id: str | None = None, auto: bool = False) -> Run:
        """Send a rerun request with these widget states ({id: {"json_value": ...}} etc.) and
        read until the script run finished. Raises ProtocolError on a close or a timeout.
        `fragment_id`: rerun only that fragment, as the browser does when a widget inside one
        changes (Widget.fragment) or, with `auto`, when a run_every fragment is due."""
        msg = BackMsg()
        self._client_state(msg, page, fragment_id, auto)
        for wid, value in (widgets or {}).items():
            w = msg.rerun_script.widget_states.widgets.add()
            w.id = wid
            for field_name, v in value.items():
                if field_name == "double_array_value":
                    w.double_array_value.data.extend(v)
                else:
                    setattr(w, field_name, v)
        return self.send_raw(msg.SerializeToString())

    def send_raw(self, payload: bytes) -> Run:
        """Send any bytes as one binary frame (forged messages too) and wait for the run."""
        start = time.perf_counter()
        try:
            self.ws.send_binary(payload)
        except (websocket.WebSocketException, OSError) as e:
            raise ConnectionClosed(None, f"send failed: {e}") from e
        run = self._read_run(start)
        if self.fetch_media:
            self._fetch(run.media)
        return run

    # ------------------------------------------------------------------ receiving
    def _read_run(self, start: float) -> Run:
        deadline = start + self.timeout_s
        run = Run(seconds=0.0)
        for _ in range(MAX_MESSAGES_PER_RUN):
            left = deadline - time.perf_counter()
            if left <= 0:
                raise ProtocolError(f"no script_finished within {self.timeout_s:g} s")
            self.ws.settimeout(left)
            try:
                opcode, data = self.ws.recv_data()
            except websocket.WebSocketTimeoutException as e:
                raise ProtocolError(f"no script_finished within {self.timeout_s:g} s") from e
            except websocket.WebSocketConnectionClosedException as e:
                raise ConnectionClosed(None, str(e)) from e
            except OSError as e:
                raise ConnectionClosed(None, f"{type(e).__name__}: {e}") from e
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                raise ConnectionClosed(code, data[2:].decode(errors="replace"))
            if opcode != websocket.ABNF.OPCODE_BINARY:
                continue
            run.bytes_received += len(data)
            fm = ForwardMsg()
            fm.ParseFromString(data)
            kind = fm.WhichOneof("type")
            if kind == "navigation":   # the pages and the one this run shows
                nav = fm.navigation
                self.pages = {p.page_name: p.page_script_hash for p in nav.app_pages} or self.pages
                self.page_hash = nav.page_script_hash
                self.page_name = next((n for n, h in self.pages.items() if h == self.page_hash), self.page_name)
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                self._element(fm.delta.new_element, run, fm.delta.fragment_id)
            elif kind == "auto_rerun":
                run.auto_rerun = (fm.auto_rerun.interval, fm.auto_rerun.fragment_id)
            elif kind == "script_finished":
                if fm.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    continue   # superseded by a newer run of the same request: keep reading
                run.status, run.seconds = fm.script_finished, time.perf_counter() - start
                if fm.script_finished not in FINISHED:
                    raise ProtocolError(f"script finished with status {fm.script_finished} (compile error)")
                return run
            elif kind == "page_not_found":
                raise ProtocolError(f"page not found: {fm.page_not_found.page_name!r}")
        raise ProtocolError(f"more than {MAX_MESSAGES_PER_RUN} messages in one run")

    @staticmethod
    def _element(el, run: Run, fragment: str) -> None:
        kind = el.WhichOneof("type")
        if kind is None:
            return
        sub = getattr(el, kind)
        if kind == "exception":
            run.exceptions.append(f"{sub.type}: {sub.message}"[:500])
        elif kind == "alert" and sub.format == ALERT_ERROR:
            run.errors_shown.append(sub.body)
        elif kind == "imgs":
            run.media += [i.url for i in sub.imgs if i.url.startswith("/media/")]
        wid = getattr(sub, "id", "")
        if kind == "bidi_component":
            run.widgets.append(Widget(kind, wid, sub.component_name, sub, fragment))
        elif isinstance(wid, str) and wid:
            run.widgets.append(Widget(kind, wid, getattr(sub, "label", ""), sub, fragment))
        run.texts += _element_texts(el, kind)

    def _fetch(self, urls: list[str]) -> None:
        """GET the images a run placed, as a browser does (not part of the round trip)."""
        for url in urls[:MAX_MEDIA_PER_RUN]:
            with self._opener.open(f"{self.url}{url}", timeout=self.timeout_s) as r:
                r.read()

    def close(self) -> None:
        try:
            self.ws.close(timeout=2)
        except (websocket.WebSocketException, OSError):
            pass


# ---------------------------------------------------------------------- canvas values

# The properties Fabric 7 gives a free-drawn Path (recorded from streamlit-drawable-canvas 0.13).
_PATH_PROPS = {
    "lockMovementX": False, "lockMovementY": False, "lockRotation": False, "lockScalingX": False,
    "lockScalingY": False, "lockSkewingX": False, "lockSkewingY": False, "lockScalingFlip": False,
    "type": "Path", "version": "7.4.0", "originX": "center", "originY": "center", "fill": None,
    "stroke": "#FFFFFF", "strokeDashArray": None, "strokeLineCap": "round", "strokeDashOffset": 0,
    "strokeLineJoin": "round", "strokeUniform": False, "strokeMiterLimit": 10, "scaleX": 1, "scaleY": 1,
    "angle": 0, "flipX": False, "flipY": False, "opacity": 1, "shadow": None, "visible": True,
    "backgroundColor": "", "fillRule": "nonzero", "paintFirst": "fill", "globalCompositeOperation": "source-over",
    "skewX": 0, "skewY": 0}
CANVAS_SIZE = 280


def random_stroke(rng: random.Random) -> list[tuple[float, float]]:
    n = rng.randint(3, 6)
    x, y = rng.uniform(80, 200), rng.uniform(50, 120)
    points = [(x, y)]
    for _ in range(n - 1):
        x = min(max(x + rng.uniform(-50, 50), 30), 250)
        y = min(max(y + rng.uniform(10, 45), 30), 250)
        points.append((x, y))
    return points


def canvas_value(strokes: list[list[tuple[float, float]]], width: int = 20) -> str:
    """The json_value the canvas sends after these strokes: Fabric's objects and the PNG of
    the 280×280 RGBA canvas (white strokes on black) as a data URL."""
    from PIL import Image, ImageDraw
    img = Image.new("RGBA", (CANVAS_SIZE, CANVAS_SIZE), (0, 0, 0, 255))
    draw = ImageDraw.Draw(img)
    objects = []
    for pts in strokes:
        draw.line(pts, fill=(255, 255, 255, 255), width=width, joint="curve")
        for x, y in (pts[0], pts[-1]):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=(255, 255, 255, 255))
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        path = [["M", *pts[0]]] + [["L", *p] for p in pts[1:]]
        objects.append({**_PATH_PROPS, "left": (min(xs) + max(xs)) / 2, "top": (min(ys) + max(ys)) / 2,
                        "width": max(xs) - min(xs), "height": max(ys) - min(ys), "strokeWidth": width, "path": path})
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    data = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return json.dumps({"drawing": {"raw": {"version": "7.4.0", "objects": objects, "background": "#000000"},
                                   "data": data}}, separators=(",", ":"))


def drawing_sequences(count: int, strokes: int, seed: int = 0) -> list[list[str]]:
    """`count` drawings of 1..`strokes` strokes each, every value a different picture:
    rendered once, before the load starts (the load generator shares the server's CPUs)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        lines = [random_stroke(rng) for _ in range(strokes)]
        out.append([canvas_value(lines[: i + 1]) for i in range(strokes)])
    return out
