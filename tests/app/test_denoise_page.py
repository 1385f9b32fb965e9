"""AppTest of pages/2_Denoise.py: the five rows (clean, noisy, denoiser, plain AE, classic)
with their scores, the noise slider, the drawing from the Draw page, the PSNR chart, which
models are offered as denoisers, and what PSNR and SSIM mean."""
import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from aecore.denoising import BASELINE, NOISY, compare, pick_digits, trained_for
from aecore.noise import BLIND, LEVEL_RANGE, NOISE_KINDS, NOISE_LABELS
from aecore.shipped import shipped_models

PAGE = "pages/2_Denoise.py"
SCORE = re.compile(r"PSNR (∞|[\d.]+ dB) · SSIM (-?[\d.]+)")


@pytest.fixture(scope="module", autouse=True)
def needs_models():
    shipped = [s for s in shipped_models() if s.model is not None]
    if not any(s.is_denoiser for s in shipped) or all(s.is_denoiser for s in shipped):
        pytest.skip("needs a shipped denoiser and a shipped plain autoencoder")


class Rows(HTMLParser):
    """The Denoise page's rows block (ui.digit_rows_html): per row its title, caption lines,
    the last line's tooltip and its digits' image addresses."""

    def __init__(self, body: str):
        super().__init__()
        self.rows, self._in = [], None
        self.feed(body)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "strong":
            self.rows.append({"title": "", "lines": [], "help": None, "images": []})
            self._in = "title"
        elif tag == "small":
            self.rows[-1]["lines"].append("")
            self.rows[-1]["help"] = attrs.get("title") or self.rows[-1]["help"]
            self._in = "line"
        elif tag == "img":
            self.rows[-1]["images"].append(attrs["src"])

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "title":
            self.rows[-1]["title"] += data
        elif self._in == "line":
            self.rows[-1]["lines"][-1] += data


def html_with(at, marker: str) -> list[str]:
    return [h.value for h in at.html if marker in h.value]


def rows(at) -> list[dict]:
    """The rows shown (none before there are digits); the chart shares their element."""
    return [row for body in html_with(at, 'class="digit-rows"')
            for row in Rows(body.split('<div class="svg-chart">')[0]).rows]


