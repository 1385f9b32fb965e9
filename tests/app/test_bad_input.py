"""Bad input through the pages (AppTest): each case gets a clear, specific message, never a
stack trace, and the page keeps working: a good drawing sent right after is reconstructed.

Canvas: what streamlit-drawable-canvas 0.13 sends (its value under the widget key), also
forged messages a client could send over the websocket. Uploads on Draw: broken, hostile
and unusual image files. Train: checkpoint uploads not in tests/app/test_train_page.py,
out-of-range settings in session state and in the URL."""
import base64
import io
import re
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

import aecore
from aecore.checkpoint import checkpoint_bytes, checkpoint_dict
from aecore.models import recommended_lr
from aecore.preprocess import FIT, to_mnist
from aecore.shipped import shipped_models
import ui
from tests.app.test_draw_page import grid_captions, grids
from tests.conftest import ROOT

DRAW, TRAIN = "pages/1_Draw.py", "pages/3_Train.py"
pytestmark = pytest.mark.usefixtures("idle_scheduler")   # every test ends with no training left

CANVAS_KEY = "draw_canvas_0"   # the Draw page's canvas key before any Clear
SEVEN = [(80, 60), (200, 60), (120, 230)]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def seven(width=20, background=(0, 0, 0, 255), ink=(255, 255, 255, 255), size=(280, 280), mode="RGBA"):
    img = Image.new(mode, size, background)
    scale = size[0] / 280
    ImageDraw.Draw(img).line([(x * scale, y * scale) for x, y in SEVEN], fill=ink,
                             width=max(1, round(width * scale)), joint="curve")
    return img


REFERENCE = to_mnist(np.asarray(seven()))


