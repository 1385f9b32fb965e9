"""Streamlit helpers shared by the pages: cached models and data, the models of this
session, the Train page's settings, and image rendering. Pages call these and `aecore`;
nothing here does maths."""
from __future__ import annotations

import base64
import gc
import io
import sys

import numpy as np
import streamlit as st
import torch
from PIL import Image

import aecore
from aecore import jobs
import aecore.novelty
from aecore.checkpoint import trained_noise
from aecore.models import default_run_lr, list_models, model_spec
from aecore.noise import BLIND, LEVEL_RANGE, NOISE_LABELS
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
    epochs, batch size, rate) and the common rest."""
    spec = model_spec(model_name)
    return {"model": model_name, **TRAIN_COMMON, "code_size": spec.train_code_size, "epochs": spec.epochs,
            "batch_size": spec.batch_size, "lr": default_run_lr(model_name)}


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
    training settings (aecore.checkpoint.trained_noise) for a session's model."""
    freeze_long_lived()
    out = {s.name: s.model for s in shipped()
           if s.model is not None and (denoisers is None or s.is_denoiser == denoisers)}
    # a copy: a training thread may add a model while we iterate
    out.update({f"{k} (this session)": m for k, m in dict(session_models()).items()
                if denoisers is None or (trained_noise(m) is not None) == denoisers})
    return out


def trained_on(model) -> str | None:
    """What a denoiser learned to remove, in words ("trained on Gaussian noise 0.5", or the
    blind one's kinds and level ranges); None for a plain autoencoder."""
    if (noise := trained_noise(model)) is None:
        return None
    kind, level = noise
    if kind == BLIND:
        return "trained blind: " + ", ".join(f"{NOISE_LABELS[k]} 0–{r[0]:g}" for k, r in LEVEL_RANGE.items())
    if kind not in NOISE_LABELS:
        return f"trained on an unknown noise {kind!r}"
    return f"trained on {NOISE_LABELS[kind]} noise {level:g}"


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
