"""How many bytes does a digit need? Autoencoders against PCA, PNG, JPEG and WebP."""
import math

import plotly.graph_objects as go
import streamlit as st
import torch

import ui
from aecore import compress, rdcodec
from aecore.evaluation import mean_scores
from aecore.metric_help import tooltip

DASH = {"rd codec": "solid", "autoencoder": "solid", "pca": "dot", "image codec": "dash"}
WIDTH = {"rd codec": 4}
# The learned codec thick black-red, autoencoders bold (D3), PCA muted (Set2), codecs dark:
# no colour appears in two families.
COLOURS = {"rd codec": ["#b2182b", "#67001f"],
           "autoencoder": ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#e377c2", "#17becf", "#bcbd22"],
           "pca": ["#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#e5c494", "#b3b3b3"],
           "image codec": ["#222222", "#8c564b"]}

st.set_page_config(page_title="Compression · MNIST Autoencoder Lab", page_icon="🗜️", layout="wide")
st.title("Compression")
st.markdown(
    "An autoencoder's code *is* a compressed digit: send the code, and whoever has the decoder "
    "rebuilds the image. Quantise each code number to a few bits, entropy-code the lot, and a digit "
    "costs tens of bytes, against 784 raw and hundreds as a PNG, JPEG or WebP file. The catch: the "
    "receiver needs the decoder, and the quality can never be better than the model's reconstruction.")


def chart(rows: list[dict], y: str) -> go.Figure:
    """Bytes per image (log) against `y`: a line per method, lossless references as vertical lines."""
    fig, used = go.Figure(), {family: 0 for family in COLOURS}
    for method in dict.fromkeys(r["method"] for r in rows if r["family"] != "lossless"):
        pts = sorted((r for r in rows if r["method"] == method), key=lambda r: r["bytes_per_image"])
        family = pts[0]["family"]
        colour = COLOURS[family][used[family] % len(COLOURS[family])]
        used[family] += 1
        fig.add_scatter(x=[r["bytes_per_image"] for r in pts], y=[r[y] for r in pts], name=method,
                        mode="lines+markers", line=dict(dash=DASH[family], color=colour, width=WIDTH.get(family, 2)),
                        text=[r["setting"] for r in pts], hovertemplate="%{text}: %{x:.1f} B, %{y:.3f}")
    for r in rows:
        if r["family"] == "lossless":
            fig.add_vline(x=r["bytes_per_image"], line_dash="dot", line_color="grey")
            # on a log axis an annotation's x is log10 of the value, a shape's is the value itself
            fig.add_annotation(x=math.log10(r["bytes_per_image"]), yref="paper", y=1, yanchor="top",
                               xanchor="right", textangle=-90, text=f"{r['method']} (lossless)", showarrow=False)
    fig.update_layout(xaxis=dict(type="log", title="bytes per image (whole file, header included)"),
                      yaxis_title={"psnr": "mean PSNR (dB)", "ssim": "mean SSIM"}[y], height=520,
                      margin=dict(t=30),
                      legend_title="thick: rate–distortion codec · solid: autoencoder · dotted: PCA · "
                                   "dashed: image codec")
    return fig


st.header("Rate–distortion on the MNIST test set")
try:
    results = compress.read_rate_distortion()
except compress.CompressError as e:
    st.info(str(e))
else:
    env = results["environment"]
    y = st.radio("Quality measure", ["psnr", "ssim"], format_func=str.upper, horizontal=True,
                 help=tooltip("psnr", "ssim"))
    st.plotly_chart(chart(results["rows"], y), width="stretch")
    st.markdown(results["summary"]["text"])
    st.caption(f"{results['images']:,} test digits, measured {env['date']} with torch {env['torch']}, "
               f"{env['threads']} thread(s) on {env['cores']} cores, by `python -m bench.rate_distortion`.")
    with st.expander("The table"):   # a dataframe scrolls inside itself on a phone
        st.dataframe([{"method": r["method"], "setting": r["setting"],
                       "bytes / image": round(r["bytes_per_image"], 1),
                       "PSNR dB": "lossless" if r["psnr"] is None else f"{r['psnr']:.2f}",
                       "SSIM": round(r["ssim"], 3)} for r in results["rows"]], hide_index=True,
                     column_config={"PSNR dB": st.column_config.TextColumn(help=tooltip("psnr")),
                                    "SSIM": st.column_config.NumberColumn(help=tooltip("ssim"), format="%.3f")})

st.header("A codec trained for rate and distortion: pick a size")
st.markdown(
    "This autoencoder was trained for distortion + λ · rate, with a learned entropy model of its code "
    "(one probability table per code number): each λ gives a size per digit. The code is range-coded "
    "with those tables into a real file, which is decoded again here.")


@st.cache_resource(show_spinner="Loading the rate–distortion codec…")
def codecs() -> list:
    return rdcodec.shipped_codecs()


@st.cache_data(max_entries=64, show_spinner="Making the file…")
def codec_file(name: str, target: float, count: int):
    """(file, each digit's level) of the first `count` test digits at `target` bytes per digit:
    the allocation decodes every digit at every level (about 0.3 s for 200 digits), so a
    rerun that changes neither (the quality radio, an upload) reuses it."""
    codec = next(model for n, _, model, _ in codecs() if n == name)
    return compress.compress_rd_to_size(codec, ui.test_set()[0][:count], target)