def encode(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def canvas_value(data_url, objects=({"type": "Path"},)) -> dict:
    return {"drawing": {"raw": {"version": "7.0.0", "objects": list(objects)}, "data": data_url}}


def drawn(img: Image.Image) -> dict:
    return canvas_value("data:image/png;base64," + base64.b64encode(encode(img)).decode())


def corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def bomb_png(width=30000, height=30000) -> bytes:
    """A valid PNG header claiming width x height pixels with a tiny body."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def usable():
    return [s.name for s in shipped_models() if s.is_autoencoder]   # the Draw page offers these (ui.available_models)


def assert_reconstructed(at: AppTest, usable) -> np.ndarray:
    """The page shows the 28x28 input and one reconstruction per model; returns the input."""
    assert not at.exception and not at.error, texts(at.error)
    assert len(grids(at)) == 2   # the 28x28 input, then one grid of every reconstruction
    captions = grid_captions(at)
    assert len(captions) == len(usable) and captions[0].startswith(f"{usable[0]} · MSE")
    return at.session_state["drawing"]


def assert_recovers(at: AppTest, usable) -> None:
    """After a bad input, a good drawing still works in the same session."""
    at.session_state[CANVAS_KEY] = drawn(seven())
    at.run()
    np.testing.assert_array_equal(assert_reconstructed(at, usable), REFERENCE)


# --------------------------------------------------------------------------- canvas

@pytest.mark.parametrize("value", [
    None,  # nothing sent yet: the canvas's default value
    canvas_value(None, objects=()),  # after Clear
    canvas_value(drawn(Image.new("RGBA", (280, 280), "black"))["drawing"]["data"], objects=()),  # all undone
], ids=["untouched", "cleared", "black-png"])
def test_empty_canvas_gives_a_hint_not_an_error(run_page, usable, value):
    at = run_page(DRAW, **({} if value is None else {CANVAS_KEY: value}))
    assert not at.exception and not at.error
    assert texts(at.info) == ["Draw a digit on the black canvas, with the mouse or a finger."]
    assert len(grids(at)) == 0 and "drawing" not in at.session_state
    assert_recovers(at, usable)


def test_canvas_filled_all_over_says_there_is_no_digit(run_page, usable):
    at = run_page(DRAW, **{CANVAS_KEY: drawn(Image.new("RGBA", (280, 280), "white"))})
    assert not at.exception and not at.error
    assert texts(at.info) == ["No digit found: the strokes cover the canvas evenly. Press Clear and draw "
                              "one digit."]
    assert len(grids(at)) == 0
    assert_recovers(at, usable)


@pytest.mark.parametrize("box", [(100, 100, 106, 106), (150, 40, 150, 40)], ids=["6px-dot", "1px-dot"])
def test_a_single_dot_becomes_a_centred_blob(run_page, usable, box):
    """A click without moving (6 px: the thinnest stroke) or one pixel (a hand-made client)."""
    img = Image.new("RGBA", (280, 280), "black")
    ImageDraw.Draw(img).ellipse(box, fill="white") if box[2] > box[0] else img.putpixel(box[:2], (255,) * 4)
    digit = assert_reconstructed(run_page(DRAW, **{CANVAS_KEY: drawn(img)}), usable)
    ys, xs = np.nonzero(digit > 0.5)
    assert abs(ys.mean() - 14) <= 1.5 and abs(xs.mean() - 14) <= 1.5
    assert np.isfinite(digit).all() and digit.max() == pytest.approx(1.0)


@pytest.mark.parametrize("width", [1, 6, 40, 120], ids=lambda w: f"{w}px")
def test_extreme_stroke_widths_are_fitted_like_mnist(run_page, usable, width):
    """Slider range is 6-40 px; 1 and 120 px come from a hand-made client. The stroke's
    bounding box is scaled to MNIST's 20 px whatever its width."""
    digit = assert_reconstructed(run_page(DRAW, **{CANVAS_KEY: drawn(seven(width))}), usable)
    rows, cols = np.nonzero(digit > 0.05)
    assert max(rows.ptp(), cols.ptp()) + 1 in (FIT - 1, FIT, FIT + 1, FIT + 2)


@pytest.mark.parametrize("data_url, reason", [
    ("data:image/png;base64,AAAA", "not a PNG, JPEG"),
    ("data:image/png;base64," + base64.b64encode(bomb_png()).decode(), "too many pixels"),
    ("data:image/png;base64," + base64.b64encode(encode(Image.new("L", (5000, 4000)))).decode(),
     "image is 5000x4000 pixels; the limit is 16,777,216 pixels"),
    ("data:image/png;base64," + base64.b64encode(encode(seven())[:900]).decode(), "truncated or corrupt"),
    ("not a data url", "the canvas sent malformed data"),
    ("data:image/png;base64,@@@", "not a PNG, JPEG"),  # b64decode drops what is not base64
    (5, "the canvas sent malformed data"),
    ({"drawing": 5}, "the canvas sent malformed data"),  # the whole value, not just the PNG
], ids=["not-png", "bomb", "too-many-pixels", "truncated", "no-base64", "bad-base64", "data-5", "drawing-5"])
def test_forged_canvas_messages_are_refused_with_a_reason(run_page, usable, data_url, reason):
    """A client can put anything in the canvas value; it is decoded with the upload's limits."""
    value = data_url if isinstance(data_url, dict) else canvas_value(data_url)
    at = run_page(DRAW, **{CANVAS_KEY: value})
    assert not at.exception
    [error] = texts(at.error)
    assert error.startswith("Cannot read the drawing: ") and reason in error, error
    assert len(grids(at)) == 0
    assert_recovers(at, usable)


# --------------------------------------------------------------------------- uploads

def dark_on_light_photo() -> bytes:
    """A phone photo of a digit on paper: dark ink, uneven light, sensor noise, JPEG."""
    rng = np.random.default_rng(0)
    ink = np.asarray(seven(width=24, size=(600, 600), mode="L", background=0, ink=255), np.float32) / 255
    ys, xs = np.indices(ink.shape) / 600
    light = 0.55 + 0.4 * xs - 0.1 * (ys - 0.5) ** 2
    photo = light * (0.92 - 0.7 * ink) + rng.normal(0, 0.03, ink.shape)
    rgb = np.stack([photo, photo * 0.96, photo * 0.88], axis=-1)
    return encode(Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)), "JPEG", quality=85)


def animated_gif() -> bytes:
    first = seven(mode="L", background=0, ink=255)
    second = Image.new("L", first.size, 255)   # a later frame that would be blank
    return encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def sixteen_bit_png() -> bytes:
    ink = np.asarray(seven(mode="L", background=0, ink=255), np.uint16)
    return encode(Image.fromarray((65535 - ink * 200).astype(np.uint16)))  # dark on light, I;16


def transparent_png() -> bytes:
    return encode(seven(background=(0, 0, 0, 0), ink=(20, 20, 20, 255)))  # black ink, no background


