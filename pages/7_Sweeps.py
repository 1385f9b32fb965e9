"""What a grid of trainings found: quality against code size per architecture, from a
sweep's results table (the shipped docs/sweep-results.json, or an uploaded one)."""
import plotly.graph_objects as go
import streamlit as st

from aecore import sweep_results
from aecore.metric_help import tooltip

st.set_page_config(page_title="Sweeps · MNIST Autoencoder Lab", page_icon="📈", layout="wide")
st.title("Sweeps")
st.markdown(
    "Which architecture and code size is best for a budget? A **sweep** trains a grid of models "
    "(architectures × code sizes × noise × seeds) and tabulates how well each one rebuilds the test "
    "digits. `aecore sweep sweeps/small.toml` runs one on this machine's cores, or on a Ray cluster; "
    "its `results.csv` or `results.json` can be shown here.")


@st.cache_data(show_spinner=False, max_entries=8)
def read(data: bytes | None, name: str) -> dict:
    """The validated table (bytes of an upload, or the shipped file when `data` is None)."""
    return sweep_results.read_results(data if data is not None else sweep_results.shipped_results_path(), name)


def chart(series: dict, y: str) -> go.Figure:
    fig = go.Figure()
    for label, points in series.items():
        fig.add_scatter(x=[p["code_size"] for p in points], y=[p[y] for p in points], name=label,
                        mode="lines+markers", text=[f"{p['trials']} ({p['n']} trial(s))" for p in points],
                        hovertemplate="code %{x}: %{y:.4g}<br>%{text}")
    fig.update_layout(xaxis=dict(type="log", title="code size (numbers per digit)", dtick=0.30103),
                      yaxis_title=sweep_results.QUALITY[y], height=480, margin=dict(t=30),
                      legend_title="architecture")
    return fig


source = st.radio("Results", ["The shipped sweep", "Upload a table"], horizontal=True)
upload = None
if source == "Upload a table":
    upload = st.file_uploader("A sweep's results.csv or results.json", type=["csv", "json"])
    if upload is None:
        st.info("Choose the `results.csv` or `results.json` that `aecore sweep` wrote.")
        st.stop()
try:
    table = read(upload.getvalue() if upload else None, upload.name if upload else "the shipped table")
except sweep_results.ResultsError as e:
    st.error(str(e))
    st.stop()

rows = table["rows"]
done = [r for r in rows if r["status"] == "done"]
failed = [r for r in rows if r["status"] == "failed"]
if failed:
    st.warning(f"{len(failed)} trial(s) failed: "
               + "; ".join(f"**{r['trial']}** ({r['error'] or 'no reason recorded'})" for r in failed[:5]))
if not done:
    st.info("No finished trial in this table: nothing to plot.")
    st.stop()
measures = [m for m in sweep_results.QUALITY if any(r.get(m) is not None for r in done)]
y = st.radio("Quality measure", measures, horizontal=True, format_func=lambda m: m.upper().replace("_", " "),
             help=tooltip("psnr", "mse", "ssim"))
st.plotly_chart(chart(sweep_results.quality_by_code_size(done, y), y), width="stretch")
st.caption(f"Sweep **{table['spec'] or 'uploaded'}**: {len(done)} finished trial(s); a point is the mean over "
           "the trials of one architecture and code size (seeds). A denoiser's line is scored on clean digits; "
           "its denoising score is the DENOISE PSNR measure. A code of n numbers is 4n bytes as float32.")
rd = sweep_results.rate_distortion(done)
if rd:
    st.subheader("Rate–distortion")
    fig = go.Figure()
    for label, points in rd.items():
        fig.add_scatter(x=[p["bytes_per_digit"] for p in points], y=[p["rate_psnr"] for p in points], name=label,
                        mode="lines+markers", text=[f"{p['trial']} (code {p['code_size']})" for p in points],
                        hovertemplate="%{x:.1f} B: %{y:.2f} dB<br>%{text}")
    fig.update_layout(xaxis=dict(type="log", title="bytes per digit (whole file, header included)"),
                      yaxis_title="PSNR (dB) of the decoded digits", height=420, margin=dict(t=30),
                      legend_title="architecture")
    st.plotly_chart(fig, width="stretch")
    bits = sorted({int(r["rate_bits"]) for r in done if r.get("rate_bits")})
    st.caption(f"Each trial's test digits compressed in one file (aecore.compress: codes quantised to "
               f"{', '.join(map(str, bits))} bits per number, then entropy-coded), and decoded by the same "
               "model. The **Compression** page compares such files with PCA, PNG, JPEG and WebP.")
with st.expander("The table"):
    st.dataframe([{"trial": r["trial"], "status": r["status"], "model": r["model"],
                   "code": int(r["code_size"]), "noise": r["noise"] or "", "MSE": r["mse"], "PSNR dB": r["psnr"],
                   "SSIM": r["ssim"], "denoise PSNR": r["denoise_psnr"], "bytes / digit": r["bytes_per_digit"],
                   "seconds": r["seconds"],
                   "node": r["node"], "attempts": r["attempts"]} for r in rows], hide_index=True, placeholder="–")
