"""Turn user drawings, photos and uploads into MNIST-style 28x28 digits.

MNIST was made by fitting each digit's bounding box into 20x20 pixels
(anti-aliased, aspect ratio kept) and then placing it in a 28x28 field so
that its centre of mass sits at the centre. A model trained on MNIST only
understands inputs prepared the same way, so `to_mnist` repeats those steps
after first extracting the ink as white on black with the background removed.

Only numpy and Pillow are used, so this module stays importable anywhere.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MNIST_SIZE = 28  # side of an MNIST image
FIT = 20  # MNIST fits the digit's longer side into this many pixels

# Formats with mature, self-contained decoders. Pillow can also open e.g. EPS,
# which shells out to Ghostscript: not something to feed untrusted uploads.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")

INK_THRESHOLD = 0.1  # fraction of the peak ink that counts as ink for the bounding box
MIN_INK = 0.05  # peak 3x3-averaged ink below this (full scale = 1) means "no ink"
NOISE_SIGMAS = 3.0  # background noise up to this many sigmas is still background
OPAQUE = 0.98  # alpha at least this everywhere: the alpha channel says nothing
MAX_WORK_SIDE = 1024  # larger inputs are downscaled first; the result is 20 px anyway
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"


class ImageError(ValueError):
    """Uploaded bytes cannot be used as an image; the message is fit for end users."""


def load_image(data: bytes, *, max_bytes: int = 5_000_000,
               max_pixels: int = 4096 * 4096) -> Image.Image:
    """Open untrusted image bytes, fully decoded, or raise `ImageError`.

    Animated images (GIF, APNG, WebP) yield their first frame. The EXIF
    orientation is applied, so phone photos come out upright.
    """
    if len(data) > max_bytes:
        raise ImageError(f"file is {len(data) / 1e6:.3g} MB; the limit is {max_bytes / 1e6:.3g} MB")
    pixel_limit = f"the limit is {max_pixels:,} pixels"
    try:
        # Pillow itself refuses images over twice Image.MAX_IMAGE_PIXELS (~179M) in open().
        # It only warns above ~89M; turning that warning into an error would need
        # warnings.catch_warnings, which is process-global and races between Streamlit
        # sessions' threads. Our own limit (16.7M by default) is stricter anyway.
        img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)  # header only
        width, height = img.size
        if width * height > max_pixels:  # checked before any pixel is decoded
            raise ImageError(f"image is {width}x{height} pixels; {pixel_limit}")
        img.load()  # only a full decode reveals truncated or corrupt data
        return ImageOps.exif_transpose(img)  # a copy, detached from the file
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        names = ", ".join(ALLOWED_FORMATS[:-1]) + " or " + ALLOWED_FORMATS[-1]
        raise ImageError(f"not a {names} image") from exc
    # The warning is raised only where the application has turned warnings into errors.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image has too many pixels ({exc}); {pixel_limit}") from exc
    except Exception as exc:  # noqa: BLE001
        # Decoders fail with OSError, SyntaxError, EOFError, struct.error, ...;
        # for an upload every one of them means the same thing to the user.
        raise ImageError(f"image is truncated or corrupt ({exc})") from exc


def to_mnist(image: Image.Image | np.ndarray) -> np.ndarray | None:
    """Return a 28x28 float32 MNIST-style digit in [0, 1] (max 1), or None without ink.

    `image` is a PIL image of any common mode or an array of shape (H, W),
    (H, W, 1), (H, W, 2: grey + alpha), (H, W, 3) or (H, W, 4) of dtype bool,
    unsigned int, int or float in [0, 1]. Ink may be dark on light or light on
    dark; where the image has real transparency, alpha carries the ink. A
    uniform image (blank, fully transparent, or a canvas painted all over) has
    no contrast and hence no ink: the result is None, not an exception.
    """
    lum, alpha = _luminance_alpha(image)
    if lum.size == 0:
        return None
    lum, alpha = _limit_size(lum, alpha)
    ink = _extract_ink(lum, alpha)
    box = _ink_box(ink)
    if box is None:
        return None
    return _mnist_layout(ink[box])


def _luminance_alpha(image) -> tuple[np.ndarray, np.ndarray | None]:
    """Float32 luminance and alpha (None when absent), both in [0, 1]."""
    if (isinstance(image, np.ndarray) and image.dtype == np.uint8
            and image.ndim == 3 and image.shape[2] in (3, 4)):
        image = Image.fromarray(image)  # Pillow converts RGB(A) in C, without float copies
    if isinstance(image, Image.Image):
        image = _simplify_mode(image)
    arr = _unit_float(np.asarray(image))
    if arr.ndim == 2:
        return arr, None
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image of shape (H, W) or (H, W, 1|2|3|4), got {arr.shape}")
    has_alpha = arr.shape[2] in (2, 4)
    colour = arr[..., :-1] if has_alpha else arr
    lum = colour[..., 0] if colour.shape[2] == 1 else colour @ _LUMA
    return lum, (arr[..., -1] if has_alpha else None)


def _simplify_mode(img: Image.Image) -> Image.Image:
    """Reduce any PIL mode to L or LA; 16/32-bit and float data stay as they are."""
    if img.has_transparency_data:  # RGBA, LA, PA, or palette/RGB with a transparent colour
        return img.convert("LA")
    if img.mode in ("L", "I", "F") or img.mode.startswith("I;16"):
        return img
    return img.convert("L")  # RGB, P, CMYK, YCbCr, ...: only brightness matters


def _unit_float(arr: np.ndarray) -> np.ndarray:
    """Scale any numeric dtype to float32 in [0, 1]."""
    if arr.dtype == bool:
        return arr.astype(np.float32)
    out = np.nan_to_num(arr.astype(np.float32), copy=False)  # a copy: safe to modify in place
    if arr.dtype.kind == "u":  # the type's full range, e.g. 16-bit scans
        out /= np.iinfo(arr.dtype).max
        return out
    # Signed ints (PIL "I", numpy's default) and floats above 1 nearly always hold
    # 0-255 or 0-65535 data, so guess the range from the maximum.
    top = float(out.max()) if out.size else 0.0
    out /= 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0
    return np.clip(out, 0.0, 1.0, out=out)


def _resize(arr: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """Resample a 2-D float array to size (width, height) with Pillow's float mode."""
    img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32))
    return np.asarray(img.resize(size, resample))