GOOD_UPLOADS = {   # name: (file name, bytes); each must give a digit like REFERENCE
    "photo on paper (dark on light)": ("photo.jpg", dark_on_light_photo),
    "animated GIF (first frame)": ("anim.png", animated_gif),
    "16-bit grey PNG": ("scan16.png", sixteen_bit_png),
    "CMYK JPEG": ("print.jpg", lambda: encode(seven(mode="RGB").convert("CMYK"), "JPEG", quality=95)),
    "palette PNG": ("palette.png", lambda: encode(seven(mode="RGB").convert("P"))),
    "transparent PNG": ("cutout.png", transparent_png),
    "huge but light PNG": ("big.png", lambda: encode(seven(size=(4000, 4000), mode="L", background=0,
                                                          ink=255), optimize=True)),
}

BAD_UPLOADS = {   # name: (file name, bytes, the message's reason)
    "not an image": ("digit.png", lambda: b"%PDF-1.7 this is a PDF", "not a PNG, JPEG, GIF, BMP, WEBP or TIFF"),
    "truncated PNG": ("cut.png", lambda: encode(seven())[:-300], "truncated or corrupt"),
    "empty file": ("empty.png", lambda: b"", "not a PNG, JPEG"),
    "decompression bomb": ("bomb.png", bomb_png, "pixels"),
    "over the pixel limit": ("wide.png", lambda: encode(Image.new("1", (20000, 1000))),
                             "image is 20000x1000 pixels; the limit is 16,777,216 pixels"),
    "over the size limit": ("big.jpg", lambda: b"\xff\xd8" + bytes(6_000_000), "file is 6 MB; the limit is 5 MB"),
    "EPS (a format that runs Ghostscript)": ("x.png", lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
                                             "not a PNG, JPEG"),
}


def upload(run_page, name: str, data: bytes) -> AppTest:
    at = run_page(DRAW)
    at.radio[0].set_value("Upload a picture").run()
    at.file_uploader[0].set_value((name, data, "image/png")).run()
    assert not at.exception
    return at


@pytest.mark.parametrize("case", GOOD_UPLOADS)
def test_unusual_images_are_understood(run_page, usable, case):
    name, make = GOOD_UPLOADS[case]
    digit = assert_reconstructed(upload(run_page, name, make()), usable)
    assert corr(digit, REFERENCE) > 0.9


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_uploads_name_the_file_and_the_reason(run_page, usable, case):
    name, make, reason = BAD_UPLOADS[case]
    at = upload(run_page, name, make())
    [error] = texts(at.error)
    assert shown_name(error) == name and reason in error, error
    assert len(grids(at)) == 0 and "drawing" not in at.session_state
    at.file_uploader[0].set_value(("seven.png", encode(seven()), "image/png")).run()  # the next file works
    np.testing.assert_array_equal(assert_reconstructed(at, usable), REFERENCE)


def test_blank_upload_says_so(run_page):
    at = upload(run_page, "white.png", encode(Image.new("RGB", (300, 200), "white")))
    assert not at.error
    [info] = texts(at.info)
    assert info == "` white.png ` looks blank: no digit found in it."


def shown_name(message: str) -> str:
    """The file name in a message, which must show it as a Markdown code span ("`name`",
    with a longer fence if the name has backticks): code spans never format or link."""
    m = re.search(r"(`+) (.*?) \1(?!`)", message)
    assert m, message
    return m[2]


@pytest.mark.parametrize("name", ["my_digit_*7*.png", "[click](javascript:alert(1)).png", "<b>x</b>.png",
                                  "![x](http://example.com/t).png", "a `b` ``c``.png"])
def test_file_names_are_shown_literally_not_as_markdown(run_page, name):
    """A file name is user input: markdown in it must not format, link or load anything."""
    at = upload(run_page, name, b"not an image")
    [error] = texts(at.error)
    assert shown_name(error) == name
    assert error.startswith("Cannot use `") and error.endswith(": not a PNG, JPEG, GIF, BMP, WEBP or TIFF image.")


# --------------------------------------------------------------------------- checkpoint uploads (Train)

def retagged(name: str, **config) -> bytes:
    """A checkpoint whose header claims `name`/`config` while its weights are a simple-32's."""
    ckpt = checkpoint_dict(aecore.create_model("simple", code_size=32))
    ckpt.update(model=name, config=config)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


def other_version() -> bytes:
    ckpt = checkpoint_dict(aecore.create_model("simple", code_size=4))
    ckpt["version"] = 99
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


