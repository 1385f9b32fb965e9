"""Add noise to digits and compare a denoising autoencoder, a plain one and a classic method."""
import streamlit as st

import ui
from aecore import denoising
from aecore.inpaint import INPAINTING
from aecore.metric_help import tooltip
from aecore.noise import LEVEL_HELP, LEVEL_RANGE, NOISE_KINDS, NOISE_LABELS, TRAINING_NOISES

SOURCES = ("Random test digits", "Test digits of one class", "My drawing")
CURVE_IMAGES = 200   # first test images used for the PSNR-vs-level chart

st.set_page_config(page_title="Denoise · MNIST Autoencoder Lab", page_icon="🧹", layout="wide")
st.title("Denoise")
st.caption("The noise is seeded: the same seed and level always give the same noisy digits.")
ui.show_unavailable()


def pick_clean(source, n, seed, digit):
    """(B,1,28,28) clean digits, or None (with a hint) when there is no drawing yet."""
    if source == "My drawing":
        if st.session_state.get("drawing") is None:
            st.info("Draw a digit on the **Draw** page first (see the sidebar); it will show up here.")
            return None
        return denoising.as_batch(st.session_state["drawing"])
    images, labels = ui.test_set()
    return images[denoising.pick_digits(labels, n, seed, digit if source == SOURCES[1] else None)]


def best_plain(labels):
    """Index of the shipped conv_upsample (non-denoising) model with the lowest test MSE."""
    ups = [s for s in ui.shipped() if s.model is not None and not s.is_denoiser
           and s.entry.get("model") == "conv_upsample" and s.name in labels]
    return labels.index(min(ups, key=lambda s: s.entry["metrics"]["mse"]).name) if ups else 0


@st.cache_data(show_spinner=f"Computing PSNR curves on {CURVE_IMAGES} test digits…", max_entries=32)
def curves(kind, keys, _methods):
    """`keys` (labels and model identities) stand for the unhashable `_methods` in the cache key."""
    images, _ = ui.test_set()
    return denoising.psnr_curve(_methods, images[:CURVE_IMAGES], kind, denoising.curve_levels(kind))


def psnr_ssim(scored):
    psnr = "∞" if scored.mean("mse") == 0 else f"{scored.mean('psnr'):.2f} dB"
    return f"PSNR {psnr}  \nSSIM {scored.mean('ssim'):.3f}"   # two lines: narrow columns


def comparison_row(title, images, caption, detail=None, help=None):
    """One method: its name and scores on the left, its digits as one wrapping grid (a phone
    keeps them side by side; every row wraps alike, so a digit stays under its clean one)."""
    label, grid = st.columns([1, 5], vertical_alignment="center")
    label.markdown(f"**{title}**")
    if detail:
        label.caption(detail)
    label.caption(caption, help=help)
    with grid:
        ui.image_grid(images, scale=3)


def curve_chart(curve, kind, level) -> dict:
    """The figure as a plain dict: st.plotly_chart validates it once (a go.Figure built here would
    be validated twice); the level is a plain shape and label (add_vline builds the same far slower)."""
    xs = list(denoising.curve_levels(kind))
    return {"data": [{"type": "scatter", "x": xs, "y": list(ys), "name": name, "mode": "lines+markers"}
                     for name, ys in curve.items()],
            "layout": {"height": 380, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
                       "yaxis": {"title": {"text": "mean PSNR (dB)"}},
                       "xaxis": {"title": {"text": f"{NOISE_LABELS[kind]} noise level: {LEVEL_HELP[kind]}"}},
                       "title": {"text": f"PSNR against noise level, {CURVE_IMAGES} test digits"},
                       "shapes": [{"type": "line", "x0": level, "x1": level, "y0": 0, "y1": 1, "yref": "paper",
                                   "line": {"dash": "dash", "color": "grey"}}],
                       "annotations": [{"x": level, "y": 1, "yref": "paper", "text": f"level {level:g}",
                                        "showarrow": False, "xanchor": "left", "yanchor": "top"}]}}


denoisers, plains = ui.available_models(denoisers=True), ui.available_models(denoisers=False)


def denoiser_name(label):
    return f"{label} · {ui.trained_on(denoisers[label]) or 'denoiser'}"   # what it learned to remove


def index_of(label, labels):
    return labels.index(label) if label in labels else 0


for label, model in denoisers.items():
    if denoising.trained_for(model) not in TRAINING_NOISES:
        st.warning(f"**{label}** says it was trained on a noise this app does not know "
                   f"({denoising.trained_for(model)!r}); it is offered, but never picked by default.", icon="⚠️")
if not denoisers or not plains:
    st.warning("This page needs a shipped denoising autoencoder and a plain one; see the messages above.")
    st.stop()
c1, c2, c3 = st.columns(3)
source = c1.radio("Digits", SOURCES)
n = c1.slider("How many", 1, 6, 3) if source != SOURCES[2] else 1
digit = c1.selectbox("Class", range(10), index=7) if source == SOURCES[1] else None
seed = c1.number_input("Seed (digits and noise)", 0, 10**6, 0)
kind = c2.selectbox("Noise", NOISE_KINDS, format_func=NOISE_LABELS.get)
# per kind, the denoiser trained for it is the default (else a blind one); a choice is kept per kind
den_label = c3.selectbox("Denoising autoencoder", list(denoisers), format_func=denoiser_name,
                         index=index_of(denoising.matched(kind, denoisers), list(denoisers)), key=f"denoiser_{kind}",
                         help="Each noise kind starts with the denoiser trained for it; a blind denoiser was "
                              "trained on every kind at random levels and is never told which one it sees.")
plain_label = c2.selectbox("Plain autoencoder", list(plains), index=best_plain(list(plains)))
classics = denoising.classic_methods(kind)
filter_label = c3.selectbox("Classic method", list(classics), key=f"classic_{kind}",
                            help="The first is the strongest classic method for this noise on these digits: "
                                 "a median filter for salt-and-pepper and Gaussian noise (it beats a blur), "
                                 "inpainting for erased areas.")
if filter_label == INPAINTING:
    c3.caption("Inpainting is **told which pixels were erased**; the autoencoders have to find the hole "
               "themselves.")
methods = {den_label: denoisers[den_label], plain_label: plains[plain_label], filter_label: classics[filter_label]}
chart_methods = {**methods, **{label: classics[label] for label in denoising.CLASSIC if label in classics}}
chart_keys = tuple(f"{label}@{id(m)}" for label, m in chart_methods.items())
clean = pick_clean(source, n, seed, digit)   # the same digits at every noise level


@st.fragment
def noise_level_and_results():
    """The noise slider and everything it changes. A slider step reruns only this part of
    the page (a fragment): the controls above are neither rerun nor re-sent."""
    top, step, default = LEVEL_RANGE[kind]
    level = st.slider("Noise level", 0.0, top, default, step, key=f"level_{kind}", help=LEVEL_HELP[kind])
    if clean is not None:
        scored = denoising.compare(clean, kind, level, seed, methods)
        comparison_row("clean", clean, "the target")
        rows = [("noisy", None), ("denoiser", denoiser_name(den_label)), ("plain AE", plain_label),
                ("classic", filter_label)]
        for (title, detail), key in zip(rows, scored):   # scored: noisy input, then `methods` in order
            comparison_row(title, scored[key].images, psnr_ssim(scored[key]), detail, tooltip("psnr", "ssim"))
    st.plotly_chart(curve_chart(curves(kind, chart_keys, chart_methods), kind, level), width="stretch")


noise_level_and_results()
