"""Tests for aecore.preprocess: drawings/photos -> MNIST layout, and safe uploads."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from aecore.preprocess import FIT, MNIST_SIZE, ImageError, load_image, to_mnist

SEVEN = [(80, 60), (200, 60), (120, 230)]  # polyline of a "7" on a 280x280 canvas


# ---------------------------------------------------------------- helpers

def draw(mode="L", size=(280, 280), background=0, ink=255, points=SEVEN, width=20):
    img = Image.new(mode, size, background)
    ImageDraw.Draw(img).line(points, fill=ink, width=width, joint="curve")
    return img


def canvas_seven(ink=(255, 255, 255, 255)):
    """What streamlit-drawable-canvas returns with a transparent background."""
    return draw("RGBA", background=(0, 0, 0, 0), ink=ink)


def reference():
    return to_mnist(draw())  # white 7 on black, the easy case


def corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def ink_box(out, level=0.05):
    ys, xs = np.nonzero(out > level)
    return ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


def centre_of_mass(out):
    ys, xs = np.indices(out.shape)
    return (ys * out).sum() / out.sum(), (xs * out).sum() / out.sum()


def assert_mnist_like(out):
    assert out is not None
    assert out.shape == (MNIST_SIZE, MNIST_SIZE)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() == pytest.approx(1.0)


def png_bytes(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


# ---------------------------------------------------------------- to_mnist: layout

@pytest.mark.parametrize("ink", [(255, 255, 255, 255), (0, 0, 0, 255), (200, 30, 30, 255)],
                         ids=["white", "black", "red"])
def test_canvas_drawing_is_fitted_and_centred(ink):
    out = to_mnist(canvas_seven(ink))
    assert_mnist_like(out)
    assert max(ink_box(out)) in (FIT - 1, FIT, FIT + 1)
    cy, cx = centre_of_mass(out)
    assert abs(cy - MNIST_SIZE / 2) <= 1 and abs(cx - MNIST_SIZE / 2) <= 1
    assert corr(out, reference()) > 0.99


def test_canvas_where_only_alpha_carries_ink():
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = np.asarray(draw())  # rgb stays 0 even under the stroke
    assert corr(to_mnist(rgba), reference()) > 0.99


def test_wide_bar_keeps_its_aspect_ratio():
    bar = np.zeros((280, 280), np.float32)
    bar[120:150, 40:240] = 1.0  # 200 x 30
    height, width = ink_box(to_mnist(bar))
    assert width in (FIT - 1, FIT)
    assert 2 <= height <= 5


def test_digit_touching_the_border_matches_one_with_margin():
    arr = np.asarray(draw())
    rows, cols = np.flatnonzero(arr.any(axis=1)), np.flatnonzero(arr.any(axis=0))
    touching = arr[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # ink on all four edges
    out = to_mnist(touching)
    assert_mnist_like(out)
    assert corr(out, reference()) > 0.97


@pytest.mark.parametrize("resample, min_corr", [
    (Image.Resampling.NEAREST, 0.99), (Image.Resampling.BICUBIC, 0.95)], ids=["nearest", "bicubic"])
def test_round_trip_of_an_mnist_layout_digit(resample, min_corr):
    # A smooth upscale blurs edges by a fraction of a pixel, which moves the crop
    # off the original pixel grid: thin strokes then smear a little, hence the lower bar.
    digit = reference()
    big = Image.fromarray((digit * 255).astype(np.uint8)).resize((280, 280), resample)
    again = to_mnist(big)
    assert_mnist_like(again)
    assert ink_box(again) == ink_box(digit)
    assert corr(again, digit) > min_corr


def test_mnist_layout_input_is_a_fixed_point():
    digit = reference()
    assert np.abs(to_mnist(digit) - digit).max() < 0.02


def test_single_pixel_dot_gives_a_blob_not_an_error():
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[100, 150] = 255
    out = to_mnist(canvas)
    assert_mnist_like(out)
    assert np.isfinite(out).all()


def test_small_round_dot_becomes_a_centred_disc():
    img = Image.new("L", (280, 280))
    ImageDraw.Draw(img).ellipse((40, 200, 52, 212), fill=255)
    out = to_mnist(img)
    assert_mnist_like(out)
    assert max(ink_box(out)) in (FIT - 1, FIT, FIT + 1)
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


# ---------------------------------------------------------------- to_mnist: no ink

@pytest.mark.parametrize("image", [
    np.zeros((280, 280, 4), np.uint8),  # empty transparent canvas
    Image.new("RGBA", (280, 280), (255, 255, 255, 255)),  # canvas painted all over: no contrast
    Image.new("RGB", (50, 80), (128, 128, 128)),
    np.ones((28, 28), bool),
    np.zeros((0, 0)),
], ids=["empty-canvas", "filled-canvas", "uniform-grey", "all-true", "zero-size"])
def test_no_ink_gives_none(image):
    assert to_mnist(image) is None


def test_blank_noisy_paper_photo_gives_none():
    rng = np.random.default_rng(0)
    paper = np.clip(0.8 + rng.normal(0, 0.04, (300, 400, 3)), 0, 1)
    assert to_mnist((paper * 255).astype(np.uint8)) is None


# ---------------------------------------------------------------- to_mnist: input kinds

def test_dark_on_light_noisy_photo_matches_light_on_dark():
    rng = np.random.default_rng(1)
    digit = np.asarray(draw(), np.float32) / 255
    photo = 0.85 - 0.65 * digit + rng.normal(0, 0.04, digit.shape)  # grey paper, dark ink, noise
    photo = np.stack([photo, photo * 0.97, photo * 0.9], axis=-1)  # warm-tinted light
    out = to_mnist((np.clip(photo, 0, 1) * 255).astype(np.uint8))
    assert_mnist_like(out)
    assert corr(out, reference()) > 0.95


@pytest.mark.parametrize("lighting", ["left-to-right", "vignette"])
def test_unevenly_lit_paper_photo(lighting):
    rng = np.random.default_rng(2)
    digit = np.asarray(draw(), np.float32) / 255
    ys, xs = np.indices(digit.shape) / 280
    if lighting == "left-to-right":
        light = 0.3 + 0.65 * xs
    else:
        light = 0.95 - 0.5 * ((xs - 0.5) ** 2 + (ys - 0.5) ** 2)
    photo = light * (0.9 - 0.75 * digit) + rng.normal(0, 0.03, digit.shape)  # paper reflects light
    out = to_mnist((np.clip(photo, 0, 1) * 255).astype(np.uint8))
    assert_mnist_like(out)
    assert corr(out, reference()) > 0.95


@pytest.mark.parametrize("convert", [
    lambda im: im,  # L
    lambda im: im.convert("RGB"),
    lambda im: im.convert("P"),
    lambda im: im.convert("CMYK"),
    lambda im: im.convert("1"),
    lambda im: Image.fromarray(np.asarray(im).astype(np.uint16) * 257),  # I;16
    lambda im: im.convert("I"),
    lambda im: im.convert("F"),
    lambda im: Image.merge("LA", [Image.new("L", im.size, 0), im]),  # black ink in alpha
    lambda im: Image.merge("LA", [im, Image.new("L", im.size, 255)]),  # opaque LA
], ids=["L", "RGB", "P", "CMYK", "1", "I;16", "I", "F", "LA-alpha-ink", "LA-opaque"])
def test_pil_modes_agree(convert):
    img = convert(draw())
    assert corr(to_mnist(img), reference()) > 0.97


def test_palette_with_transparency_uses_alpha():
    img = canvas_seven((0, 0, 0, 255)).convert("P")
    img.info["transparency"] = img.getpixel((0, 0))
    assert img.has_transparency_data
    assert corr(to_mnist(img), reference()) > 0.97


def test_transparent_sheet_with_dark_digit():
    sheet = draw("RGBA", background=(240, 240, 235, 255), ink=(20, 20, 20, 255))
    corners = ImageDraw.Draw(sheet)
    for x, y in [(0, 0), (250, 0), (0, 250), (250, 250)]:
        corners.rectangle((x, y, x + 29, y + 29), fill=(0, 0, 0, 0))  # cut-away corners
    assert corr(to_mnist(sheet), reference()) > 0.97


@pytest.mark.parametrize("make", [
    lambda a: a.astype(np.float32) / 255,
    lambda a: a.astype(np.float64)[..., None] / 255,
    lambda a: a > 127,
    lambda a: a.astype(np.uint16) * 257,
    lambda a: a.astype(np.int64),  # 0-255 in numpy's default int
    lambda a: np.repeat(a[..., None], 3, axis=-1),
    lambda a: 255 - np.repeat(a[..., None], 3, axis=-1),  # dark on light
], ids=["float32", "float64-HW1", "bool", "uint16", "int64", "uint8-rgb", "uint8-rgb-inverted"])
def test_numpy_inputs_agree(make):
    arr = make(np.asarray(draw()))
    assert corr(to_mnist(arr), reference()) > 0.97


def test_large_photo_is_downscaled_and_still_works():
    big = draw(size=(2400, 1800), points=[(x * 6 + 500, y * 6) for x, y in SEVEN], width=150)
    out = to_mnist(big)
    assert_mnist_like(out)
    assert corr(out, reference()) > 0.95


def test_bad_shape_raises_value_error():
    with pytest.raises(ValueError, match="shape"):
        to_mnist(np.zeros((4, 4, 5)))


# ---------------------------------------------------------------- load_image

def test_load_valid_jpeg():
    data = png_bytes(draw().convert("RGB"), "JPEG", quality=90)
    img = load_image(data)
    assert img.size == (280, 280) and img.mode == "RGB"
    assert corr(to_mnist(img), reference()) > 0.97


def test_load_applies_exif_rotation():
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    img = load_image(png_bytes(Image.new("RGB", (40, 20)), "JPEG", exif=exif))
    assert img.size == (20, 40)


def test_load_animated_gif_uses_first_frame():
    first, second = Image.new("L", (30, 30), 0), Image.new("L", (30, 30), 255)
    data = png_bytes(first, "GIF", save_all=True, append_images=[second], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    img = load_image(data)
    assert np.asarray(img.convert("L")).max() == 0


@pytest.mark.parametrize("data", [b"", b"hello, this is text", png_bytes(draw(), "PPM")],
                         ids=["empty", "text", "ppm-not-allowed"])
def test_load_rejects_non_images(data):
    with pytest.raises(ImageError, match="not a PNG, JPEG"):
        load_image(data)


def test_load_rejects_truncated_png():
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), np.uint8)
    data = png_bytes(Image.fromarray(noise))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_load_rejects_too_many_bytes():
    with pytest.raises(ImageError, match="file is 6 MB; the limit is 5 MB"):
        load_image(b"\0" * 6_000_000)


def bomb_png(width=30000, height=30000):
    """A 1-bit PNG header claiming width x height, with a tiny (invalid) IDAT."""
    def chunk(kind, body):
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("max_pixels", [4096 * 4096, 10**10], ids=["ours", "pillows"])
def test_load_rejects_decompression_bomb_before_decoding(max_pixels):
    with pytest.raises(ImageError, match="pixels") as info:
        load_image(bomb_png(), max_pixels=max_pixels)
    assert "truncated" not in str(info.value)  # rejected from the header, not from decoding


def test_load_pixel_limit_is_configurable():
    data = png_bytes(Image.new("L", (20, 10)))
    with pytest.raises(ImageError, match="image is 20x10 pixels; the limit is 100 pixels"):
        load_image(data, max_pixels=100)
    assert load_image(data, max_pixels=200).size == (20, 10)


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)


def test_an_even_border_takes_the_short_way_to_the_same_digit():
    """A canvas's border is one exact level: the background is that level without a fit,
    and the digit is the one the general fit gives (one border pixel nudged takes that path)."""
    image = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(image).line([(70, 56), (210, 56), (126, 238)], fill=255, width=20)
    even = np.asarray(image, dtype=np.float32) / 255
    nudged = even.copy()
    nudged[0, 0] = 1e-6
    np.testing.assert_allclose(to_mnist(even), to_mnist(nudged), atol=1e-4)
