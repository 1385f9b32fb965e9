import json

from aecore.shipped import weights_dir


def test_home_renders_the_shipped_models(run_page):
    at = run_page("app.py")
    assert not at.exception
    assert at.title[0].value == "MNIST Autoencoder Lab"
    table = at.dataframe[0].value
    manifest = json.loads((weights_dir() / "manifest.json").read_text())["models"]
    assert list(table["model"]) == [e["file"].removesuffix(".pt") for e in manifest]
    assert list(table["MSE"]) == [round(e["metrics"]["mse"], 5) for e in manifest]
    assert len(at.get("image")) == 2  # input and reconstruction


def test_home_names_an_unavailable_model(run_page, tmp_path, monkeypatch):
    import shutil
    for p in weights_dir().iterdir():
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
    finally:
        ui.shipped.clear()
