"""MNIST Autoencoder Lab — home page. Run with `streamlit run app.py`.

app.py is a symbolic link to this file: with a `pages/` folder, streamlit names the main
page in the sidebar after the resolved file name of the entry script (source_util.
page_icon_and_name), so the link makes the first entry read "Home" while the command, the
pages' URLs and deep links on a fresh server stay those of the `pages/` convention
(st.navigation would rename it too, but with a `pages/` folder a fresh server's first
deep link shows the wrong sidebar: tests/browser/test_deep_links.py).

Everything here comes from weights/manifest.json (metrics, an example picture recorded
from each model, each file's sha256), so the page renders before torch is imported;
torch and the models load in the background for the other pages."""
import importlib
import sys
import threading

import numpy as np
import streamlit as st

from aecore import manifest
from aecore.metric_help import explanation, tooltip
from aecore.errors import CheckpointError
from aecore.noise_kinds import blind_ranges, describe_noise


def metrics(entry: dict) -> dict:
    return entry.get("metrics") or {}


def trained_for(m: dict, brief: bool = False) -> str:
    noise = describe_noise(m.get("noise"), m.get("noise_level"), brief)
    return "reconstruction" if noise is None else f"denoising {noise}"


TRAINED_FOR_HELP = ("Reconstruction: clean digit in, the same digit out. Denoising: noisy digit in, clean digit "
                    "out, at the noise level shown. A blind denoiser saw every kind at random levels "
                    f"({blind_ranges()}) and is never told which.")


def best_example(entries: list[dict], problems: dict) -> tuple | None:
    """(name, input, code, reconstruction) of the best plain (not denoising) model, as the
    manifest records it; computed from the model, which loads torch, only for a manifest
    written without examples."""
    ready = sorted((e for e in entries if not problems[e["file"]] and not metrics(e).get("noise")),
                   key=lambda e: metrics(e).get("mse", float("inf")))
    for e in ready:
        if example := manifest.read_example(e):
            return e["file"].removesuffix(".pt"), *example
    if ready:
        import ui
        for s in sorted(ui.shipped(), key=lambda s: metrics(s.entry).get("mse", float("inf"))):
            if s.model is not None and not s.is_denoiser:
                return s.name, *manifest.read_example({"example": ui.example(s.model)})
    return None


def code_chart(code: list[float], width: int = 360, height: int = 150) -> str:
    """The code as an SVG bar chart (light: no charting library to load)."""
    top = max(1e-6, max(abs(v) for v in code))
    mid, step = height / 2, width / len(code)
    bars = "".join(
        f'<rect x="{i * step + step * 0.1:.1f}" y="{mid - max(v, 0) / top * (mid - 4):.1f}" '
        f'width="{step * 0.8:.1f}" height="{abs(v) / top * (mid - 4):.1f}" fill="#ff4b4b"/>'
        for i, v in enumerate(code))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{bars}<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" '
            f'stroke="#888" stroke-width="1"/></svg>')


def enlarge(image: np.ndarray, scale: int = 6) -> np.ndarray:
    return (np.kron(np.clip(image, 0, 1), np.ones((scale, scale))) * 255).round().astype(np.uint8)


def warm_up_the_other_pages() -> None:
    """Import torch and the app's helpers in the background once per server (~1.5 s), so
    the first visit to another page does not wait for them."""
    if "ui" not in sys.modules and not any(t.name == "warm-up" for t in threading.enumerate()):
        threading.Thread(target=importlib.import_module, args=("ui",), name="warm-up", daemon=True).start()


st.set_page_config(page_title="MNIST Autoencoder Lab", page_icon="🧠", layout="wide")
st.title("MNIST Autoencoder Lab")
st.markdown(
    "An **autoencoder** learns to copy its input through a bottleneck. The **encoder** squeezes "
    "a 28×28 digit (784 numbers) into a short **code**; the **decoder** rebuilds the image from "
    "the code alone. Because the code is small, the network has to learn what digits have in "
    "common — strokes, loops, slants — and throw the rest away. Train on noisy inputs with clean "
    "targets and the same machinery becomes a **denoiser**; make the code a probability "
    "distribution and it becomes a **variational autoencoder** that can invent new digits.")

