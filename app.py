"""MNIST Autoencoder Lab — home page. Run with `streamlit run app.py`."""
import streamlit as st

import ui

st.set_page_config(page_title="MNIST Autoencoder Lab", page_icon="🧠", layout="wide")
st.title("MNIST Autoencoder Lab")
st.markdown(
    "An **autoencoder** learns to copy its input through a bottleneck. The **encoder** squeezes "
    "a 28×28 digit (784 numbers) into a short **code**; the **decoder** rebuilds the image from "
    "the code alone. Because the code is small, the network has to learn what digits have in "
    "common — strokes, loops, slants — and throw the rest away. Train on noisy inputs with clean "
    "targets and the same machinery becomes a **denoiser**; make the code a probability "
    "distribution and it becomes a **variational autoencoder** that can invent new digits.")

ui.show_unavailable()
models = ui.shipped()
ready = [s for s in models if s.model is not None and not s.is_denoiser]
if ready:
    images, _ = ui.test_set()
    digit = images[:1]
    best = min(ready, key=lambda s: s.entry["metrics"]["mse"])
    code = best.model.encode(digit)[0]
    st.subheader("Input → code → reconstruction")
    c1, c2, c3 = st.columns([1, 2, 1])
    c1.image(ui.to_pixels(digit[0], 6), caption="input: 784 pixels")
    c2.bar_chart({"code": code.tolist()}, height=170)
    c2.caption(f"the code of **{best.name}**: {best.model.code_size} numbers")
    c3.image(ui.to_pixels(best.model.reconstruct(digit)[0], 6), caption="reconstruction")

st.subheader("Shipped models (full MNIST test set, 10,000 digits)")
st.dataframe(
    [{"model": s.name, "architecture": s.entry.get("model"), "code size": s.entry.get("code_size"),
      "trained for": (f"denoising {s.entry['metrics']['noise']} {s.entry['metrics']['noise_level']:g}"
                      if s.is_denoiser else "reconstruction"),
      "MSE": round(s.entry["metrics"]["mse"], 5), "PSNR dB": round(s.entry["metrics"]["psnr"], 2),
      "SSIM": round(s.entry["metrics"]["ssim"], 3), "status": "ready" if s.model else "unavailable"}
     for s in models], hide_index=True)
st.caption("Each checkpoint comes from the `python -m aecore train …` command recorded in "
           "`weights/manifest.json`.")

st.subheader("Try it")
for path, label, text in [
        ("pages/1_Draw.py", "Draw", "draw a digit and watch every model rebuild it"),
        ("pages/2_Denoise.py", "Denoise", "add noise and compare a denoising autoencoder with a median filter"),
        ("pages/3_Train.py", "Train", "train your own model live, in under a minute"),
        ("pages/4_Latent_space.py", "Latent space", "see the digits cluster, walk from a 1 to a 7, sample new digits"),
        ("pages/5_Checkerboard.py", "Checkerboard", "why upsampling beats transpose convolution"),
        ("pages/6_Compression.py", "Compression", "how many bytes an autoencoder needs per digit vs PNG, JPEG, WebP"),
]:
    st.page_link(path, label=f"**{label}** — {text}")
