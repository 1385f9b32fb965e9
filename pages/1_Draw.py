"""Draw a digit (or upload a picture of one) and watch every autoencoder rebuild it."""
import re
import time

import streamlit as st
from streamlit_drawable_canvas import st_canvas

import ui
from aecore import denoising, novelty
from aecore.preprocess import ImageError, load_image, to_mnist

CANVAS = "draw_canvas"         # widget key prefix; a new suffix (after Clear) empties the canvas
CLEARS = "draw_canvas_clears"  # session_state: how often Clear was pressed
MAX_MB = 5                     # image upload limit (the server-wide cap is sized for checkpoints)
WIDTHS = (10, 15, 20, 30, 40)  # stroke widths offered, canvas pixels

st.set_page_config(page_title="Draw · MNIST Autoencoder Lab", page_icon="✏️", layout="wide")
st.title("Draw a digit")
st.caption("Each stroke sends the drawing through the MNIST preprocessing and every autoencoder.")
ui.show_unavailable()


def canvas_input():
    """(28,28) digit from the canvas or None, and when the canvas data arrived."""
    canvas_col, tools_col = st.columns([3, 2])
    # a radio, not a slider: a slider sends its value 0.2 s after the last move (debounced),
    # so a stroke or a Clear in that window still got the old width
    width = tools_col.radio("Stroke width", WIDTHS, index=WIDTHS.index(20), horizontal=True,
                            format_func=lambda w: f"{w} px", help="in canvas pixels; the canvas is 280×280")
    if tools_col.button("Clear", icon=":material/ink_eraser:"):
        st.session_state[CLEARS] = st.session_state.get(CLEARS, 0) + 1
        st.session_state.pop("drawing", None)
    with canvas_col:
        st.space(32)  # room for the canvas's toolbar, which floats 2.65rem above it on hover
        try:  # what the browser sent is untrusted: the PNG gets the same checks as an upload
            png, drawn = read_canvas(width)
            start = time.perf_counter()
            digit = None if png is None else to_mnist(load_image(png, max_bytes=MAX_MB * 1_000_000))
        except ImageError as e:
            st.error(f"Cannot read the drawing: {e}. Press Clear and draw again.")
            return None, time.perf_counter()
    if digit is None and drawn:
        st.info("No digit found: the strokes cover the canvas evenly. Press Clear and draw one digit.")
    elif digit is None:
        st.info("Draw a digit on the black canvas, with the mouse or a finger.")
    return digit, start


def read_canvas(width: int) -> tuple[bytes | None, bool]:
    """The PNG the canvas sent (None before the first stroke) and whether it has strokes.
    Its value comes from the browser; a malformed one (a forged message) is an ImageError."""
    try:
        result = st_canvas(stroke_width=width, stroke_color="#FFFFFF", background_color="#000000",
                           width=280, height=280, update_streamlit=True, return_image_data=True,
                           key=f"{CANVAS}_{st.session_state.get(CLEARS, 0)}")
        drawn = isinstance(result.json_data, dict) and bool(result.json_data.get("objects"))
        return result.image_bytes, drawn  # the "data:image/png;base64,..." URL, decoded
    except (AttributeError, TypeError, ValueError) as e:  # not a dict / str / base64 where expected
        raise ImageError("the canvas sent malformed data") from e


def upload_input():
    """(28,28) digit from an uploaded picture or None, and when the bytes arrived."""
    # The size limit is checked here, not by the uploader: a file the uploader refuses never
    # reaches the script, so the message about the previous file would stay on screen.
    file = st.file_uploader(f"A PNG or JPEG of one digit, dark on light or light on dark, any size up "
                            f"to {MAX_MB} MB", type=["png", "jpg", "jpeg"])
    start = time.perf_counter()
    if file is None:
        st.info("Upload a picture of a single handwritten digit.")
        return None, start
    try:
        digit = to_mnist(load_image(file.getvalue(), max_bytes=MAX_MB * 1_000_000))
    except ImageError as e:
        st.error(f"Cannot use {literal(file.name)}: {e}.")
        return None, start
    if digit is None:
        st.info(f"{literal(file.name)} looks blank: no digit found in it.")
    return digit, start


def literal(text: str) -> str:
    """`text` as a Markdown code span, shown exactly as typed: a file name is user input and
    must not format, link or load anything (escaping alone leaves http://... autolinked)."""
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def code_chart(code, label) -> ui.SafeHtml:
    """The code as bars, one st.html element (ui.bar_chart_svg): a stroke redraws no charting library."""
    return ui.bar_chart_svg([float(v) for v in code], title=f"code of {label}", x_title="code unit", y_title="value")


def novelty_note(digit, models, results) -> None:
    """Where the drawing's reconstruction error falls among the test digits' (aecore.novelty);
    `results`: the reconstructions already shown (the judging model does not run again)."""
    label, checked = novelty.pick_model(models)
    result = novelty.judge(models[label], digit, ui.novelty_reference(label, models[label]), results[label].images)
    text = (f"**{result.verdict[0].upper() + result.verdict[1:]}**: {label} rebuilds it with a squared error of "
            f"{result.error:.0%} of its ink, "
            f"{result.error / result.median:.1f}× the typical test digit's; "
            f"{result.percentile:.0f}% of the 10,000 test digits are rebuilt at least as well.")
    note = ("" if checked else " (This model was not checked for telling digits from other shapes.)")
    (st.success if result.is_digit_like else st.warning)(text + note, icon=":material/search:")


@st.fragment
def drawing_and_results():
    """The input and everything it changes. A stroke reruns only this part of the page (a
    fragment): the title and captions above are neither rerun nor re-sent."""
    left, right = st.columns([3, 2])
    with left:
        source = st.radio("Input", ["Draw", "Upload a picture"], horizontal=True, label_visibility="collapsed")
        digit, start = canvas_input() if source == "Draw" else upload_input()
    models = ui.available_models()
    if digit is not None:
        st.session_state["drawing"] = digit
        ui.show_html(ui.digit_grid_html([ui.digit_image(digit, 1)], ["what the models see: 28×28, MNIST-style"], 140),
                     where=right)
        if not models:
            st.warning("No model is available: train one on the Train page.")
            return
        results = denoising.reconstructions(digit, models)
        elapsed_ms = (time.perf_counter() - start) * 1000
        with right:
            novelty_note(digit, models, results)
        st.subheader("Reconstructions")
        labels = list(results)
        ui.show_html(ui.digit_grid_html([ui.digit_image(results[k].images[0], 1) for k in labels],
                                        [f"{k} · MSE {results[k].mean('mse'):.4f} · PSNR {results[k].mean('psnr'):.1f} dB"
                                         for k in labels], 112))
        st.caption(f"Server compute only: preprocessing and {len(models)} models took {elapsed_ms:.0f} ms "
                   "(when other people draw at the same moment, their strokes share one pass through the models "
                   "with yours). The pictures reach you after a round trip through Streamlit, which takes longer.")
        label = st.selectbox("Show the code of", labels)
        ui.show_html(code_chart(denoising.code_of(models[label], digit), label))


drawing_and_results()
