"""AppTest of pages/5_Checkerboard.py: both shipped convolutional decoders side by side,
the full-test-set table, and a weights folder that lacks one or both of them."""
import json
import re

import pytest

import ui
from aecore.checkerboard import grid_ratio_of
from aecore.shipped import WEIGHTS_ENV, read_manifest, shipped_models, weights_dir

PAGE = "pages/5_Checkerboard.py"
PAIR = ("conv-196", "conv_upsample-32")


def captions(at):
    return [i.proto.imgs[0].caption for i in at.image]


def table_rows(at) -> dict:
    """{model: [cells]} of the Markdown results table."""
    table = next(m.value for m in at.markdown if m.value.startswith("| model |"))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return {r[0]: r[1:] for r in rows}


def test_both_decoders_side_by_side_with_numbers(run_page, mnist_test):
    at = run_page(PAGE, timeout=180)
    assert not at.exception and not at.error and not at.info
    caps = captions(at)
    # 6 inputs; per model 6 reconstructions, 6 errors, 2 mean-error pictures, 6 responses
    assert len(caps) == 6 + 2 * (12 + 2 + 6)
    assert caps[:6] == [f"input #{i}" for i in range(6)]
    assert all(re.fullmatch(r"grid (\d+\.\d\d|inf)× · share [01]\.\d{3}", c) for c in caps[6:12])
    assert all(re.fullmatch(r"grid (\d+\.\d\d|inf)×", c) for c in caps[-6:])
    rows = table_rows(at)
    assert list(rows) == [*PAIR, "test digits"]
    digits = mnist_test[0][:, 0]
    assert rows["test digits"][2:4] == [f"{grid_ratio_of(digits, 2):.3f}", f"{grid_ratio_of(digits, 4):.3f}"]
    manifest = {e["file"]: e["metrics"] for e in read_manifest()}
    for name in PAIR:
        mse, grid2, grid4, share, share_of_mean = (float(c) for c in rows[name][1:])
        assert grid2 > 0 and grid4 > 0 and 0 <= share <= 1 and 0 <= share_of_mean <= 1
        metrics = manifest[f"{name}.pt"]
        if metrics.get("images") == 10_000:        # the manifest's own full-test-set MSE, as rounded on the page
            decimals = len(rows[name][1].split(".")[1])
            assert mse == pytest.approx(metrics["mse"], abs=0.5 * 10 ** -decimals + 1e-9)


def test_next_digits(run_page):
    at = run_page(PAGE, timeout=180)
    at.number_input[0].set_value(12).run()
    assert not at.exception
    assert captions(at)[:6] == [f"input #{i}" for i in range(12, 18)]


@pytest.fixture
def weights_without(tmp_path, monkeypatch):
    """A weights folder holding the shipped models except `names` (same files, by link)."""
    def make(*names):
        entries = [e for e in read_manifest() if e["file"][:-3] not in names]
        for e in entries:
            (tmp_path / e["file"]).symlink_to(weights_dir() / e["file"])
        (tmp_path / "manifest.json").write_text(json.dumps({"models": entries}))
        monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
        ui.shipped.clear()
    yield make
    monkeypatch.undo()
    ui.shipped.clear()


def test_one_decoder_missing(run_page, weights_without):
    weights_without("conv-196")
    assert "conv-196" not in [s.name for s in shipped_models()]
    at = run_page(PAGE, timeout=180)
    assert not at.exception
    assert len(at.info) == 1 and "conv-196" in at.info[0].value
    assert list(table_rows(at)) == ["conv_upsample-32", "test digits"]


def test_both_decoders_missing(run_page, weights_without):
    weights_without(*PAIR)
    at = run_page(PAGE)
    assert not at.exception
    assert len(at.info) == 2 and len(at.image) == 0
