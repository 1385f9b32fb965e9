"""AppTest of pages/1_Draw.py: a drawing injected as the canvas component's value (its
session_state entry under the widget key, the shape the frontend sends), uploads, hints."""
import base64
import html
import io
import re

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
    """The shipped models the Draw page runs: the autoencoders (a U-Net has nothing to rebuild from)."""
    return [s.name for s in shipped_models() if s.is_autoencoder]


def grids(at) -> list[list[tuple[str, str]]]:
    """Each ui.digit_grid_html block: (image address, caption) per digit; the input, then the
    reconstructions."""
    return [re.findall(r'<img src="([^"]+)".*?<figcaption[^>]*>([^<]*)</figcaption>', h.value)
            for h in at.html if 'class="digit-grid"' in h.value]


def grid_captions(at) -> list[str]:
    """The captions under the reconstructions (html-escaped text, as in the page)."""
    return [html.unescape(caption) for _, caption in grids(at)[-1]]


def texts(elements):
    return [e.value for e in elements]


def test_drawing_gives_a_reconstruction_per_model(run_page, usable_models):
    at = run_page(PAGE, **{CANVAS_KEY: canvas_value(seven())})
    assert not at.exception and not at.error
    drawing = at.session_state["drawing"]
    assert drawing.shape == (28, 28) and drawing.dtype == np.float32
    np.testing.assert_array_equal(drawing, to_mnist(np.asarray(seven())))
    assert [len(grid) for grid in grids(at)][:1] == [1] and len(grids(at)) == 2   # the input, then all models
    captions = grid_captions(at)
    assert len(captions) == len(usable_models)
    for name, caption in zip(usable_models, captions):
        assert caption.startswith(f"{name} · MSE 0.") and caption.endswith(" dB")
    assert at.selectbox[0].options == usable_models  # whose code the chart shows
    assert sum(h.value.count('class="svg-chart"') for h in at.html) == 1   # the code chart (ui.bar_chart_svg)


def test_code_chart_follows_the_selected_model(run_page, usable_models):
    if len(usable_models) < 2:
        pytest.skip("needs two shipped models")
    at = run_page(PAGE, **{CANVAS_KEY: canvas_value(seven())})
    at.selectbox[0].select(usable_models[1]).run()
    assert not at.exception
    [chart] = [h.value for h in at.html if 'class="svg-chart"' in h.value]
    assert f"code of {usable_models[1]}" in chart


def test_empty_canvas_gives_a_hint(run_page):
    at = run_page(PAGE)
    assert not at.exception and not at.error
    assert any("Draw a digit" in t for t in texts(at.info))
    assert "drawing" not in at.session_state
    assert len(grids(at)) == 0


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
    assert len(grids(at)) == 0


def test_blank_upload_shows_a_hint(run_page):
    at = upload(run_page, "blank.png", png(Image.new("RGB", (120, 90), "white")))
    assert not at.error
    assert any("looks blank" in t for t in texts(at.info))


def test_dark_on_light_jpeg_upload_is_reconstructed(run_page, usable_models):
    photo = seven(background=(250, 250, 245, 255), ink=(20, 20, 30, 255)).convert("RGB")
    at = upload(run_page, "seven.jpg", png(photo, "JPEG"), "image/jpeg")
    assert not at.error
    assert len(grid_captions(at)) == len(usable_models)
    assert np.corrcoef(at.session_state["drawing"].ravel(), to_mnist(np.asarray(seven())).ravel())[0, 1] > 0.95


def test_models_trained_in_this_session_are_included(run_page, usable_models):
    import aecore
    mine = aecore.create_model("simple", code_size=8).eval()
    at = run_page(PAGE, session_models={"mine": mine}, **{CANVAS_KEY: canvas_value(seven())})
    assert not at.exception
    assert len(grid_captions(at)) == 1 + len(usable_models)
    assert grid_captions(at)[-1].startswith("mine (this session) · MSE")
    assert "mine (this session)" in at.selectbox[0].options


def test_every_reconstruction_has_the_same_size_in_one_element(run_page, usable_models):
    """Issue 15.12: the 7th model sat alone on a second row at a bigger size."""
    at = run_page(PAGE, **{CANVAS_KEY: canvas_value(seven())})
    assert len(grids(at)[-1]) == len(usable_models) >= 7   # one block: one width for all
    assert len(set(re.findall(r'<img [^>]*width="(\d+)"', [h.value for h in at.html if 'digit-grid' in h.value][-1]))) == 1


def test_timing_caption_says_it_is_server_compute(run_page):
    """Issue 15.4: "Preprocessing and 7 models took 194 ms" read as the user's wait."""
    at = run_page(PAGE, **{CANVAS_KEY: canvas_value(seven())})
    caption = next(t for t in texts(at.caption) if " ms" in t)
    assert caption.startswith("Server compute only:") and "round trip" in caption


def letter_a() -> Image.Image:
    img = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    draw = ImageDraw.Draw(img)
    draw.line([(70, 240), (140, 40), (210, 240)], fill=(255, 255, 255, 255), width=20, joint="curve")
    draw.line([(100, 160), (180, 160)], fill=(255, 255, 255, 255), width=20)
    return img


def test_a_digit_is_called_a_digit(run_page):
    """Issue 15.14: the app says whether the drawing looks like an MNIST digit."""
    at = run_page(PAGE, **{CANVAS_KEY: canvas_value(seven())})
    assert not at.warning
    assert any(t.startswith("**Looks like a digit**") and "% of the 10,000 test digits" in t
               for t in texts(at.success))


def test_a_letter_is_called_unlike_mnist(run_page):
    at = run_page(PAGE, **{CANVAS_KEY: canvas_value(letter_a())})
    assert not at.exception and not at.success
    assert any("Unlike anything in MNIST" in t for t in texts(at.warning)), texts(at.warning)


def test_stroke_width_is_a_control_without_delay(run_page):
    """Issue 15.8: the width reaches the canvas on the click's own rerun (a slider sends
    its value 0.2 s late, so a Clear or a stroke in that window used the old width)."""
    at = run_page(PAGE)
    assert not at.slider
    next(r for r in at.radio if r.label == "Stroke width").set_value(40).run()
    assert canvas_props(at)["strokeWidth"] == 40
    at.button[0].click().run()          # Clear: a new canvas, with the new width
    assert canvas_props(at)["strokeWidth"] == 40


def canvas_props(at) -> dict:
    import json
    return json.loads(at.get("bidi_component")[0].proto.json)
