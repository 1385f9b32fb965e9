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
    """Captions of every picture, in order (an image grid is one element of many)."""
    return [img.caption for i in at.image for img in i.proto.imgs]


def pictures(at) -> int:
    return len(captions(at))


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
    assert pictures(at) == 16
    fig = spec(at.get("plotly_chart")[0])
    assert fig["layout"]["images"][0]["source"].startswith("data:image/png")
    assert [t["type"] for t in fig["data"]] == ["scattergl"] * 10


def test_generate_explains_that_only_a_vae_samples(run_page):
    at = run_page(PAGE, view="Generate")
    at.selectbox[0].select("simple-32").run()
    assert not at.exception and pictures(at) == 0
    assert any("variational autoencoder" in i.value for i in at.info)


def test_moving_one_dimension(run_page, shipped, mnist_test):
    at = run_page(PAGE, view="Move one dimension", latent_index=7)
    assert not at.exception
    assert pictures(at) == 3 + 9
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


def plane_cell(fig: dict, row: int, col: int, n: int) -> np.ndarray:
    """The 28x28 picture (0-255) of the manifold figure's layout image at cell (row, col)."""
    import io
    from PIL import Image
    source = fig["layout"]["images"][0]["source"]
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))), float)
    assert pixels.shape == (28 * n, 28 * n)
    return pixels[row * 28:(row + 1) * 28, col * 28:(col + 1) * 28]


def test_manifold_corners_match_the_axes(run_page, shipped):
    """Issue 15.2: the decoded plane was upside-down against the scatter of the codes.
    What is drawn at the top-left is decode(z1 = min, z2 = max), and the axes grow
    rightwards and upwards, as the codes' axes do."""
    at = run_page(PAGE, view="Generate")
    n = at.slider[0].value
    fig = spec(at.get("plotly_chart")[0])
    layout, image = fig["layout"], fig["layout"]["images"][0]
    lo, hi = latent.manifold_extent(n)
    for axis in ("xaxis", "yaxis"):
        assert layout[axis]["range"] == pytest.approx([lo, hi])        # increasing: up and right
        assert layout[axis].get("autorange") in (None, False)
    assert (image["xref"], image["yref"], image["xanchor"], image["yanchor"]) == ("x", "y", "left", "top")
    assert (image["x"], image["y"]) == pytest.approx((lo, hi))          # pinned at the top-left corner
    z = torch.special.ndtri(latent.manifold_levels(n)).float()
    model = shipped["vae2d-2"]
    for (row, col), code in {(0, 0): (z[0], z[-1]), (n - 1, n - 1): (z[-1], z[0]),
                             (0, n - 1): (z[-1], z[-1])}.items():
        expected = latent.decode(model, torch.stack(code).reshape(1, 2))[0, 0].numpy() * 255
        assert np.abs(plane_cell(fig, row, col, n) - expected).max() <= 1, (row, col)
    # and the overlaid test codes use the same coordinates: Phi(z)
    codes = latent.encode_all(model, ui.test_set()[0][:1])
    assert latent.to_levels(codes)[0, 1].item() == pytest.approx(
        float(torch.special.ndtr(codes[0, 1].double())))


def contrast(hex_colour: str, background: float) -> float:
    """WCAG contrast ratio of a colour against white (1.0) or black (0.0) luminance."""
    c = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    lum = float(c @ [0.2126, 0.7152, 0.0722])
    hi, lo = max(lum, background), min(lum, background)
    return (hi + 0.05) / (lo + 0.05)


def test_digit_palette_is_legible_on_white_and_on_black():
    assert len(set(ui.DIGIT_COLOURS)) == 10
    for colour in ui.DIGIT_COLOURS:
        assert contrast(colour, 1.0) >= 3 and contrast(colour, 0.0) >= 3, colour


def test_one_colour_per_digit_on_the_map_and_the_plane(run_page):
    """Issue 15.2: 0 was dark blue on the Map and light blue on Generate; 9 light grey."""
    map_traces = spec(run_page(PAGE).get("plotly_chart")[0])["data"]
    plane_traces = spec(run_page(PAGE, view="Generate").get("plotly_chart")[0])["data"]
    for traces in (map_traces, plane_traces):
        assert [t["name"] for t in traces] == [str(d) for d in range(10)]
        assert [t["marker"]["color"] for t in traces] == list(ui.DIGIT_COLOURS)


def test_a_vae_shows_its_negative_elbo_and_a_plain_model_none(run_page, shipped, mnist_test):
    """Issue 10: the VAE in its own currency, nats per test digit, as aecore.evaluation gives it."""
    from aecore.evaluation import evaluate
    at = run_page(PAGE)
    at.selectbox[0].select("vae-16").run()
    assert not at.exception
    expected = evaluate(shipped["vae-16"], mnist_test[0], metrics=("nelbo",))["nelbo"]
    assert f"**vae-16**: negative ELBO **{expected:.1f} nats** per test digit" in " ".join(c.value for c in at.caption)
    plain = next(name for name, m in shipped.items() if not hasattr(m, "negative_elbo") and not name.startswith("denoiser"))
    at.selectbox[0].select(plain).run()
    assert not at.exception and not any("negative ELBO" in c.value for c in at.caption)