def chart_svg(at) -> str:
    """The PSNR chart's SVG (ui.line_chart_svg sends it as an image)."""
    [body] = html_with(at, 'class="svg-chart"')
    return base64.b64decode(re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', body)[1]).decode()


def captions(at) -> list[str]:
    """Every caption line under a row's title."""
    return [line for row in rows(at) for line in row["lines"]]


def scores(at) -> list[tuple[float, float]]:
    """(PSNR, SSIM) under the noisy, denoiser, plain AE and classic rows, in that order."""
    out = []
    for line in captions(at):
        if m := SCORE.fullmatch(line):
            psnr = float("inf") if m[1] == "∞" else float(m[1].split()[0])
            out.append((psnr, float(m[2])))
    return out


def pictures(at) -> list[str]:
    """Every digit shown, row by row."""
    return [url for row in rows(at) for url in row["images"]]


def set_level(at, kind, level):
    at.slider(key=f"level_{kind}").set_value(level).run()
    assert not at.exception
    return scores(at)


def test_columns_have_images_and_scores(run_page):
    at = run_page(PAGE)
    assert not at.exception and not at.error
    assert [row["title"] for row in rows(at)] == ["clean", "noisy", "denoiser", "plain AE", "classic"]
    assert [len(row["images"]) for row in rows(at)] == [3] * 5  # 5 rows of 3 digits (default)
    assert len(scores(at)) == 4
    assert "<polyline" in chart_svg(at)
    # what a slider step re-sends, besides the slider: the rows and the chart as ONE element
    [fragment_html] = [h.value for h in at.html if 'class="digit-rows"' in h.value or 'class="svg-chart"' in h.value]
    assert fragment_html.index('class="digit-rows"') < fragment_html.index('class="svg-chart"')


def test_noise_levels_change_the_scores(run_page):
    at = run_page(PAGE)
    by_level = {level: set_level(at, "gaussian", level) for level in (0.0, 0.2, 0.6, 1.0)}
    assert by_level[0.0][0][0] == float("inf")  # no noise: the noisy column is the clean digit
    noisy = [by_level[level][0][0] for level in (0.2, 0.6, 1.0)]
    assert noisy == sorted(noisy, reverse=True) and noisy[0] > noisy[-1] + 5
    for level, cols in by_level.items():
        assert len(cols) == 4 and all(-1 <= ssim <= 1 for _, ssim in cols)
    assert ">level 1</text>" in chart_svg(at)  # the slider's level marked on the chart


def test_same_setting_gives_the_same_noise(run_page):
    at = run_page(PAGE)
    first = set_level(at, "gaussian", 0.35)
    images = pictures(at)
    at.run()
    assert scores(at) == first
    assert pictures(at) == images


@pytest.mark.parametrize("kind", ["salt_pepper", "erasing"])
def test_other_noise_kinds(run_page, kind):
    at = run_page(PAGE)
    widget(at.selectbox, "Noise").select(kind).run()
    cols = set_level(at, kind, LEVEL_RANGE[kind][0])
    assert len(cols) == 4
    if kind == "salt_pepper":  # the median filter column beats the noisy input
        assert cols[3][0] > cols[0][0]
    assert f"{NOISE_LABELS[kind]} noise level" in chart_svg(at)


def widget(widgets, label):
    return next(w for w in widgets if w.label == label)


@pytest.mark.parametrize("digit", [None, 3])
def test_digits_are_the_seeded_pick(run_page, mnist_test, digit):
    images, labels = mnist_test
    at = run_page(PAGE)
    if digit is not None:
        at.radio[0].set_value("Test digits of one class").run()
        widget(at.selectbox, "Class").select(digit).run()
    widget(at.number_input, "Seed (digits and noise)").set_value(5).run()
    widget(at.slider, "How many").set_value(4).run()
    assert not at.exception and len(pictures(at)) == 5 * 4
    # Reference: the noisy column's score, recomputed from the same digits and noise.
    clean = images[pick_digits(labels, 4, 5, digit)]
    expected = compare(clean, "gaussian", LEVEL_RANGE["gaussian"][2], 5, {})[NOISY].mean("psnr")
    assert scores(at)[0][0] == pytest.approx(expected, abs=0.006)


def test_my_drawing_without_a_drawing_gives_a_hint(run_page):
    at = run_page(PAGE)
    at.radio[0].set_value("My drawing").run()
    assert not at.exception and not at.error
    assert any("Draw a digit on the **Draw** page first" in i.value for i in at.info)
    assert len(pictures(at)) == 0
    assert "<polyline" in chart_svg(at)


def test_my_drawing_is_denoised(run_page, mnist_test):
    drawing = mnist_test[0][0, 0].numpy().astype(np.float32)
    at = run_page(PAGE, drawing=drawing)
    at.radio[0].set_value("My drawing").run()
    assert not at.exception and not at.info
    assert [len(row["images"]) for row in rows(at)] == [1] * 5  # one digit per row
    assert len(scores(at)) == 4


def session_model(noise: str | None, level: float = 0.0):
    """A small untrained model recording the settings a Train-page job records."""
    from aecore import create_model
    model = create_model("simple", code_size=8).eval()
    model.training_info = {"model": "simple", "noise": noise, "noise_level": level}
    return model


def test_a_denoiser_trained_this_session_is_offered_as_a_denoiser(run_page):
    """Issue 15.9: a model trained on noisy inputs (Train page, or an uploaded checkpoint) is
    classified by what it was trained on, and its picker label says which noise."""
    at = run_page(PAGE, session_models={"mine-dn": session_model("gaussian", 0.5),
                                        "mine-plain": session_model(None)})
    assert not at.exception
    denoisers = widget(at.selectbox, "Denoiser")
    plains = widget(at.selectbox, "Plain autoencoder")
    assert [o for o in denoisers.options if "mine" in o] == [
        "mine-dn (this session) · trained on Gaussian noise 0.5"]
    assert [o for o in plains.options if "mine" in o] == ["mine-plain (this session)"]
    shipped = next(o for o in denoisers.options if "mine" not in o)
    assert "trained on" in shipped and "noise" in shipped       # shipped denoisers say it too
    denoisers.select("mine-dn (this session)").run()
    assert not at.exception and len(scores(at)) == 4
    assert "mine-dn (this session) · trained on Gaussian noise 0.5" in captions(at)


def test_psnr_and_ssim_are_explained_where_they_are_shown(run_page):
    """Issue 15.6: every score caption carries the explanation of PSNR and SSIM as its tooltip."""
    from aecore.metric_help import MEANING
    at = run_page(PAGE)
    scored = [row for row in rows(at) if row["lines"] and SCORE.fullmatch(row["lines"][-1])]
    assert len(scored) == 4
    for row in scored:
        assert MEANING["psnr"] in row["help"] and MEANING["ssim"] in row["help"]


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_each_kind_starts_with_its_own_denoiser_and_classic_method(run_page, kind):
    """Issue 10: the denoiser trained for the chosen kind (else a blind one) and the kind's
    classic method are the defaults, and at the default level the denoiser beats it."""
    at = run_page(PAGE)
    widget(at.selectbox, "Noise").select(kind).run()
    assert not at.exception
    models = {s.name: s.model for s in shipped_models() if s.model is not None}
    chosen = widget(at.selectbox, "Denoiser").value
    wanted = kind if any(trained_for(m) == kind for m in models.values()) else BLIND
    assert trained_for(models[chosen]) == wanted
    assert widget(at.selectbox, "Classic method").value == BASELINE[kind]
    _, denoiser, _, classic = scores(at)
    assert denoiser[0] > classic[0]
    told = any("told which pixels were erased" in c.value for c in at.caption)
    assert told == (kind == "erasing")


def test_the_blind_denoiser_is_offered_and_says_what_it_was_trained_on(run_page):
    at = run_page(PAGE)
    blind = [o for o in widget(at.selectbox, "Denoiser").options if "trained on every kind, blind" in o]
    assert blind, "no blind denoiser offered"
    for kind in NOISE_KINDS:
        assert NOISE_LABELS[kind] in blind[0]


def test_the_unet_is_offered_as_a_denoiser_with_its_lesson_and_beats_the_autoencoder(run_page):
    """The shipped U-Net is in the picker, named a U-Net; the Gaussian default stays the
    denoising autoencoder; chosen, it says why it is not an autoencoder, and on the page's
    digits it scores above the autoencoder trained on the same noise."""
    from aecore.models import is_autoencoder
    unets = [s.name for s in shipped_models() if s.model is not None and s.is_denoiser and not is_autoencoder(s.model)]
    if not unets:
        pytest.skip("no U-Net is shipped")
    at = run_page(PAGE)
    picker = widget(at.selectbox, "Denoiser")
    default = picker.value
    assert is_autoencoder({s.name: s.model for s in shipped_models() if s.model is not None}[default])
    assert not any("is not an autoencoder" in c.value for c in at.caption)
    autoencoder = scores(at)[1][0]
    [label] = [o for o in picker.options if o.startswith(unets[0] + " ·")]
    assert label.endswith(" · U-Net") and "Gaussian noise 0.5" in label
    picker.select(unets[0]).run()
    assert not at.exception
    assert any("**U-Net** is not an autoencoder" in c.value for c in at.caption)
    assert scores(at)[1][0] > autoencoder


def test_a_denoiser_trained_on_an_unknown_noise_is_named_and_the_page_runs(run_page, tmp_path, monkeypatch):
    """A manifest/checkpoint naming a noise kind the app does not know: a warning, not a crash."""
    import json
    import shutil

    from aecore import create_model
    from aecore.checkpoint import checkpoint_bytes
    from aecore.shipped import weights_dir
    from tests.app.test_faults import weights_folder

    folder = tmp_path / "weights"
    shutil.copytree(weights_dir(), folder)
    metrics = {"mse": 0.1, "psnr": 10.0, "ssim": 0.1, "noise": "speckle", "noise_level": 0.3, "images": 10}
    model = create_model("simple", code_size=4)
    (folder / "odd.pt").write_bytes(checkpoint_bytes(model, metrics=metrics))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["models"].append({"file": "odd.pt", "model": "simple", "config": model.config, "code_size": 4,
                               "metrics": metrics})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with weights_folder(folder, monkeypatch):
        at = run_page(PAGE)
        assert not at.exception
        assert any("odd" in w.value and "speckle" in w.value for w in at.warning)
        for kind in NOISE_KINDS:   # never the default, and every kind still works
            widget(at.selectbox, "Noise").select(kind).run()
            assert not at.exception and widget(at.selectbox, "Denoiser").value != "odd"
            assert len(scores(at)) == 4
