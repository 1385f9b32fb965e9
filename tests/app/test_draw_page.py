"""AppTest of pages/1_Draw.py: a drawing injected as the canvas component's value (its
session_state entry under the widget key, the shape the frontend sends), uploads, hints."""
import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from aecore.preprocess import to_mnist
from aecore.shipped import shipped_models

PAGE = "pages/1_Draw.py"
CANVAS_KEY = "draw_canvas_0"   # the page's canvas key before any Clear


def seven(background=(0, 0, 0, 255), ink=(255, 255, 255, 255)) -> Image.Image:
    img = Image.new("RGBA", (280, 280), background)
    ImageDraw.Draw(img).line([(80, 60), (200, 60), (120, 230)], fill=ink, width=20, joint="curve")
    return img


def png(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def canvas_value(img: Image.Image) -> dict:
    """What streamlit-drawable-canvas 0.13 stores for its key: {"drawing": {"raw", "data"}}."""
    url = "data:image/png;base64," + base64.b64encode(png(img)).decode()
    return {"drawing": {"raw": {"version": "7.0.0", "objects": [{"type": "Path"}]}, "data": url}}


@pytest.fixture(scope="module")
def usable_models():
    return [s.name for s in shipped_models() if s.model is not None]


def texts(elements):
    return [e.value for e in elements]


def test_drawing_gives_a_reconstruction_per_model(run_page, usable_models):
    at = run_page(PAGE, **{CANVAS_KEY: canvas_value(seven())})
    assert not at.exception and not at.error
    drawing = at.session_state["drawing"]
    assert drawing.shape == (28, 28) and drawing.dtype == np.float32
    np.testing.assert_array_equal(drawing, to_mnist(np.asarray(seven())))
    assert len(at.image) == 1 + len(usable_models)  # the 28x28 input, then one per model
    captions = [i.proto.imgs[0].caption for i in at.image[1:]]
    for name, caption in zip(usable_models, captions):
        assert caption.startswith(f"{name} · MSE 0.") and caption.endswith(" dB")
    assert at.selectbox[0].options == usable_models  # whose code the chart shows
    assert len(at.get("plotly_chart")) == 1


def test_code_chart_follows_the_selected_model(run_page, usable_models):
    if len(usable_models) < 2:
        pytest.skip("needs two shipped models")
    at = run_page(PAGE, **{CANVAS_KEY: canvas_value(seven())})
    at.selectbox[0].select(usable_models[1]).run()
    assert not at.exception
    chart = at.get("plotly_chart")[0].proto.spec
    assert f"code of {usable_models[1]}" in chart


def test_empty_canvas_gives_a_hint(run_page):
    at = run_page(PAGE)
    assert not at.exception and not at.error
    assert any("Draw a digit" in t for t in texts(at.info))
    assert "drawing" not in at.session_state
    assert len(at.image) == 0


def test_clear_empties_the_canvas_and_forgets_the_drawing(run_page):
    at = run_page(PAGE, **{CANVAS_KEY: canvas_value(seven())})
    assert "drawing" in at.session_state
    at.button[0].click().run()
    assert "drawing" not in at.session_state
    assert any("Draw a digit" in t for t in texts(at.info))


def upload(run_page, name, data, mime="image/png"):
    at = run_page(PAGE)
    at.radio[0].set_value("Upload a picture").run()
    at.file_uploader[0].set_value((name, data, mime)).run()
    assert not at.exception
    return at


def test_bad_upload_shows_an_error(run_page):
    at = upload(run_page, "digit.png", b"this is not an image")
    assert any("` digit.png `" in t and "not a PNG" in t for t in texts(at.error))  # name as code: literal
    assert len(at.image) == 0


def test_blank_upload_shows_a_hint(run_page):
    at = upload(run_page, "blank.png", png(Image.new("RGB", (120, 90), "white")))
    assert not at.error
    assert any("looks blank" in t for t in texts(at.info))


def test_dark_on_light_jpeg_upload_is_reconstructed(run_page, usable_models):
    photo = seven(background=(250, 250, 245, 255), ink=(20, 20, 30, 255)).convert("RGB")
    at = upload(run_page, "seven.jpg", png(photo, "JPEG"), "image/jpeg")
    assert not at.error
    assert len(at.image) == 1 + len(usable_models)
    assert np.corrcoef(at.session_state["drawing"].ravel(), to_mnist(np.asarray(seven())).ravel())[0, 1] > 0.95


def test_models_trained_in_this_session_are_included(run_page, usable_models):
    import aecore
    mine = aecore.create_model("simple", code_size=8).eval()
    at = run_page(PAGE, session_models={"mine": mine}, **{CANVAS_KEY: canvas_value(seven())})
    assert not at.exception
    assert len(at.image) == 2 + len(usable_models)
    assert at.image[-1].proto.imgs[0].caption.startswith("mine (this session) · MSE")
    assert "mine (this session)" in at.selectbox[0].options