BAD_CHECKPOINTS = {  # not in tests/app/test_train_page.py
    "another architecture": (lambda: retagged("conv", code_size=196), "do not fit a conv model"),
    "another code size": (lambda: retagged("simple", code_size=16), "do not fit a simple model"),
    "unknown architecture": (lambda: retagged("resnet50"), "cannot rebuild the model"),
    "unknown format version": (other_version, "format version 99 is not supported"),
    "a PNG renamed .pt": (lambda: encode(seven()), "not a checkpoint file"),
}


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_bad_checkpoint_uploads_are_refused_with_the_reason(run_page, case):
    make, reason = BAD_CHECKPOINTS[case]
    at = run_page(TRAIN)
    at.file_uploader(key="train_upload").upload("bad.pt", make()).run()
    assert not at.exception
    [error] = texts(at.error)
    assert error.startswith("Cannot use this checkpoint. bad.pt: ") and reason in error, error
    assert not at.session_state["session_models"] if "session_models" in at.session_state else True
    good = checkpoint_bytes(aecore.create_model("simple", code_size=4))
    at.file_uploader(key="train_upload").upload("good.pt", good).run()   # the next one loads
    assert not at.error and "good" in at.session_state["session_models"]


@pytest.mark.parametrize("good", [True, False], ids=["loaded", "refused"])
def test_checkpoint_file_names_are_shown_literally(run_page, good):
    name = "my_[notes](http://example.com)_*7*.pt"
    data = checkpoint_bytes(aecore.create_model("simple", code_size=4)) if good else b"not a checkpoint"
    at = run_page(TRAIN)
    at.file_uploader(key="train_upload").upload(name, data).run()
    assert not at.exception
    [message] = texts(at.success if good else at.error)
    outside_code = re.sub(r"(`+) .*? \1(?!`)", "", message)
    assert "](" not in outside_code and "*7*" not in outside_code, message


# --------------------------------------------------------------------------- training settings (Train)

@pytest.mark.parametrize("key, value, message", [   # test_train_page.py has the first few of each
    ("train_lr_simple", float("nan"), "lr must be a number from 1e-06 to 1, got nan"),
    ("train_lr_simple", -0.01, "lr must be a number from 1e-06 to 1, got -0.01"),
    ("train_lr_simple", float("inf"), "lr must be a number from 1e-06 to 1, got inf"),
    ("train_epochs", 10**9, "epochs must be an integer from 1 to 1000, got 1000000000"),
    ("train_epochs", 2.5, "epochs must be an integer from 1 to 1000, got 2.5"),
    ("train_epochs", True, "epochs must be an integer"),
    ("train_batch_size", 0, "batch_size must be an integer from 1 to 4096, got 0"),
    ("train_batch_size", 10**6, "batch_size must be an integer from 1 to 4096, got 1000000"),
    ("train_code_size_simple", 3, "code size must be one of 2, 4, 8, 16, 32, 64, 128, got 3"),
    ("train_code_size_simple", 10**6, "code size must be one of"),
    ("train_noise_level", 5.0, "noise_level must be a number from 0 to 1, got 5.0"),
    ("train_test_size", 0, "test_size must be a positive integer, got 0"),
])
def test_out_of_range_settings_in_session_state_are_reset_with_a_message(run_page, key, value, message):
    at = run_page(TRAIN, **{key: value})
    assert not at.exception
    assert [e for e in texts(at.error) if message in e], texts(at.error)
    [start] = [b for b in at.button if b.label == "Start training"]   # still usable, with defaults
    assert key not in at.session_state or at.session_state[key] != value


def test_settings_typed_into_the_url_change_nothing(usable):
    """No training setting is bound to the URL: ?train_lr=5&... leaves the defaults."""
    at = AppTest.from_file(str(ROOT / TRAIN), default_timeout=60)
    for key, value in {"train_lr_simple": "5", "train_epochs": "0", "train_batch_size": "-1",
                       "train_model": "resnet", "train_code_size_simple": "3"}.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception and not at.error
    assert at.number_input(key="train_lr_simple").value == recommended_lr("simple")
    assert at.number_input(key="train_epochs").value == ui.TRAIN_DEFAULTS["epochs"]
    assert at.number_input(key="train_batch_size").value == ui.TRAIN_DEFAULTS["batch_size"]
    assert at.selectbox(key="train_model").value == ui.TRAIN_DEFAULTS["model"]