folder = manifest.weights_dir()
try:
    entries = manifest.read_manifest(folder)
except CheckpointError as e:
    entries = []
    st.warning(f"No shipped models: {e}. Train one on the Train page.", icon="⚠️")
problems = {e["file"]: manifest.file_problem(folder, e) for e in entries}
for e in entries:
    if problems[e["file"]]:
        st.warning(f"Model **{e['file'].removesuffix('.pt')}** is unavailable: {problems[e['file']]}", icon="⚠️")

if example := best_example(entries, problems):
    name, digit, code, reconstruction = example
    st.subheader("Input → code → reconstruction")
    c1, c2, c3 = st.columns([1, 2, 1])
    c1.image(enlarge(digit), caption="input: 784 pixels")
    c2.image(code_chart(code))
    c2.caption(f"the code of **{name}**: {len(code)} numbers")
    c3.image(enlarge(reconstruction), caption="reconstruction")

if entries:
    st.subheader("Shipped models (full MNIST test set, 10,000 digits)")
    # the figures before the words, so that they stay in view on a narrow screen; a status
    # column only when a model is unavailable (the warnings above say why)
    st.dataframe(
        [{"model": e["file"].removesuffix(".pt"),
          **({"status": "unavailable" if problems[e["file"]] else "ready"} if any(problems.values()) else {}),
          "architecture": e.get("model"), "code size": e.get("code_size"),
          "MSE": round(metrics(e).get("mse", float("nan")), 5), "PSNR dB": round(metrics(e).get("psnr", float("nan")), 2),
          "SSIM": round(metrics(e).get("ssim", float("nan")), 3),
          "−ELBO nats": round(metrics(e)["nelbo"], 1) if metrics(e).get("nelbo") is not None else None,
          "trained for": trained_for(metrics(e), brief=True)}   # a blind one's ranges: the header's help
         for e in entries], hide_index=True, placeholder="–",
        column_config={"MSE": st.column_config.NumberColumn(help=tooltip("mse")),
                       "PSNR dB": st.column_config.NumberColumn(help=tooltip("psnr")),
                       "SSIM": st.column_config.NumberColumn(help=tooltip("ssim")),
                       "−ELBO nats": st.column_config.NumberColumn(help=tooltip("nelbo")),
                       "trained for": st.column_config.TextColumn(help=TRAINED_FOR_HELP)})
    st.markdown("How close a reconstruction is to the original digit, three ways:\n" + explanation()
                + "\n\nand for the variational autoencoders, their own score:\n" + explanation("nelbo"))
    st.caption("Each checkpoint comes from the `python -m aecore train …` command recorded in "
               "`weights/manifest.json`, with its metrics and the example above.")

st.subheader("Try it")
for path, label, text in [
        ("pages/1_Draw.py", "Draw", "draw a digit and watch every model rebuild it"),
        ("pages/2_Denoise.py", "Denoise", "add noise of three kinds; compare denoisers and a classic method"),
        ("pages/3_Train.py", "Train", "train your own model live, most in under a minute"),
        ("pages/4_Latent_space.py", "Latent space", "see the digits cluster, walk from a 1 to a 7, sample new digits"),
        ("pages/5_Checkerboard.py", "Checkerboard", "why upsampling beats transpose convolution"),
        ("pages/6_Compression.py", "Compression", "how many bytes an autoencoder needs per digit vs PNG, JPEG, WebP"),
        ("pages/7_Sweeps.py", "Sweeps", "what a grid of trainings found: quality against code size per architecture"),
]:
    st.page_link(path, label=f"**{label}** — {text}")

warm_up_the_other_pages()
