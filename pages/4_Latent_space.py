"""Latent space: the codes of the test set as a map, paths between digits, new digits
from a VAE, and what one code dimension does."""
import plotly.graph_objects as go
import streamlit as st
import torch

import ui
from aecore import latent
from aecore.evaluation import evaluate
from aecore.metric_help import tooltip
from aecore.models import can_sample

INDEX = "latent_index"     # session key of the digit shown (number input, chart selection)
METHODS = {"direct": "the 2-D code itself", "pca": "PCA (all 10,000)",
           "tsne": f"t-SNE ({latent.TSNE_POINTS:,} random digits, seeded)"}

st.set_page_config(page_title="Latent space · MNIST Autoencoder Lab", page_icon="🧭", layout="wide")
st.title("Latent space")
st.caption("Every test digit becomes a code; digits that look alike should get codes that lie close.")
ui.show_unavailable()


@st.cache_resource(show_spinner="Encoding the 10,000 test digits…", max_entries=8)
def codes_of(key, _model):
    """`key` (label, id) stands for the unhashable `_model` in the cache key."""
    return latent.encode_all(_model, ui.test_set()[0])


@st.cache_data(show_spinner="Scoring the VAE on the 10,000 test digits…", max_entries=8)
def nelbo_of(key, _model) -> float:
    """The VAE's negative ELBO, nats per test digit (aecore.evaluation; seeded)."""
    return evaluate(_model, ui.test_set()[0], metrics=("nelbo",))["nelbo"]


@st.cache_data(show_spinner="Projecting the codes to 2-D…", max_entries=16)
def map_of(key, method, _codes):
    """(coordinates (M,2), test indices (M,)) of the codes drawn on the map."""
    if method == "direct":
        return _codes.numpy(), latent.subset_indices(len(_codes), len(_codes))
    idx = latent.subset_indices(len(_codes), latent.TSNE_POINTS if method == "tsne" else len(_codes))
    return latent.project(_codes[idx], method, seed=0), idx


def pick_point():
    points = st.session_state["latent_map"].selection.points
    if points:
        data = points[0].get("customdata")
        st.session_state[INDEX] = int(data[0] if isinstance(data, list) else data)


def scatter(xy, idx, labels, title):
    fig = go.Figure([go.Scattergl(
        x=xy[labels[idx] == d, 0], y=xy[labels[idx] == d, 1], mode="markers", name=str(d),
        customdata=idx[labels[idx] == d], marker=dict(size=4, opacity=0.8, color=ui.DIGIT_COLOURS[d]),
        hovertemplate=f"digit {d}<br>test #%{{customdata}}<extra></extra>") for d in range(10)])
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=40, b=10), title=title,
                      legend_title_text="digit", dragmode="pan")
    return fig


def map_tab(key, model, codes, images, labels, i):
    methods = (["direct"] if model.code_size == 2 else []) + ["pca", "tsne"]
    method = st.radio("Projection", methods, format_func=METHODS.get, horizontal=True)
    if method == "tsne":
        st.caption(f"t-SNE is slow on a small CPU, so it maps a seeded random subset of "
                   f"{latent.TSNE_POINTS:,} test digits; the first map per model takes 10–30 s, then "
                   "it is cached.")
    left, right = st.columns([4, 1])
    with left:
        xy, idx = map_of(key, method, codes)
        st.plotly_chart(scatter(xy, idx, labels.numpy(), f"{len(idx):,} test codes, {METHODS[method]}"),
                        key="latent_map", on_select=pick_point, selection_mode="points", width="stretch")
    right.caption("Click a point, or type a test digit # at the top.")
    right.image(ui.to_pixels(images[i], 5), caption=f"test #{i}: a {labels[i].item()}")
    right.image(ui.to_pixels(model.reconstruct(images[i:i + 1])[0], 5), caption="reconstruction")


def interpolate_tab(model, images, labels):
    c = st.columns(5)
    a, ka = c[0].selectbox("From digit", range(10), 1), c[1].number_input("example", 0, 999, 0, key="ka")
    b, kb = c[2].selectbox("to digit", range(10), 7), c[3].number_input("example", 0, 999, 0, key="kb")
    steps = c[4].slider("Steps", 3, 14, 10)
    spherical = st.toggle("Spherical (slerp)", can_sample(model), help="Follow a great "
                          "circle instead of the straight line: a VAE's codes lie near a shell.")
    ia, ib = latent.nth_of_class(labels, a, ka), latent.nth_of_class(labels, b, kb)
    path = latent.interpolate(model, images[ia], images[ib], steps, spherical)
    ui.image_grid([images[ia], *path, images[ib]], [f"#{ia}", *[""] * steps, f"#{ib}"], scale=3)


