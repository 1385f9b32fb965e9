"""Checkerboard artifacts: four decoders that differ only in how they double the
resolution, freshly initialised and trained, on the same codes and digits, with the
phase ratio that ranks them as the eye does (aecore.checkerboard)."""
import streamlit as st

import ui
from aecore import checkerboard as cb
from aecore.shipped import weights_dir

SHORT = {"transpose3": "k3 s2", "transpose4": "k4 s2", "transpose2": "k2 s2", "resize": "resize"}
SHIPPED = ("conv-196", "conv_upsample-32")   # the shipped course models
N = 8          # digits / codes per strip
SCALE = 4      # enlarged pixels, so a 2-pixel pattern shows

st.set_page_config(page_title="Checkerboard · MNIST Autoencoder Lab", page_icon="🏁", layout="wide")
st.title("Checkerboard artifacts")
st.markdown(
    "A transposed convolution doubles an image's size by painting a small stamp (its kernel) "
    "for every input pixel, two pixels apart. When the stamp is 3 pixels wide, some output pixels "
    "are painted four times and their neighbours only once or twice, so every other pixel comes "
    "out stronger and the picture gets a fine checkerboard — even before any training. "
    "A 2-pixel stamp does not overlap at all (it makes 2×2 blocks instead), a 4-pixel stamp overlaps "
    "evenly, and resizing first and then convolving treats every pixel alike — Odena, Dumoulin & Olah, "
    "[*Deconvolution and Checkerboard Artifacts*](https://distill.pub/2016/deconv-checkerboard/), "
    "Distill 2016.")
with st.expander("How the numbers are computed"):
    st.markdown(
        "**Phase ratio** (the checkerboard): split the pixels into the four positions of a 2×2 cell "
        "(row mod 2, column mod 2); over many images, take the variance of the output at each "
        "position, v[a,b] = mean (y − mean y)²; the ratio is max v / min v. 1 when all four "
        "positions are alike (the test digits: 1.0), large when some are systematically louder.  \n"
        "**Grid ratio** (blockiness): how much larger the jumps between neighbouring pixels are across "
        "the edges of 2×2 blocks than inside them; 1 when nothing knows the grid, above 1 for blocks.  \n"
        "The four study decoders are the same network (code 32, `conv_upsample` with width 16) except "
        "the two resolution doublings. Definitions and tests: `aecore/checkerboard.py`.")


@st.cache_data(show_spinner="Initialising the decoders…")
def fresh():
    return cb.fresh_study(n=64)


@st.cache_resource(show_spinner="Loading the trained study decoders…")
def study(folder):
    return cb.study_models(folder)


@st.cache_data(show_spinner="Measuring on the test digits…", max_entries=16)
def report(folder, name, _model, n):   # folder and name identify the model (not hashed)
    return cb.trained_report(_model, ui.test_set()[0][:n])


@st.cache_data(max_entries=1)
def digits_report(n):   # the test digits' own figures: computed once, not on every rerun
    digits = ui.test_set()[0][:n, 0]
    return {"phase": cb.phase_ratio(digits), "grid": cb.grid_ratio_of(digits, 2)}


st.subheader("Before any training")
st.caption(f"Each decoder, freshly initialised (seed 0), decodes the same {N} random codes; each "
           "picture is stretched to full contrast. Every transposed convolution starts with some pattern "
           "(its random kernel weights the four pixels of a 2×2 cell differently); uneven overlap makes it "
           "the strongest, resizing avoids it. The phase ratio is the median over 32 initialisations.")
fresh_study = fresh()
for up, r in fresh_study.items():
    st.image(cb.image_strip(cb.stretch(r["outputs"][:N]), SCALE),
             caption=f"{cb.STUDY[up]} · phase ratio {r['ratio']:.1f}×")

st.subheader("After training")
st.caption("The same four decoders, each trained for 5 epochs to reconstruct MNIST (a pixel-by-pixel "
           "loss), on the same test digits. Here they learn to hide the pattern: every phase ratio ends "
           "within about 1% of the test digits' own. What stays is blockiness where the stride-2 kernel "
           "does not overlap (k2 s2; the shipped course model conv-196 far more). A loss that does not "
           "compare pixels, as in GANs, leaves the checkerboard in (Distill, above).")
folder = str(weights_dir())
models, problems = study(folder)
for problem in problems:
    st.warning(f"Trained study decoder unavailable: {problem}. Rerun `scripts/train-weights.sh "
               "checkerboard` to rebuild them.", icon="⚠️")
images = ui.test_set()[0]
start = st.number_input("First test digit #", 0, len(images) - N, 0, step=N)
batch = images[start:start + N]
st.image(cb.image_strip(batch, SCALE), caption=f"test digits #{start}–#{start + N - 1}")
reports = {}
for up, model in models.items():
    reports[SHORT[up]] = r = report(folder, up, model, 2000)
    st.image(cb.image_strip(model.reconstruct(batch), SCALE),
             caption=f"{cb.STUDY[up]} · phase ratio {r['phase']:.3f}× · grid ratio {r['grid']:.2f}× "
                     f"· MSE {r['mse']:.4f}")

ui.show_unavailable()   # a shipped model that did not load is named, not silently missing from the table
for s in ui.shipped():
    if s.model is not None and s.name in SHIPPED:
        reports[s.name] = report(folder, s.name, s.model, 2000)
st.markdown(
    "**Measured**: phase ratio of the fresh decoders (median of 32 initialisations) and of the "
    "trained ones, and grid ratio, on their reconstructions of 2,000 test digits. k3 s2 is the "
    "transposed convolution with kernel 3, stride 2, and so on; conv-196 is the shipped course model "
    "(k2 s2), conv_upsample-32 the shipped resize + conv model.\n\n"
    "| decoder | fresh | trained | grid |\n|---|--:|--:|--:|\n"
    + "".join(f"| {label} | {fresh_study[up]['ratio']:.1f} | {reports[label]['phase']:.3f} "
              f"| {reports[label]['grid']:.2f} |\n" for up, label in SHORT.items() if label in reports)
    + "".join(f"| {label} | – | {reports[label]['phase']:.3f} | {reports[label]['grid']:.2f} |\n"
              for label in SHIPPED if label in reports)
    + "| test digits | – | {phase:.3f} | {grid:.2f} |".format(**digits_report(2000)))
