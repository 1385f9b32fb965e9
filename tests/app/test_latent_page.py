"""AppTest of pages/4_Latent_space.py: each tab (opened through its `view` key, as the
?view= query parameter does) for the 2-D VAE and for a plain autoencoder, the test-index
fallback for picking a point, and a weights folder without models."""
import base64
import json

import numpy as np
import pytest
import torch

import aecore
import ui
from aecore import latent
from aecore.shipped import WEIGHTS_ENV, shipped_models

PAGE = "pages/4_Latent_space.py"


@pytest.fixture(scope="module")
def shipped():
    return {s.name: s.model for s in shipped_models() if s.model is not None}


def captions(at):
    return [i.proto.imgs[0].caption for i in at.image]


def spec(chart):
    return json.loads(chart.proto.spec)


def values(array) -> np.ndarray:
    """A Plotly JSON array: a list, or a typed array {"dtype", "bdata": base64}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def points(chart) -> int:
    return sum(len(values(t["x"])) for t in spec(chart)["data"])


def test_map_of_the_2d_vae_plots_all_codes_directly(run_page, shipped, mnist_test):
    at = run_page(PAGE, latent_index=42)
    assert not at.exception and not at.error
    assert at.selectbox[0].value == "vae2d-2"
    assert at.radio[0].options[0] == "the 2-D code itself"
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    traces = spec(charts[0])["data"]
    assert [t["type"] for t in traces] == ["scattergl"] * 10
    assert points(charts[0]) == 10_000
    # the points of digit 3 are the codes of the test digits labelled 3
    images, labels = mnist_test
    codes = latent.encode_all(shipped["vae2d-2"], images[labels == 3])
    assert values(traces[3]["x"]) == pytest.approx(codes[:, 0].numpy(), abs=1e-5)
    # the fallback number input picks the digit shown with its reconstruction
    assert captions(at) == [f"test #42: a {labels[42].item()}", "reconstruction"]


def test_other_model_goes_through_pca(run_page):
    # (t-SNE, offered too, takes 10-30 s on 2,000 codes here: tests/test_latent.py covers it)
    at = run_page(PAGE)
    at.selectbox[0].select("simple-32").run()
    assert not at.exception
    assert at.radio[0].options == ["PCA (all 10,000)", "t-SNE (2,000 random digits, seeded)"]
    assert points(at.get("plotly_chart")[0]) == 10_000
    assert "PCA" in spec(at.get("plotly_chart")[0])["layout"]["title"]["text"]


def test_interpolation_strip(run_page, shipped, mnist_test):
    at = run_page(PAGE, view="Interpolate")
    assert not at.exception
    at.slider[0].set_value(5).run()
    images, labels = mnist_test
    ia, ib = latent.nth_of_class(labels, 1), latent.nth_of_class(labels, 7)
    assert captions(at) == [f"#{ia}", "", "", "", "", "", f"#{ib}"]   # input, 5 steps, input
    assert at.toggle[0].value is True                                 # slerp for a VAE


def test_generate_samples_and_manifold_for_the_2d_vae(run_page):
    at = run_page(PAGE, view="Generate")
    assert not at.exception
    assert len(at.image) == 16
    fig = spec(at.get("plotly_chart")[0])
    assert fig["data"][0]["type"] == "image" and fig["data"][0]["source"].startswith("data:image/png")
    assert [t["type"] for t in fig["data"][1:]] == ["scattergl"] * 10


def test_generate_explains_that_only_a_vae_samples(run_page):
    at = run_page(PAGE, view="Generate")
    at.selectbox[0].select("simple-32").run()
    assert not at.exception and len(at.image) == 0
    assert any("variational autoencoder" in i.value for i in at.info)


def test_moving_one_dimension(run_page, shipped, mnist_test):
    at = run_page(PAGE, view="Move one dimension", latent_index=7)
    assert not at.exception
    assert len(at.image) == 3 + 9
    slider = at.slider[0]
    model, images = shipped["vae2d-2"], mnist_test[0]
    z = latent.encode_all(model, images[7:8])[0]
    assert slider.value == pytest.approx(z[0].item(), abs=1e-4)
    slider.set_value(slider.min).run()
    assert captions(at)[2] == f"z[0] = {slider.min:.2f}"


@pytest.fixture
def empty_weights(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    ui.shipped.clear()
    yield
    monkeypatch.undo()
    ui.shipped.clear()


def test_no_models_gives_a_hint(run_page, empty_weights):
    at = run_page(PAGE)
    assert not at.exception
    assert any("No model is available" in i.value for i in at.info)


def test_a_session_model_is_offered(run_page, empty_weights):
    torch.manual_seed(0)
    model = aecore.create_model("simple", code_size=3).eval()
    at = run_page(PAGE, session_models={"tiny": model})
    assert not at.exception and at.selectbox[0].value == "tiny (this session)"
    assert len(at.get("plotly_chart")) == 1
