"""Add noise to digits and compare a denoiser (an autoencoder, or the U-Net), a plain autoencoder
and a classic method."""
import streamlit as st

import ui
from aecore import denoising
from aecore.inpaint import INPAINTING
from aecore.metric_help import tooltip
from aecore.models import is_autoencoder
from aecore.noise import LEVEL_HELP, LEVEL_RANGE, NOISE_KINDS, NOISE_LABELS, TRAINING_NOISES

SOURCES = ("Random test digits", "Test digits of one class", "My drawing")
CURVE_IMAGES = 200   # first test images used for the PSNR-vs-level chart
SCALE = 3            # digits shown 84 px wide

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


@st.cache_resource
def computed_curves() -> set:
    """The (kind, keys) whose `curves` this server has computed (a cache may still drop them)."""
    return set()


def psnr_ssim(scored) -> str:
    psnr = "∞" if scored.mean("mse") == 0 else f"{scored.mean('psnr'):.2f} dB"
    return f"PSNR {psnr} · SSIM {scored.mean('ssim'):.3f}"


def digits(images) -> tuple[str, ...]:
    """28x28 PNGs, which the browser enlarges without smoothing: about half the bytes of enlarged
    ones, and no enlarged picture to encode per digit."""
    return tuple(ui.digit_image(image, 1) for image in images)


def curve_chart(curve, kind, level) -> ui.SafeHtml:
    """PSNR against noise level, the slider's level marked: an SVG picture in one st.html
    element (ui.line_chart_svg), so a slider step redraws no charting library."""
    return ui.line_chart_svg(denoising.curve_levels(kind), curve, marker=level,
                             title=f"PSNR against noise level, {CURVE_IMAGES} test digits",
                             x_title=f"{NOISE_LABELS[kind]} noise level: {LEVEL_HELP[kind]}", y_title="mean PSNR (dB)")


denoisers, plains = ui.available_models(denoisers=True), ui.available_models(denoisers=False)


def denoiser_name(label):
    model = denoisers[label]   # what it learned to remove; a U-Net says it is one
    return f"{label} · {ui.trained_on(model) or 'denoiser'}" + ("" if is_autoencoder(model) else " · U-Net")


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
den_label = c3.selectbox("Denoiser", list(denoisers), format_func=denoiser_name,
                         index=index_of(denoising.matched(kind, denoisers), list(denoisers)), key=f"denoiser_{kind}",
                         help="Each noise kind starts with the denoising autoencoder trained for it; a blind one was "
                              "trained on every kind at random levels and is never told which one it sees.")
if not is_autoencoder(denoisers[den_label]):
    c3.caption("A **U-Net** is not an autoencoder: its skip connections carry each digit's detail around its "
               "code, so it denoises better than the autoencoders, and compresses nothing (it is not on the "
               "Draw, Latent space or Compression pages).")
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
chart_keys = tuple((label, ui.identity(m)) for label, m in chart_methods.items())
clean = pick_clean(source, n, seed, digit)   # the same digits at every noise level


row_titles = (("noisy", None), ("denoiser", denoiser_name(den_label)), ("plain AE", plain_label),
              ("classic", filter_label))


def comparison(level) -> ui.SafeHtml:
    """The five rows at `level` (clean, noisy, then `methods` in order), as one HTML block.
    Also runs ahead on a background thread (ui.ahead): no Streamlit calls here."""
    scored = denoising.compare(clean, kind, level, seed, methods)   # noisy input, then `methods`
    rows = [ui.DigitRow("clean", digits(clean), ("the target",))]
    for (title, detail), key in zip(row_titles, scored):
        lines = (detail, psnr_ssim(scored[key])) if detail else (psnr_ssim(scored[key]),)
        rows.append(ui.DigitRow(title, digits(scored[key].images), lines, tooltip("psnr", "ssim", plain=True)))
    return ui.digit_rows_html(rows, 28 * SCALE)


@st.fragment
def noise_level_and_results():
    """The noise slider and everything it changes. A slider step reruns only this part of
    the page (a fragment): the controls above are neither rerun nor re-sent, and the rows
    at every level are computed ahead while the user looks at the first (ui.ahead)."""
    top, step, default = LEVEL_RANGE[kind]
    level = st.slider("Noise level", 0.0, top, default, step, key=f"level_{kind}", help=LEVEL_HELP[kind])
    level = denoising.on_slider(kind, level)
    rows = ()
    if clean is not None:
        # the key names everything `comparison` depends on (the labels give the row titles)
        key = ("denoise", kind, seed, ui.fingerprint(clean), *((label, ui.identity(m)) for label, m in methods.items()))
        rows = (ui.ahead(key, level, denoising.slider_levels(kind), comparison),)
    slot = None   # curves computed already, as on every slider step: one element
    if rows and (kind, chart_keys) not in computed_curves():   # seconds to come: the digits first
        slot = st.empty()
        ui.show_html(*rows, where=slot)
    curve = curves(kind, chart_keys, chart_methods)
    computed_curves().add((kind, chart_keys))
    ui.show_html(*rows, curve_chart(curve, kind, level), where=slot)   # the chart joins them


noise_level_and_results()
