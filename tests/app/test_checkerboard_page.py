"""AppTest of pages/5_Checkerboard.py: four decoders (transposed k3/k4/k2 stride 2, resize +
conv), fresh and trained, one strip of digits each, ranked by the phase ratio; the plain
explanation before any formula; missing or broken study checkpoints."""
import json
import re

import pytest

import ui
from aecore import checkerboard as cb
from aecore.shipped import WEIGHTS_ENV, read_manifest, weights_dir

PAGE = "pages/5_Checkerboard.py"
SHORT = ["k3 s2", "k4 s2", "k2 s2", "resize"]


def captions(at):
    return [i.proto.imgs[0].caption for i in at.image]


def ratio(caption: str) -> float:
    return float(re.search(r"phase ratio (\d+\.\d+)×", caption).group(1))


def table_rows(at) -> dict:
    table = next(m.value for m in at.markdown if "| decoder |" in m.value)
    lines = table[table.index("| decoder |"):].splitlines()[2:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {r[0]: r[1:] for r in rows}


def test_fresh_and_trained_decoders_side_by_side(run_page):
    at = run_page(PAGE, timeout=180)
    assert not at.exception and not at.error and not at.warning
    caps = captions(at)
    # 4 fresh strips, the test digits, 4 trained strips: one image per decoder, not one per digit
    assert len(caps) == 9
    fresh, trained = caps[:4], caps[5:]
    assert [c.split(" · ")[0] for c in fresh] == list(cb.STUDY.values())
    assert [c.split(" · ")[0] for c in trained] == list(cb.STUDY.values())
    assert caps[4] == "test digits #0–#7"
    fresh_ratios = [ratio(c) for c in fresh]      # as the eye sees it: k3 s2 worst, resize best
    assert max(fresh_ratios) == fresh_ratios[0] and min(fresh_ratios) == fresh_ratios[3]
    rows = table_rows(at)
    assert list(rows) == [*SHORT, "conv-196", "conv_upsample-32", "test digits"]
    assert [float(rows[s][0]) for s in SHORT] == pytest.approx(fresh_ratios, abs=0.051)
    for label, cells in rows.items():
        phase, grid = (float(c) for c in cells[1:])
        assert phase >= 1 and grid > 0
    assert float(rows["test digits"][1]) == pytest.approx(1.0, abs=0.05)
    # (which trained decoder is blockiest is checked at full precision in tests/test_checkerboard.py;
    # the page rounds to two decimals)



def test_plain_explanation_comes_before_any_formula(run_page):
    at = run_page(PAGE, timeout=180)
    first = at.markdown[0].value
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", first) if s]
    assert 2 <= len(sentences) <= 5 and "checkerboard" in first
    assert not re.search(r"[=²√Σ]|max v", first)
    assert "max v / min v" in at.expander[0].markdown[0].value


def test_next_digits(run_page):
    at = run_page(PAGE, timeout=180)
    at.number_input[0].set_value(16).run()
    assert not at.exception
    assert captions(at)[4] == "test digits #16–#23"


@pytest.fixture
def weights_copy(tmp_path, monkeypatch):
    """A weights folder with the shipped models (linked) and a study folder to spoil."""
    for e in read_manifest():
        (tmp_path / e["file"]).symlink_to(weights_dir() / e["file"])
    (tmp_path / "manifest.json").symlink_to(weights_dir() / "manifest.json")
    study = tmp_path / cb.STUDY_FOLDER
    study.mkdir()
    for f in (weights_dir() / cb.STUDY_FOLDER).iterdir():
        (study / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    ui.shipped.clear()
    yield study
    monkeypatch.undo()
    ui.shipped.clear()


def fresh_part_renders(at):
    assert not at.exception
    caps = captions(at)
    assert [c.split(" · ")[0] for c in caps[:4]] == list(cb.STUDY.values())


def test_study_folder_missing(run_page, weights_copy):
    for f in weights_copy.iterdir():
        f.unlink()
    weights_copy.rmdir()
    at = run_page(PAGE, timeout=180)
    fresh_part_renders(at)
    assert len(at.warning) == 1 and "manifest.json is missing" in at.warning[0].value, [w.value for w in at.warning]
    assert len(captions(at)) == 5                   # fresh strips and the test digits


def test_one_study_checkpoint_broken(run_page, weights_copy):
    (weights_copy / "transpose4-32.pt").write_bytes(b"not a checkpoint")
    at = run_page(PAGE, timeout=180)
    fresh_part_renders(at)
    assert len(at.warning) == 1 and "transpose4-32" in at.warning[0].value
    trained = [c.split(" · ")[0] for c in captions(at)[5:]]
    assert trained == [cb.STUDY[u] for u in ("transpose3", "transpose2", "resize")]
    assert "k4 s2" not in table_rows(at)


def test_study_manifest_unreadable(run_page, weights_copy):
    (weights_copy / "manifest.json").write_text(json.dumps({"no models": []}))
    at = run_page(PAGE, timeout=180)
    fresh_part_renders(at)
    assert len(at.warning) == 1 and "unreadable manifest" in at.warning[0].value
