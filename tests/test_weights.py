"""The shipped checkpoints: every model is there, reproducible from its recorded command,
and meets the quality figures on the full MNIST test set."""
import hashlib
import json

import pytest
import torch

import aecore
from aecore.evaluation import evaluate_model
from aecore.manifest import read_example
from aecore.shipped import make_example, shipped_models, weights_dir

pytestmark = pytest.mark.slow

PCA32_MSE = 0.0152        # PCA with 32 components on the test set, measured here
BEST_SMALL_CODE_MSE = 0.0050
DENOISE_PSNR_DB = 20.0    # at Gaussian sigma 0.5 (noisy input: 9.4 dB, median 3x3: 14.2 dB)


@pytest.fixture(scope="module")
def shipped():
    return shipped_models()


@pytest.fixture(scope="module")
def measured(shipped, mnist_test):
    images = mnist_test[0]
    return {s.name: evaluate_model(s.model, images, noise=s.entry["metrics"]["noise"],
                                   level=s.entry["metrics"]["noise_level"]) for s in shipped}


def test_every_registered_model_and_a_denoiser_is_shipped(shipped):
    assert all(s.model is not None for s in shipped), [s.error for s in shipped if s.error]
    assert {s.model.name for s in shipped} >= set(aecore.list_models())
    assert any(s.is_denoiser for s in shipped)


def test_manifest_records_command_and_file_hash(shipped):
    for s in shipped:
        assert s.entry["command"].startswith("python -m aecore train ")
        assert f"--out weights/{s.entry['file']}" in s.entry["command"]
        data = (weights_dir() / s.entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == s.entry["sha256"]
        assert s.entry["metrics"]["images"] == 10000


def test_the_recorded_examples_are_what_the_models_give_now(shipped, mnist_test):
    """The Home page shows the manifest's example without running the model: it must be current."""
    for s in shipped:
        digit, code, reconstruction = read_example(s.entry)
        fresh_digit, fresh_code, fresh = read_example({"example": make_example(s.model, mnist_test[0])})
        assert (digit == fresh_digit).all()
        assert abs(torch.tensor(code) - torch.tensor(fresh_code)).max() < 1e-3, s.name
        assert abs(reconstruction - fresh).max() <= 1 / 255 + 1e-6, s.name


def test_total_size_under_30_mb():
    assert sum(p.stat().st_size for p in weights_dir().glob("*.pt")) < 30 * 2**20


def test_manifest_metrics_are_the_measured_ones(shipped, measured):
    for s in shipped:
        assert measured[s.name]["mse"] == pytest.approx(s.entry["metrics"]["mse"], rel=1e-3)


def test_simple_beats_pca_32(measured):
    assert measured["simple-32"]["mse"] <= PCA32_MSE


def test_best_small_code_model(shipped, measured):
    small = [s.name for s in shipped if s.model.code_size <= 32 and not s.is_denoiser]
    assert min(measured[n]["mse"] for n in small) <= BEST_SMALL_CODE_MSE


def test_denoiser_at_sigma_half(shipped, measured):
    denoisers = [s.name for s in shipped if s.entry["metrics"]["noise"] == "gaussian"
                 and s.entry["metrics"]["noise_level"] == 0.5]
    assert denoisers and max(measured[n]["psnr"] for n in denoisers) >= DENOISE_PSNR_DB
