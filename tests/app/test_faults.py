"""Faults, nothing lost: a damaged weights/ folder (AppTest on a temporary copy, through
AECORE_WEIGHTS) and a full disk while saving (a real file-size limit, RLIMIT_FSIZE).

Covered elsewhere, checked for this issue: a corrupt or half-written MNIST cache
(tests/test_data.py), training stopped / failing / NaN / abandoned by its session
(tests/test_jobs.py, tests/browser/test_train_browser.py), a compressed file on a full
disk or in a non-folder (tests/test_compress.py)."""
import json
import resource
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

import aecore
import ui
from aecore.atomic import WriteError
from aecore.checkpoint import checkpoint_bytes
from aecore.shipped import WEIGHTS_ENV, read_manifest, shipped_models, weights_dir
from tests.app.test_bad_input import CANVAS_KEY, drawn, seven
from tests.app.test_draw_page import grid_captions
from tests.conftest import ROOT

PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))


@contextmanager
def weights_folder(path: Path, monkeypatch):
    """Serve `path` as weights/ for the pages (the cached model list is rebuilt)."""
    monkeypatch.setenv(WEIGHTS_ENV, str(path))
    ui.shipped.clear()
    try:
        yield path
    finally:
        monkeypatch.undo()
        ui.shipped.clear()


def add_small_model(folder: Path, name: str) -> dict:
    """An untrained simple model with a manifest entry shaped like the real ones."""
    model = aecore.create_model("simple", code_size=4)
    (folder / f"{name}.pt").write_bytes(checkpoint_bytes(model))
    return {"file": f"{name}.pt", "model": "simple", "config": model.config, "code_size": 4,
            "metrics": {"mse": 0.1, "psnr": 10.0, "ssim": 0.1, "noise": None, "noise_level": 0.0}}


@pytest.fixture
def damaged(tmp_path, monkeypatch):
    """A copy of the shipped weights with one checkpoint truncated and one deleted; the
    denoisers and at least one plain model stay intact. -> (corrupt, missing, intact names)."""
    folder = tmp_path / "weights"
    shutil.copytree(weights_dir(), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for i in range(max(0, 3 - sum(not _is_denoiser(e) for e in manifest["models"]))):
        manifest["models"].append(add_small_model(folder, f"extra-{i}"))  # a partly trained weights/
    (folder / "manifest.json").write_text(json.dumps(manifest))
    corrupt, missing = [e for e in manifest["models"] if not _is_denoiser(e)][:2]
    path = folder / corrupt["file"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])   # an interrupted copy
    (folder / missing["file"]).unlink()
    broken = Path(corrupt["file"]).stem, Path(missing["file"]).stem
    intact = [Path(e["file"]).stem for e in manifest["models"] if Path(e["file"]).stem not in broken]
    with weights_folder(folder, monkeypatch):
        yield *broken, intact


def _is_denoiser(entry: dict) -> bool:
    return bool((entry.get("metrics") or {}).get("noise"))


def warnings(at) -> list[str]:
    return [w.value for w in at.warning]


def assert_names_the_broken_models(at, corrupt, missing):
    found = warnings(at)
    assert any(w.startswith(f"Model **{corrupt}** is unavailable: ") and "truncated or corrupt" in w
               for w in found), found
    assert any(w.startswith(f"Model **{missing}** is unavailable: ") and "No such file" in w
               for w in found), found


def test_home_page_starts_and_says_which_models_are_unavailable_and_why(run_page, damaged):
    corrupt, missing, intact = damaged
    at = run_page("app.py")
    assert not at.exception
    assert_names_the_broken_models(at, corrupt, missing)
    table = at.dataframe[0].value.set_index("model")["status"].to_dict()
    assert table == {corrupt: "unavailable", missing: "unavailable", **{n: "ready" for n in intact}}


def test_draw_page_reconstructs_with_every_other_model(run_page, damaged):
    corrupt, missing, intact = damaged
    at = run_page("pages/1_Draw.py", **{CANVAS_KEY: drawn(seven())})
    assert not at.exception and not at.error
    assert_names_the_broken_models(at, corrupt, missing)
    captions = grid_captions(at)
    drawn_by = {s.name for s in shipped_models() if s.is_autoencoder}   # the Draw page's (not a U-Net)
    assert [c.split(" · ")[0] for c in captions] == [name for name in intact if name in drawn_by]
    assert all(" · MSE 0." in c for c in captions)


@pytest.mark.parametrize("page", [p for p in PAGES if p != "pages/1_Draw.py"])
def test_every_other_page_starts(run_page, damaged, page):
    corrupt, missing, _ = damaged
    at = run_page(page)
    assert not at.exception, [e.value for e in at.exception]
    if page not in ("pages/3_Train.py", "pages/7_Sweeps.py"):   # the pages that use no shipped model
        assert_names_the_broken_models(at, corrupt, missing)


@pytest.mark.parametrize("page", ["app.py", *PAGES])
def test_every_page_starts_without_any_weights(run_page, tmp_path, monkeypatch, page):
    """An empty weights/ folder (no manifest): a hint, not a crash; the session's own
    models (Train page) still work."""
    with weights_folder(tmp_path, monkeypatch):
        at = run_page(page)
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("manifest", ['{"models": [{"file": "simple-32.pt", ', None], ids=["half-written", "missing"])
def test_a_bad_manifest_is_named_and_the_app_keeps_working(run_page, tmp_path, monkeypatch, manifest):
    if manifest is not None:
        (tmp_path / "manifest.json").write_text(manifest)
    with weights_folder(tmp_path, monkeypatch):
        at = run_page("app.py")
    assert not at.exception
    assert any("manifest.json" in w for w in warnings(at)), warnings(at)


# --------------------------------------------------------------------------- full disk


@contextmanager
def disk_space(limit_bytes: int):
    """Files this process writes may not grow beyond `limit_bytes`, as on a full disk:
    writes fail with EFBIG (the SIGXFSZ signal is ignored for the duration)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_saving_a_checkpoint_on_a_full_disk_keeps_the_good_file(tmp_path):
    path = tmp_path / "model.pt"
    good_model = aecore.create_model("simple", code_size=4)
    aecore.save_checkpoint(good_model, path)
    good = path.read_bytes()
    with disk_space(len(good) + 1000), pytest.raises(WriteError, match=f"cannot write {path}: File too large"):
        aecore.save_checkpoint(aecore.create_model("simple", code_size=128), path)   # ~4x bigger
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left behind
    assert aecore.load_checkpoint(path).code_size == 4


def test_saving_a_manifest_on_a_full_disk_keeps_the_good_one(tmp_path):
    """The CLI records every trained model in weights/manifest.json: a failed update must
    leave the old manifest readable, not an empty or half-written one."""
    from aecore.atomic import atomic_write_bytes
    manifest = tmp_path / "manifest.json"
    atomic_write_bytes(manifest, json.dumps({"models": [add_small_model(tmp_path, "a")]}).encode())
    before = manifest.read_bytes()
    with disk_space(len(before) + 10), pytest.raises(WriteError):
        atomic_write_bytes(manifest, json.dumps({"models": [{"pad": "x" * 10_000}]}).encode())
    assert manifest.read_bytes() == before and len(read_manifest(tmp_path)) == 1
