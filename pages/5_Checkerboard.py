"""Checkerboard artifacts: the course's transpose-convolution decoder next to the
upsample + convolution decoder, on the same digits, with a number for the pattern."""
import streamlit as st

import ui
from aecore import checkerboard as cb

PAIR = {"conv-196": "transpose convolution, kernel 2 stride 2 (the course model)",
        "conv_upsample-32": "nearest upsample ×2, then 3×3 convolution"}
SCALE = 6   # enlarged pixels, so a 2-pixel pattern shows

st.set_page_config(page_title="Checkerboard · MNIST Autoencoder Lab", page_icon="🏁", layout="wide")
st.title("Checkerboard artifacts")
st.markdown(
    "A transposed convolution paints every input position into the output through its kernel; "
    "with kernel 2 and stride 2 each output pixel comes from exactly one kernel position, so every "
    "2×2 output block is drawn on its own from the same kernel weights and the tiling imprints a "
    "periodic pattern (a kernel size that is not a multiple of the stride overlaps unevenly and "
    "does the same). Resizing first and then convolving gives every output pixel the same kind of "
    "contributions, so the pattern has nowhere to come from — Odena, Dumoulin & Olah, "
    "[*Deconvolution and Checkerboard Artifacts*](https://distill.pub/2016/deconv-checkerboard/), "
    "Distill 2016.")
st.caption("**Grid ratio**: how much larger the jumps between neighbouring pixels are across the "
           "edges of the decoder's 2×2 (or 4×4) output blocks than inside them — 1 when nothing knows "
           "the grid (the test digits themselves score 1.00), above 1 for blocky output. "
           "**Checkerboard share** of an error image e: the fraction of ‖e‖² in its fixed 2-periodic "
           "part (each pixel replaced by the mean of its (row mod 2, column mod 2) class, minus the "
           "overall mean), i.e. the power at the Nyquist frequencies (π,0), (0,π), (π,π) of the 2-D "
           "DFT: 1 for a pure checkerboard, 0 for a smooth error, 3/784 ≈ 0.004 for white noise. "
           "Definitions and tests: `aecore/checkerboard.py`.")
ui.show_unavailable()

loaded = {s.name: s.model for s in ui.shipped() if s.model is not None}
models = {name: loaded[name] for name in PAIR if name in loaded}
for name in [n for n in PAIR if n not in models]:
    st.info(f"The shipped model **{name}** ({PAIR[name]}) is not available, so it is left out. "
            "Restore it in `weights/` (see the README) to compare both decoders.")
if not models:
    st.stop()
images, labels = ui.test_set()


@st.cache_data(show_spinner="Measuring on the 10,000 test digits…", max_entries=4)
def report(name):
    return cb.error_report(models[name], images)


st.subheader("Same digits, both decoders")
start = st.number_input("First test digit #", 0, len(images) - 6, 0, step=6)
batch = images[start:start + 6]
ui.image_row(batch, [f"input #{start + i}" for i in range(6)], SCALE)
for name, model in models.items():
    recon = model.reconstruct(batch)
    st.markdown(f"**{name}** — {PAIR[name]}")
    grids, shares = cb.grid_ratio(recon[:, 0]), cb.checkerboard_share((recon - batch)[:, 0])
    ui.image_row(recon, [f"grid {g:.2f}× · share {c:.3f}" for g, c in zip(grids, shares)], SCALE)
    ui.image_row(cb.signed_to_unit(recon - batch), ["error (grey = 0)"] * 6, SCALE)

st.subheader("Measured on the full test set (10,000 digits)")
reports = {name: report(name) for name in models}
# a Markdown table: st.dataframe needs pyarrow, which refuses numpy < 2 here
st.markdown(
    "| model | decoder | MSE | grid ratio, 2×2 blocks | grid ratio, 4×4 blocks | checkerboard share, "
    "mean per digit | checkerboard share of the mean error |\n|---|---|---|---|---|---|---|\n"
    + "".join(f"| {name} | {PAIR[name]} | {r['mse']:.5f} | {r['grid2']:.3f} | {r['grid4']:.3f} "
              f"| {r['share']:.4f} | {r['share_of_mean']:.4f} |\n" for name, r in reports.items())
    + f"| test digits | (the inputs) | 0 | {cb.grid_ratio_of(images[:, 0], 2):.3f} "
      f"| {cb.grid_ratio_of(images[:, 0], 4):.3f} | – | – |")
st.markdown("**Mean error over the test set** (reconstruction − input; grey is 0, black and white "
            "the largest |mean error| of that model), and its fixed 2×2-periodic part on the same scale: "
            "what is left after averaging is what the decoder does to every digit.")
pictures, notes = [], []
for name, r in reports.items():
    scale = r["mean_error"].abs().max().item()
    pictures += [cb.signed_to_unit(r["mean_error"], scale),
                 cb.signed_to_unit(cb.periodic_component(r["mean_error"]), scale)]
    notes += [f"{name}: mean error (±{scale:.3f})", f"{name}: its 2×2-periodic part"]
ui.image_row(pictures, notes, 8)

st.subheader("The decoders' answer to random codes")
seed = st.number_input("Seed", 0, 10**6, 0)
for name, model in models.items():
    out = cb.decoder_response(model, images[:2000], n=6, seed=seed)
    st.markdown(f"**{name}**: each code dimension drawn from its values over 2,000 test codes")
    ui.image_row(out, [f"grid {g:.2f}×" for g in cb.grid_ratio(out[:, 0])], SCALE)