def generate_tab(model, codes, labels):
    if not can_sample(model):
        st.info("Only a variational autoencoder can invent digits: choose **vae2d-2** or **vae-16** above.")
        return
    seed = st.number_input("Seed", 0, 10**6, 0)
    samples = latent.sample_prior(model, 16, seed)
    ui.image_grid(samples, scale=3)
    if model.code_size == 2:
        n = st.slider("Manifold grid size", 5, 25, 15)
        fig = manifold_figure(model, n)
        if st.toggle("Overlay the codes of 2,000 test digits", True):
            idx = latent.subset_indices(len(codes), 2000)
            fig.add_traces(scatter(latent.to_levels(codes[idx]).numpy(), idx, labels.numpy(), "").data)
        st.plotly_chart(fig, width="stretch")


def manifold_figure(model, n):
    """The decoded plane as one PNG placed on the same axes as the codes: its top-left
    cell is decode(z1 = lowest, z2 = highest), where Φ(z₁) is smallest and Φ(z₂) largest."""
    lo, hi = latent.manifold_extent(n)
    fig = go.Figure()
    fig.add_layout_image(source=ui.png_data_url(latent.tile(latent.manifold_grid(model, n), n)),
                         xref="x", yref="y", x=lo, y=hi, sizex=hi - lo, sizey=hi - lo,
                         xanchor="left", yanchor="top", sizing="stretch", layer="below")
    fig.update_xaxes(range=[lo, hi], title="Φ(z₁)", showgrid=False, zeroline=False)
    fig.update_yaxes(range=[lo, hi], title="Φ(z₂)", showgrid=False, zeroline=False,
                     scaleanchor="x", constrain="domain")
    fig.update_layout(height=700, title="Decoded plane at the Gaussian quantiles 5%…95%",
                      legend_title_text="digit", margin=dict(l=10, r=10, t=40, b=10))
    return fig


def explore_tab(key, model, codes, images, i):
    code = codes[i]
    dim = st.number_input(f"Dimension (0–{model.code_size - 1})", 0, model.code_size - 1, 0)
    lo, hi = latent.code_range(codes, dim)
    value = st.slider(f"z[{dim}] of test #{i} (was {code[dim]:.2f})", lo, hi, float(code[dim]),
                      key=f"z-{key}-{i}-{dim}")
    moved = latent.sweep(model, code, dim, [value])[0]
    ui.image_grid([images[i], model.reconstruct(images[i:i + 1])[0], moved],
                 ["input", "reconstruction", f"z[{dim}] = {value:.2f}"], scale=5)
    values = torch.linspace(lo, hi, 9)
    st.caption(f"z[{dim}] from {lo:.2f} to {hi:.2f} (1st to 99th percentile over the test codes):")
    ui.image_grid(latent.sweep(model, code, dim, values), [f"{v:.2f}" for v in values], scale=3)


models = ui.available_models(denoisers=False)
if not models:
    st.info("No model is available: train one on the **Train** page or restore the `weights/` folder.")
    st.stop()
names, (images, labels) = list(models), ui.test_set()
top = st.columns([3, 1])
label = top[0].selectbox("Model", names, index=names.index("vae2d-2") if "vae2d-2" in names else 0)
i = top[1].number_input("Test digit #", 0, len(images) - 1, key=INDEX,   # outside the tabs: kept
                        help="The digit shown on the map and moved in 'Move one dimension'.")
model = models[label]
key = (label, id(model))
codes = codes_of(key, model)
if can_sample(model):
    top[0].caption(f"**{label}**: negative ELBO **{nelbo_of(key, model):.1f} nats** per test digit "
                   "(its training objective; lower is better)", help=tooltip("nelbo"))
# lazy tabs: only the open one runs (its label is also the ?view= query parameter)
views = {"Map": lambda: map_tab(key, model, codes, images, labels, i),
         "Interpolate": lambda: interpolate_tab(model, images, labels),
         "Generate": lambda: generate_tab(model, codes, labels),
         "Move one dimension": lambda: explore_tab(key, model, codes, images, i)}
for tab, show in zip(st.tabs(list(views), key="view", bind="query-params"), views.values()):
    if tab.open:
        with tab:
            show()