def _limit_size(lum: np.ndarray, alpha: np.ndarray | None):
    """Area-downscale big inputs: speed and memory, and averaging tames photo noise."""
    height, width = lum.shape
    factor = MAX_WORK_SIDE / max(height, width)
    if factor >= 1:
        return lum, alpha
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    if alpha is None:
        return _resize(lum, size, Image.Resampling.BOX), None
    # Weight colour by alpha so the arbitrary colour of invisible pixels cannot bleed in.
    small_alpha = _resize(alpha, size, Image.Resampling.BOX)
    small_lum = _resize(lum * alpha, size, Image.Resampling.BOX) / np.maximum(small_alpha, 1e-6)
    return np.clip(small_lum, 0.0, 1.0), small_alpha


def _extract_ink(lum: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Ink map in [0, 1]: bright on the digit, 0 on the background."""
    if alpha is None or alpha.min() >= OPAQUE:
        ink, reference = _paper_ink(lum)
    elif (alpha > 0.5).mean() < 0.5:
        # Strokes on a transparent layer (drawing canvas, cut-out digit): their
        # colour is arbitrary (canvases often leave rgb = 0), coverage is the ink.
        ink, reference = alpha, alpha[_border_mask(alpha.shape)]
    else:
        # Mostly opaque with transparent parts, e.g. a sheet with cut-away corners:
        # the ink is whatever differs from the dominant visible colour.
        visible = alpha > 0.5
        ink = alpha * np.abs(lum - np.median(lum[visible]))
        reference = ink[visible]
    return _remove_background(ink, reference)


def _paper_ink(lum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed contrast against the (maybe unevenly lit) background, ink made positive."""
    border = _border_mask(lum.shape)
    background = _fit_background(lum, border)
    contrast = lum - background
    smooth = _box3(contrast)  # single-pixel noise must not decide the polarity
    if -smooth.min() > smooth.max():  # dark ink on light paper
        # Paper reflects a share of the light falling on it, so relative contrast
        # keeps the ink equally strong in the bright and the shaded parts.
        contrast = -contrast / np.maximum(background, 0.05)
    return contrast, contrast[border]


def _border_mask(shape: tuple[int, int]) -> np.ndarray:
    """A thin frame around the image, where the background usually is."""
    k = max(1, min(shape) // 50)
    mask = np.zeros(shape, dtype=bool)
    mask[:k], mask[-k:], mask[:, :k], mask[:, -k:] = True, True, True, True
    return mask


def _fit_background(lum: np.ndarray, border: np.ndarray) -> np.ndarray:
    """Quadratic brightness surface fitted to the border, ignoring ink that touches it.

    Phone photos of paper are lit unevenly (gradients, vignetting); one
    background level for the whole image would swallow the ink on one side.
    """
    values = lum[border]
    if values.min() == values.max():   # an even border (a drawing canvas): the fit is that level
        return np.full(lum.shape, values[0], dtype=np.float32)
    height, width = lum.shape
    y, x = np.linspace(-1, 1, height)[:, None], np.linspace(-1, 1, width)[None, :]
    rows, cols = np.nonzero(border)
    design = np.column_stack(_quadratic_terms(y[rows, 0], x[0, cols]))
    residual = values - np.median(values)
    for _ in range(2):  # robust refit: drop outliers (ink), fit again
        keep = np.abs(residual) <= NOISE_SIGMAS * _robust_sigma(residual) + 1e-6
        coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residual = values - design @ coef
    return sum(c * term for c, term in zip(coef, _quadratic_terms(y, x))).astype(np.float32)


def _quadratic_terms(y: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
    return [np.ones_like(x * y), x, y, x * x, y * y, x * y]


def _robust_sigma(values: np.ndarray) -> float:
    """Noise level from the median absolute deviation: ink outliers barely move it."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _remove_background(ink: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Subtract the background level plus its noise and stretch the rest to [0, 1]."""
    level = float(np.median(reference)) + NOISE_SIGMAS * _robust_sigma(reference)
    if level >= 1.0:
        return np.zeros_like(ink)
    return np.clip((ink - level) / (1.0 - level), 0.0, 1.0)


def _box3(arr: np.ndarray) -> np.ndarray:
    """3x3 mean filter (edge-padded)."""
    padded = np.pad(arr, 1, mode="edge")
    height, width = arr.shape
    return sum(padded[dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)) / 9.0


def _ink_box(ink: np.ndarray) -> tuple[slice, slice] | None:
    """Slices of the ink's bounding box, or None when there is no ink."""
    smooth = _box3(ink)
    peak = float(smooth.max())
    if peak < MIN_INK:
        return None
    # Require an inky pixel in an inky neighbourhood: isolated noise specks would
    # otherwise stretch the box, while real strokes (even a lone dot) pass.
    mask = (ink > INK_THRESHOLD * peak) & (smooth > INK_THRESHOLD * peak)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _mnist_layout(crop: np.ndarray) -> np.ndarray:
    """Fit the cropped digit into FIT px, centre its mass in MNIST_SIZE, max to 1."""
    height, width = crop.shape
    scale = FIT / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Lanczos anti-aliases well but rings slightly below zero next to strokes.
    digit = np.clip(_resize(crop, size, Image.Resampling.LANCZOS), 0.0, None)
    out = _place_by_mass(digit)
    return (out / max(float(out.max()), 1e-12)).astype(np.float32)


def _place_by_mass(digit: np.ndarray) -> np.ndarray:
    """Paste `digit` so its centre of mass lands on the image centre (integer shift, clipped)."""
    ys, xs = np.indices(digit.shape)
    total = float(digit.sum())
    centre = MNIST_SIZE / 2  # 14, as in the usual MNIST recipe (rows / 2 - centre of mass)
    top = round(centre - float((ys * digit).sum()) / total)
    left = round(centre - float((xs * digit).sum()) / total)
    out = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + digit.shape[0], MNIST_SIZE), min(left + digit.shape[1], MNIST_SIZE)
    out[y0:y1, x0:x1] = digit[y0 - top:y1 - top, x0 - left:x1 - left]
    return out
