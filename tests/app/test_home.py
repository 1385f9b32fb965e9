import base64
import json
import subprocess
import sys

from aecore.manifest import read_example
from aecore.shipped import weights_dir
from tests.conftest import ROOT


def test_home_renders_the_shipped_models(run_page):
    at = run_page("app.py")
    assert not at.exception
    assert at.title[0].value == "MNIST Autoencoder Lab"
    table = at.dataframe[0].value
    manifest = json.loads((weights_dir() / "manifest.json").read_text())["models"]
    assert list(table["model"]) == [e["file"].removesuffix(".pt") for e in manifest]
    assert list(table["MSE"]) == [round(e["metrics"]["mse"], 5) for e in manifest]
    from aecore.noise import BLIND, NOISE_LABELS
    for row, e in zip(table["trained for"], manifest):   # Home reads the words from the torch-free aecore.noise_kinds
        kind = e["metrics"]["noise"]
        if kind == BLIND:
            assert row == "denoising every kind, blind", row   # short: the ranges are in the header's help
        elif kind:
            assert row == f"denoising {NOISE_LABELS[kind]} {e['metrics']['noise_level']:g}", row
        else:
            assert row == "reconstruction", row
    # issue 10: a VAE's negative ELBO in nats, from its recorded metrics; nothing for the others
    for row, e in zip(table["−ELBO nats"], manifest):
        if e["model"] in ("vae", "vae2d"):
            assert row == round(e["metrics"]["nelbo"], 1), e["file"]
        else:
            assert row is None or row != row, e["file"]   # None or NaN
    assert "status" not in table   # every model is ready: the column only appears for one that is not
    assert list(table)[:4] == ["model", "architecture", "code size", "MSE"]   # figures before the words
    # input, the code as a chart, reconstruction: the best plain model's recorded example
    best = min((e for e in manifest if not e["metrics"]["noise"]), key=lambda e: e["metrics"]["mse"])
    images = at.get("image")
    assert len(images) == 3
    assert f"the code of **{best['file'].removesuffix('.pt')}**: {best['code_size']} numbers" in \
        [c.value for c in at.caption]
    url = images[1].proto.imgs[0].url
    assert url.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(url.split(",", 1)[1]).decode()
    assert svg.count("<rect ") == best["code_size"]          # one bar per code number


def test_home_renders_without_importing_torch():
    """The page a fresh server shows first does not wait for torch (seconds to import): the
    script runs with torch made unimportable. Only the background warm-up needs it."""
    script = f"""
import sys, threading
sys.modules["torch"] = None            # `import torch` now raises ImportError
threading.excepthook = lambda args: None   # the warm-up thread fails without torch: fine here
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(ROOT / "app.py")!r}, default_timeout=30).run()
assert not at.exception, [e.value for e in at.exception]
assert len(at.get("image")) == 3 and len(at.dataframe) == 1 and not at.warning
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_home_names_an_unavailable_model(run_page, tmp_path, monkeypatch):
    import shutil
    for p in weights_dir().iterdir():
        if p.is_file():   # weights/checkerboard/ is the Checkerboard page's own folder
            shutil.copy(p, tmp_path / p.name)
    first = json.loads((tmp_path / "manifest.json").read_text())["models"][0]["file"]
    (tmp_path / first).write_bytes(b"garbage")
    monkeypatch.setenv("AECORE_WEIGHTS", str(tmp_path))
    import ui
    ui.shipped.clear()
    try:
        at = run_page("app.py")
        assert not at.exception
        assert any(first.removesuffix(".pt") in w.value and "unavailable" in w.value for w in at.warning)
        assert "unavailable" in list(at.dataframe[0].value["status"])
        assert list(at.dataframe[0].value)[1] == "status"   # beside the model's name
    finally:
        ui.shipped.clear()


def test_home_computes_the_example_when_the_manifest_has_none(run_page, tmp_path, monkeypatch):
    """A weights folder whose manifest was written without examples: the picture comes from
    the model itself, and it is the same picture."""
    import shutil
    for p in weights_dir().iterdir():
        if p.is_file():   # weights/checkerboard/ is the Checkerboard page's own folder
            shutil.copy(p, tmp_path / p.name)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    recorded = {e["file"]: read_example(e) for e in manifest["models"]}
    for e in manifest["models"]:
        del e["example"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("AECORE_WEIGHTS", str(tmp_path))
    import ui
    ui.shipped.clear()
    try:
        at = run_page("app.py")
        assert not at.exception and len(at.get("image")) == 3
        best = min((e for e in manifest["models"] if not e["metrics"]["noise"]), key=lambda e: e["metrics"]["mse"])
        assert f"the code of **{best['file'].removesuffix('.pt')}**: {best['code_size']} numbers" in \
            [c.value for c in at.caption]
        assert recorded[best["file"]] is not None
    finally:
        ui.shipped.clear()


def test_the_entry_script_is_named_home():
    """`streamlit run app.py` names the sidebar's first entry after the entry script's resolved
    file name (the `pages/` convention): app.py must lead to Home.py (the browser proof is
    tests/browser/test_deep_links.py)."""
    assert (ROOT / "app.py").resolve() == (ROOT / "Home.py").resolve()
    assert (ROOT / "app.py").resolve().name == "Home.py"


def test_home_explains_mse_psnr_and_ssim(run_page):
    """Issue 15.6: the table's measures are explained in plain words where they first appear,
    and each of their columns carries the same text as a tooltip."""
    from aecore.metric_help import MEANING
    at = run_page("app.py")
    assert not at.exception
    shown = "\n".join(m.value for m in at.markdown)
    for key in ("mse", "psnr", "ssim", "nelbo"):
        assert MEANING[key] in shown, key
    config = json.loads(at.dataframe[0].proto.columns)
    helps = {name: (c or {}).get("help") for name, c in config.items()}
    assert MEANING["mse"] in helps.get("MSE", "")
    assert MEANING["psnr"] in helps.get("PSNR dB", "")
    assert MEANING["ssim"] in helps.get("SSIM", "")
    from aecore.noise_kinds import blind_ranges   # the blind denoiser's short cell, its ranges in the header's help
    assert blind_ranges() in helps.get("trained for", ""), helps.get("trained for")
