"""Streamlit helpers shared by the pages: cached models and data, the models of this
session, the Train page's settings, and image rendering. Pages call these and `aecore`;
nothing here does maths."""
from __future__ import annotations

import base64
import collections
import gc
import hashlib
import html
import io
import itertools
import logging
import math
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import numpy as np
import streamlit as st
import torch
from PIL import Image

import aecore
from aecore import jobs
import aecore.novelty
from aecore.checkpoint import trained_noise
from aecore.models import default_run_lr, is_autoencoder, list_models, model_spec, training_error
from aecore.noise import describe_noise
from aecore.shipped import ShippedModel, make_example, shipped_models
from aecore.trainer import ConfigError, TrainConfig

# One colour per digit 0-9 wherever digits are coloured (maps, overlays): each has a
# contrast of at least 3:1 (WCAG, graphics) on white and on black (tests/app/test_latent_page.py).
DIGIT_COLOURS = ("#1f77b4", "#e8710a", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#d3399c", "#707070", "#8f8a00", "#0f9d9a")

SESSION_MODELS = "session_models"   # st.session_state key: {label: model}
MAX_SESSION_MODELS = jobs.MAX_SESSION_MODELS   # older ones are dropped: bounded memory per session


@st.cache_resource(show_spinner="Loading the shipped models…")
def _shipped() -> tuple[list[ShippedModel], str | None]:
    torch.set_num_threads(1)  # inference is tiny; leave the other core to training
    try:
        return shipped_models(), None
    except aecore.CheckpointError as e:  # no usable manifest: the app still runs, without them
        return [], str(e)


def shipped() -> list[ShippedModel]:
    """Every model in weights/, loaded once per server; unusable files carry an error."""
    return _shipped()[0]


shipped.clear = _shipped.clear  # forget the loaded models (tests point AECORE_WEIGHTS elsewhere)


@st.cache_resource(show_spinner="Loading the MNIST test set…")
def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    return aecore.load_mnist("test")


@st.cache_resource(show_spinner="Measuring how well the model rebuilds the test digits…", max_entries=4)
def _novelty_reference(label: str, model_id: int, _model):
    return aecore.novelty.reference_errors(_model, test_set()[0])


def novelty_reference(label: str, model):
    """The sorted test-set errors of `model` (aecore.novelty), computed once per model."""
    return _novelty_reference(label, id(model), model)


def session_models() -> dict:
    return st.session_state.setdefault(SESSION_MODELS, {})


def add_session_model(label: str, model) -> str:
    """Keep `model` for this session under a unique label; returns the label used."""
    return jobs.keep_model(session_models(), label, model, MAX_SESSION_MODELS)


# The Train page's settings every architecture starts from (with its own default run:
# train_defaults). Ranges: TrainConfig.validate() (trainer.LIMITS).
TRAIN_COMMON = {"noise": None, "noise_level": 0.5, "train_size": 60_000, "test_size": 2_000,
                "precision": "auto"}


def train_defaults(model_name: str) -> dict:
    """The Train page's settings for `model_name`: its own default run (ModelSpec: code size,
    epochs, batch size, rate) and the common rest; Gaussian noise for a model that trains only
    on noise (a U-Net: aecore.models.training_error)."""
    spec = model_spec(model_name)
    return {"model": model_name, **TRAIN_COMMON, "code_size": spec.train_code_size, "epochs": spec.epochs,
            "batch_size": spec.batch_size, "lr": default_run_lr(model_name),
            **({} if spec.autoencoder else {"noise": "gaussian"})}


TRAIN_DEFAULTS = train_defaults("simple")   # the Train page's starting point


def train_setting_errors(settings: dict) -> dict[str, str]:
    """{setting: message} for each unusable entry of `settings` (keys as in TRAIN_DEFAULTS),
    so the page rejects values however they arrived; TrainConfig.validate() has the ranges."""
    errors = {}
    for key, value in settings.items():
        if key == "model":
            if value not in list_models():
                errors[key] = f"architecture must be one of {', '.join(list_models())}, got {value!r}"
        elif key == "code_size":
            model = settings.get("model", TRAIN_DEFAULTS["model"])
            sizes = model_spec(model if model in list_models() else TRAIN_DEFAULTS["model"]).code_sizes
            if value not in sizes:
                errors[key] = f"code size must be one of {', '.join(map(str, sizes))}, got {value!r}"
        elif key in TRAIN_DEFAULTS:
            try:
                TrainConfig(**{key: value}).validate()
            except (ConfigError, TypeError) as e:
                errors[key] = str(e)
        else:
            errors[key] = f"unknown training setting {key!r}"
    if {"model", "noise"} <= set(settings) and not errors.keys() & {"model", "noise"}:
        if error := training_error(settings["model"], settings["noise"]):
            errors["noise"] = error
    return errors


_frozen_at = 0   # len(sys.modules) at the last freeze


def freeze_long_lived() -> None:
    """Move what is loaded by now (modules: torch, plotly, scipy...; the cached models) out of
    the garbage collector's reach, once, and again after many new imports: a full collection
    then walks only what reruns create. Streamlit's collection after every run is off
    (.streamlit/config.toml, runner.postScriptGC); this keeps Python's own, rarer full
    collections short too. Costs one full collection when it runs."""
    global _frozen_at
    if len(sys.modules) > _frozen_at + 25:
        _frozen_at = len(sys.modules)
        gc.collect()
        gc.freeze()


def available_models(denoisers: bool | None = None) -> dict:
    """{label: model}: shipped models that loaded, then this session's models (trained on
    the Train page or uploaded). `denoisers=True/False` keeps only the models that were
    (not) trained to remove noise: the manifest says so for a shipped model, the recorded
    training settings (aecore.checkpoint.trained_noise) for a session's model. A model that
    is not an autoencoder (a U-Net: nothing to draw through, no code to decode) is offered
    only among the denoisers."""
    freeze_long_lived()
    out = {s.name: s.model for s in shipped() if s.model is not None and _offered(s.model, s.is_denoiser, denoisers)}
    # a copy: a training thread may add a model while we iterate
    out.update({f"{k} (this session)": m for k, m in dict(session_models()).items()
                if _offered(m, trained_noise(m) is not None, denoisers)})
    return out


def _offered(model, is_denoiser: bool, denoisers: bool | None) -> bool:
    """Whether available_models(denoisers) offers `model` (a denoiser or not, as `is_denoiser`)."""
    return (denoisers is None or is_denoiser == denoisers) and (denoisers is True or is_autoencoder(model))


def offered_on(model) -> str:
    """Where available_models offers `model`, in words ("the Draw and Denoise pages"): Draw asks
    for every model, Denoise for the denoisers and the plain ones."""
    is_denoiser = trained_noise(model) is not None
    pages = [page for page, denoisers in (("Draw", None), ("Denoise", is_denoiser))
             if _offered(model, is_denoiser, denoisers)]
    if not pages:
        return "no page (trained without noise, it only copies)"
    return f"the {' and '.join(pages)} page" + "s" * (len(pages) > 1)


def trained_on(model) -> str | None:
    """What a denoiser learned to remove, in words ("trained on Gaussian noise 0.5", or the
    blind one's kinds and level ranges); None for a plain autoencoder."""
    noise = trained_noise(model)
    return None if noise is None else f"trained on {describe_noise(*noise)}"


def example(model) -> dict:
    """A manifest-style example (aecore.shipped.make_example) from the cached test set."""
    return make_example(model, test_set()[0])


def show_unavailable() -> None:
    models = shipped()
    if not models:
        st.warning(f"No shipped models: {_shipped()[1] or 'the manifest lists none'}. "
                   "Train one on the Train page.", icon="⚠️")
    for s in models:
        if s.model is None:
            st.warning(f"Model **{s.name}** is unavailable: {s.error}", icon="⚠️")


def to_pixels(image, scale: int = 4) -> np.ndarray:
    """(28,28) / (1,28,28) tensor or array in [0,1] -> uint8 (28*scale, 28*scale),
    enlarged with nearest neighbours so pixels stay visible."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    a = (np.clip(a.reshape(28, 28), 0, 1) * 255).round().astype(np.uint8)
    return np.kron(a, np.ones((scale, scale), np.uint8))


def image_row(images, captions, scale: int = 4) -> None:
    """Images side by side with a caption under each (st.columns: they stack on a phone;
    `image_grid` keeps them side by side)."""
    for col, image, caption in zip(st.columns(len(images)), images, captions):
        col.image(to_pixels(image, scale), caption=caption)


def png_data_url(image: np.ndarray) -> str:
    """(H,W) float array in [0,1] or uint8 array -> a "data:image/png;base64,..." URL of its
    grey levels (a Plotly layout image: one PNG instead of H*W numbers)."""
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG", compress_level=1)   # nearest-enlarged digits: small anyway
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def digit_image(image, scale: int = 4) -> str:
    """A digit, enlarged (`to_pixels`), as a PNG data URL for st.image: the picture travels in
    the rerun's own message (about 0.5 kB) instead of as a file the browser fetches afterwards,
    and PNG keeps its pixels exact (st.image would encode an array as JPEG)."""
    return png_data_url(to_pixels(image, scale))


def image_grid(images, captions=None, scale: int = 4) -> None:
    """Equally sized images, each 28*scale px wide, flowing left to right and wrapping
    to as many per line as the screen holds: one element (one st.image of a list), so
    any number of images keeps one size, and a phone shows a compact grid."""
    st.image([digit_image(image, scale) for image in images],
             caption=list(captions) if captions is not None else None, width=28 * scale)


@dataclass(frozen=True)
class DigitRow:
    """One row of `digit_rows_html`: a title, caption lines, and the digits as data URLs."""
    title: str
    images: tuple[str, ...]          # digit_image() URLs
    lines: tuple[str, ...] = ()      # under the title; the last one carries `help`
    help: str | None = None          # plain text shown on hover over the last line


class SafeHtml(str):
    """HTML made by this module's builders (digit_rows_html, digit_grid_html, the SVG charts),
    every runtime string in it escaped. `show_html` renders only this type: a page cannot
    hand st.html a string it built itself (tests/test_security.py checks that no other code
    calls st.html with anything but a literal)."""


def show_html(*blocks: SafeHtml, where=None) -> None:
    """Render `blocks` with st.html in `where` (a container; the page by default), stacked in
    ONE element: each element costs a rerun a message, a hand-over between the script and the
    server's send loop, and a DOM update (docs/BENCHMARKS.md section 9). The one place the app
    renders HTML built at run time."""
    if not blocks or not all(isinstance(b, SafeHtml) for b in blocks):
        raise TypeError("show_html renders only HTML made by ui's escaping builders (SafeHtml)")
    body = blocks[0] if len(blocks) == 1 else f'<div style="{_STACK}">{"".join(blocks)}</div>'
    (where or st).html(body)


# Inline styles, not a <style> block: a new <style> in every rerun's HTML makes the browser
# recompute the whole page's styles on each slider step.
_ROWS = "display:flex;flex-direction:column;gap:.75rem"
_STACK = "display:flex;flex-direction:column;gap:1rem"
_ROW = "display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1rem"
_LABEL = "flex:1 1 8rem;max-width:15rem;line-height:1.4"
_LINE = "display:block;color:rgba(49,51,63,.6);font-size:.875rem"
_DIGITS = "flex:5 1 16rem;display:flex;flex-wrap:wrap;gap:.5rem"


def _digit_img(url: str, width: int, alt: str) -> str:
    """One digit's <img>, enlarged to `width` px without smoothing (`alt` already escaped)."""
    return (f'<img src="{html.escape(url)}" width="{width}" height="{width}" alt="{alt}" '
            f'style="display:block;image-rendering:pixelated">')


def digit_rows_html(rows: Sequence[DigitRow], width: int) -> SafeHtml:
    """Rows of digits as ONE st.html block: each row's title and captions on the left, its
    digits (`width` px each) wrapping on the right, under the title on a phone. One element
    however many rows and digits: what a rerun re-sends and the browser redraws is one
    element instead of a row of columns, captions and images each (the stack's cost is per
    element, docs/BENCHMARKS.md section 9). All text is escaped: model names are user input."""
    out = [f'<div class="digit-rows" style="{_ROWS}">']
    for row in rows:
        lines = [f'<small style="{_LINE}">{html.escape(line)}</small>' for line in row.lines]
        if lines and row.help:
            lines[-1] = (f'<small style="{_LINE};cursor:help;text-decoration:underline dotted" '
                         f'title="{html.escape(row.help)}">{html.escape(row.lines[-1])}</small>')
        title = html.escape(row.title)
        images = "".join(_digit_img(url, width, f"{title}, digit {i + 1}") for i, url in enumerate(row.images))
        out.append(f'<div style="{_ROW}"><div style="{_LABEL}"><strong>{title}</strong>{"".join(lines)}</div>'
                   f'<div style="{_DIGITS}">{images}</div></div>')
    return SafeHtml("".join(out) + "</div>")


def digit_grid_html(urls: Sequence[str], captions: Sequence[str], width: int) -> SafeHtml:
    """Digits with a caption under each, wrapping to as many per line as the screen holds, as
    ONE st.html block (see digit_rows_html). The URLs may be 28x28 PNGs: the browser enlarges
    them to `width` px without smoothing, so pixels stay visible."""
    items = "".join(f'<figure style="margin:0;width:{width}px">{_digit_img(url, width, html.escape(caption))}'
                    f'<figcaption style="{_LINE};text-align:center;overflow-wrap:anywhere;margin-top:.25rem">'
                    f'{html.escape(caption)}</figcaption></figure>'
                    for url, caption in zip(urls, captions, strict=True))
    return SafeHtml(f'<div class="digit-grid" style="display:flex;flex-wrap:wrap;gap:.75rem 1rem">{items}</div>')


_identities = itertools.count()


def identity(obj) -> int:
    """A number naming `obj` for as long as it lives and never reused (id() is reused once an
    object is freed: a model retrained under the same name could find the old one's cached
    results)."""
    try:
        return obj.__dict__.setdefault("_aecore_identity", next(_identities))
    except AttributeError:   # no __dict__
        return id(obj)


def fingerprint(tensor: torch.Tensor) -> str:
    """A short digest of a tensor's values: a cache key for pictures (a drawing, picked digits)."""
    return hashlib.blake2b(tensor.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()


class AheadWorker:
    """One daemon thread for the whole server that runs the newest job first, with at most
    `limit` jobs waiting: a new one pushes out the oldest (a user who moved on to other digits
    no longer needs it; what it would have stored is computed on demand instead). So the CPU
    spent ahead is bounded whatever the number of sessions and however fast they change things."""

    def __init__(self, limit: int = 8):
        self.limit, self._jobs, self._ready = limit, collections.OrderedDict(), threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, key: Hashable, job: Callable[[], None]) -> None:
        with self._ready:
            self._jobs[key] = job
            self._jobs.move_to_end(key)
            while len(self._jobs) > self.limit:
                self._jobs.popitem(last=False)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="aecore-ahead", daemon=True)
                self._thread.start()
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._ready.wait()
                _, job = self._jobs.popitem(last=True)
            try:
                job()
            except Exception:   # the worker outlives a failing job
                logging.getLogger(__name__).exception("a job computed ahead failed")


