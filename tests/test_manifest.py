"""aecore.manifest (the torch-free view of weights/) and the lazy `aecore` namespace."""
import base64
import hashlib
import subprocess
import sys

import numpy as np
import pytest

import aecore
from aecore import manifest
from aecore.errors import CheckpointError
from tests.conftest import ROOT


def test_importing_aecore_and_its_manifest_does_not_import_torch():
    code = ("import sys; import aecore, aecore.manifest, aecore.atomic; "
            "aecore.manifest.read_manifest(); print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_the_public_names_load_on_first_use():
    import aecore.checkpoint
    import aecore.trainer   # the submodule, imported first, does not hide the function
    assert callable(aecore.train) and aecore.train is aecore.trainer.train
    assert aecore.CheckpointError is aecore.checkpoint.CheckpointError is CheckpointError
    assert {"train", "load_mnist", "create_model", "to_mnist"} <= set(dir(aecore))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        aecore.nope


def test_file_problem_names_a_missing_changed_or_unchecked_file(tmp_path):
    data = b"checkpoint bytes"
    (tmp_path / "a.pt").write_bytes(data)
    good = {"file": "a.pt", "sha256": hashlib.sha256(data).hexdigest()}
    assert manifest.file_problem(tmp_path, good) is None
    assert manifest.file_problem(tmp_path, {"file": "a.pt"}) is None          # no hash recorded: not checked
    assert "No such file" in manifest.file_problem(tmp_path, {"file": "gone.pt"})
    (tmp_path / "a.pt").write_bytes(data[:5])                                 # truncated after the first check
    assert "truncated or corrupt" in manifest.file_problem(tmp_path, good)


@pytest.mark.parametrize("text, message", [("", "is missing"), ('{"models": [', "unreadable manifest"),
                                           ('{"other": 1}', "unreadable manifest")])
def test_a_bad_manifest_is_refused_with_its_path(tmp_path, text, message):
    if text:
        (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        manifest.read_manifest(tmp_path)


def test_a_manifest_over_the_limit_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    """Both readers (the pages' and the one `train --manifest` updates) read at most the limit."""
    monkeypatch.setattr(manifest, "MAX_MANIFEST_BYTES", 2**20)
    path = tmp_path / "manifest.json"
    path.write_text('{"models": [], "padding": "' + "x" * 2**20 + '"}')
    with pytest.raises(CheckpointError, match=r"manifest.json: unreadable manifest \(the file is over the 1 MB "
                                              r"limit for a manifest\)"):
        manifest.read_manifest(tmp_path)
    with pytest.raises(ValueError, match=r"not a usable manifest \(the file is over the 1 MB limit"):
        manifest.read_manifest_file(path)
    monkeypatch.setattr(manifest, "MAX_MANIFEST_BYTES", 2 * 2**20)
    assert manifest.read_manifest(tmp_path) == [] and manifest.read_manifest_file(path)["models"] == []


def test_example_images_round_trip_to_a_255th():
    image = np.random.default_rng(0).random((28, 28), dtype=np.float32)
    back = manifest.unpack_image(manifest.pack_image(image))
    assert back.shape == (28, 28) and np.abs(back - image).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("example", [
    None, "text", {}, {"input": "", "code": [1.0], "reconstruction": ""},
    {"input": base64.b64encode(bytes(783)).decode(), "code": [1.0], "reconstruction": base64.b64encode(bytes(784)).decode()},
    {"input": base64.b64encode(bytes(784)).decode(), "code": [], "reconstruction": base64.b64encode(bytes(784)).decode()},
    {"input": base64.b64encode(bytes(784)).decode(), "code": [float("nan")],
     "reconstruction": base64.b64encode(bytes(784)).decode()},
    {"input": "not base64!", "code": [1.0], "reconstruction": "x"},
])
def test_a_malformed_example_reads_as_none(example):
    assert manifest.read_example({"example": example}) is None


def test_the_shipped_manifest_has_an_example_for_every_model():
    for entry in manifest.read_manifest():
        digit, code, reconstruction = manifest.read_example(entry)
        assert len(code) == entry["code_size"] and digit.shape == reconstruction.shape == (28, 28)