available = [(name, model) for name, _, model, _ in codecs() if model is not None]
for name, _, model, error in codecs():
    if model is None:
        st.warning(f"Codec {name} is unavailable: {error}")
if not available:
    st.info("No rate–distortion codec is available: restore `weights/codec/` or rerun its recorded command "
            "(`weights/codec/manifest.json`).")
else:
    name, codec = available[0]
    r1, r2 = st.columns([2, 1])
    target = r1.select_slider(
        "Target size per digit", options=rdcodec.TARGET_SIZES, value=16, format_func=lambda b: f"{b:g} B",
        help="the whole file, header included, divided by the digits: each digit gets the level (λ) that buys "
             "the most quality for the bytes (rate control)")
    count = r2.slider("Test digits", 10, 2000, 200, step=10, key="codec_count",
                      help="the first N of the MNIST test set, in one file")
    images = ui.test_set()[0][:count]
    data, levels = codec_file(name, target, count)
    decoded = compress.decompress_rd(data, codec)
    quality = mean_scores(decoded, images)
    k1, k2, k3 = st.columns(3)
    k1.metric("Codec file", f"{len(data):,} bytes", help=f"{count} digits, header included")
    k2.metric("Bytes per digit", f"{len(data) / count:.1f}")
    k3.metric("PSNR", f"{quality['psnr']:.2f} dB", help=tooltip("psnr"))
    used = [(k, n) for k, n in enumerate(torch.bincount(torch.from_numpy(levels), minlength=codec.levels).tolist()) if n]
    st.caption(("Even the smallest level is larger than the target. " if len(data) > target * count else "")
               + "Digits per level: " + ", ".join(f"λ {codec.lambdas[k]:g}: {n}" for k, n in used)
               + ". Each digit gets the level at which its bytes buy the most PSNR for the file.")
    ui.image_grid(images[:8], ["original"] * 8, scale=3)
    ui.image_grid(decoded[:8], [f"λ {codec.lambdas[k]:g}" for k in levels[:8]], scale=3)
    upload = st.file_uploader("Or your own digit: a PNG or JPEG of one digit (up to 5 MB)", type=["png", "jpg", "jpeg"],
                              key="codec_upload")
    if upload is not None:
        try:
            digit = compress.digit_from_bytes(upload.getvalue(), upload.name)
        except compress.CompressError as e:
            st.error(str(e))
        else:
            own, level = compress.compress_rd_code_within(codec, digit, target)
            rebuilt = compress.decompress_rd(own, codec)
            head = compress.rd_header_bytes(own)
            st.caption(f"Your digit alone: a {len(own)} byte file ({head} bytes of header, shared by every digit "
                       f"of a larger file, {len(own) - head} bytes of code at λ {codec.lambdas[level]:g}, the "
                       f"best level whose code fits {target:g} B), PSNR {mean_scores(rebuilt, digit)['psnr']:.2f} dB.")
            ui.image_grid(torch.cat([digit, rebuilt]), ["yours", f"{len(own) - head} B of code"], scale=4)

st.header("Try it: compress test digits now")
ui.show_unavailable()
models = ui.available_models(denoisers=False)
if not models:
    st.info("No autoencoder is available: train one on the **Train** page or restore `weights/`.")
    st.stop()
c1, c2, c3 = st.columns(3)
best = max(models, key=lambda k: getattr(models[k], "metrics", {}).get("psnr", 0))  # a good start
label = c1.selectbox("Model", list(models), index=list(models).index(best))
bits = c2.slider("Bits per code number", 2, 12, 6, help="each code number becomes one of 2^bits levels")
count = c3.slider("Test digits", 10, 2000, 500, step=10, help="the first N of the MNIST test set")
model, images = models[label], ui.test_set()[0][:count]
data = compress.compress_images(model, images, bits)
decoded = compress.decompress_bytes(data, model)
quality = mean_scores(decoded, images)
m1, m2, m3, m4 = st.columns(4)
m1.metric("File size", f"{len(data):,} bytes")
m2.metric("Bytes per image", f"{len(data) / count:.1f}", help="the header (model fingerprint, code ranges) "
          "is shared by all the digits: with few digits it weighs more")
m3.metric("Mean PSNR", f"{quality['psnr']:.2f} dB", help=tooltip("psnr"))
m4.metric("Mean SSIM", f"{quality['ssim']:.3f}", help=tooltip("ssim"))
st.caption(f"{model.code_size} code numbers × {bits} bits = {model.code_size * bits / 8:g} bytes per digit "
           f"before entropy coding; the raw pixels take 784 bytes ({784 * count / len(data):.0f}× larger).")
st.caption("The first 8 test digits, then the same digits rebuilt from their codes:")
ui.image_grid(images[:8], ["original"] * 8, scale=3)
ui.image_grid(decoded[:8], [f"{bits}-bit code"] * 8, scale=3)
st.download_button("Download the compressed file", data, file_name=f"{label.split(' ')[0]}-{bits}bit.aecz",
                   help="decode it with `python -m aecore decompress FILE --out digits.npy`")