# Results a slider will ask for next are computed ahead, off the script thread.
_AHEAD = AheadWorker()
_STARTED = object()   # store key: the background fill was handed to the worker


@st.cache_resource(max_entries=16, show_spinner=False)
def _ahead_store(key: Hashable) -> dict:
    return {}


def ahead(key: Hashable, value: float, values: Sequence[float], compute: Callable[[float], object]):
    """`compute(value)`, for the slider position `value` of a slider whose positions are
    `values`: from a store (one per `key`, which must name everything `compute` depends on)
    that a background thread fills with every other position, nearest first, once the first
    is shown. A slider step then only shows a stored result: the work is done while the user
    looks, not between their input and the picture. `compute` runs on that thread too: it
    must not call Streamlit. A position not stored yet is computed here, as without the store."""
    store = _ahead_store(key)
    if value not in store:
        store[value] = compute(value)
    if _STARTED not in store:
        store[_STARTED] = True
        nearest_first = sorted(values, key=lambda v: abs(v - value))
        _AHEAD.submit(key, lambda: _fill(store, nearest_first, compute))
    return store[value]


def _fill(store: dict, values: Sequence[float], compute) -> None:
    for v in values:
        if v not in store:
            try:
                store[v] = compute(v)
            except Exception:   # the page computes this position itself and shows the error
                logging.getLogger(__name__).exception("computing a slider position ahead failed")
                return


# Plotly's first colours, so a curve keeps the colour it has in the app's other charts.
CURVE_COLOURS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692")
_GREY = "#7d7f87"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2 or 5 times a power of ten apart) covering low..high."""
    if high - low < 1e-9:   # one value: a unit around it
        low, high = low - 0.5, high + 0.5
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    return [round(first + i * step, 10) for i in range(int(math.ceil((high - first) / step)) + 1)]


class _Frame:
    """Axes of an SVG chart: x from x0 to x1, y over round ticks covering `ys`; grid lines,
    tick labels and axis titles collected in `parts`."""
    w, h, left, right, top, bottom = 560, 300, 46, 10, 10, 46

    def __init__(self, x0: float, x1: float, ys: Sequence[float], x_title: str, y_title: str):
        finite = [y for y in ys if math.isfinite(y)] or [0.0, 1.0]
        self.x0, self.x1, self.yt = x0, x1, nice_ticks(min(finite), max(finite))
        self.parts = [f'<line x1="{self.left}" x2="{self.w - self.right}" y1="{self.y(t):.1f}" y2="{self.y(t):.1f}" '
                      f'stroke="#e6e9ef"/><text x="{self.left - 6}" y="{self.y(t) + 5:.1f}" text-anchor="end" '
                      f'fill="{_GREY}">{t:g}</text>' for t in self.yt]
        middle = (self.top + self.h - self.bottom) / 2
        self.parts.append(f'<text x="{(self.left + self.w - self.right) / 2}" y="{self.h - 4}" text-anchor="middle">'
                          f'{html.escape(x_title)}</text><text transform="translate(14 {middle}) rotate(-90)" '
                          f'text-anchor="middle">{html.escape(y_title)}</text>')

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / ((self.x1 - self.x0) or 1) * (self.w - self.left - self.right)

    def y(self, value: float) -> float:
        return self.h - self.bottom - (value - self.yt[0]) / ((self.yt[-1] - self.yt[0]) or 1) * (
            self.h - self.top - self.bottom)

    def x_label(self, value: float, text: str) -> None:
        self.parts.append(f'<text x="{self.x(value):.1f}" y="{self.h - self.bottom + 18}" text-anchor="middle" '
                          f'fill="{_GREY}">{html.escape(text)}</text>')

    def as_html(self, title: str, alt: str, legend: Sequence[tuple[str, str]] = ()) -> SafeHtml:
        """Title, legend ((name, colour) pairs) and the SVG as an image: st.html keeps only HTML,
        so the chart travels as a picture the browser draws as part of one element."""
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.w} {self.h}" width="{self.w}" '
               f'height="{self.h}" font-family="Source Sans Pro, Helvetica, Arial, sans-serif" font-size="14" '
               f'fill="#31333f">{"".join(self.parts)}</svg>')
        keys = "".join(f'<span style="white-space:nowrap"><span style="display:inline-block;width:1.2em;height:3px;'
                       f'background:{colour};vertical-align:middle;margin-right:.3em"></span>{html.escape(name)}</span>'
                       for name, colour in legend)
        url = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
        return SafeHtml(f'<div class="svg-chart"><div style="font-weight:600;margin-bottom:.25rem">{html.escape(title)}</div>'
                + (f'<div style="display:flex;flex-wrap:wrap;gap:.25rem 1rem;font-size:.875rem">{keys}</div>'
                   if keys else "")
                + f'<img src="{url}" alt="{html.escape(alt)}" style="display:block;width:100%;'
                  f'max-width:{self.w}px;height:auto"></div>')


def line_chart_svg(xs: Sequence[float], series: dict[str, Sequence[float]], *, marker: float, title: str,
                   x_title: str, y_title: str) -> SafeHtml:
    """A line chart for st.html (one line per series, a dashed line at `marker`): no charting
    library runs when a slider step moves the marker (`_Frame.as_html`)."""
    frame = _Frame(min(0.0, min(xs)), max(xs), [y for ys in series.values() for y in ys], x_title, y_title)
    for x in xs:
        frame.x_label(x, f"{x:g}")
    legend = []
    for (name, values), colour in zip(series.items(), itertools.cycle(CURVE_COLOURS)):
        points = [(frame.x(x), frame.y(y)) for x, y in zip(xs, values) if math.isfinite(y)]
        frame.parts.append(f'<polyline points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in points)}" fill="none" '
                           f'stroke="{colour}" stroke-width="2"/>')
        frame.parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3.5" fill="{colour}"/>' for a, b in points]
        legend.append((name, colour))
    at = frame.x(marker)
    frame.parts.append(f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{frame.top}" y2="{frame.h - frame.bottom}" '
                       f'stroke="grey" stroke-dasharray="5 4"/><text x="{at + 4:.1f}" y="{frame.top + 14}" '
                       f'fill="grey">level {marker:g}</text>')
    return frame.as_html(title, f"{title}, level {marker:g} marked", legend)


def bar_chart_svg(values: Sequence[float], *, title: str, x_title: str, y_title: str) -> SafeHtml:
    """A bar per value (x = its index) from zero, for st.html: a stroke that changes every bar
    runs no charting library (`_Frame.as_html`)."""
    n = max(len(values), 1)
    frame = _Frame(-0.5, n - 0.5, [0.0, *values], x_title, y_title)
    for i in nice_ticks(0, n - 1):
        if i <= n - 1:
            frame.x_label(i, f"{i:g}")
    width = max(frame.x(1) - frame.x(0), 1.0) * 0.8
    zero = frame.y(0.0)
    frame.parts += [f'<rect x="{frame.x(i) - width / 2:.2f}" y="{min(zero, frame.y(v)):.2f}" width="{width:.2f}" '
                    f'height="{abs(frame.y(v) - zero):.2f}" fill="#4c78a8"/>' for i, v in enumerate(values)]
    return frame.as_html(title, f"{title}: {len(values)} values")
