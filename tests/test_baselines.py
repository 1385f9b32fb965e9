"""Compression baselines (aecore.baselines): PCA, per-image PNG / JPEG / WebP, gzip."""
import gzip

import numpy as np
import pytest
import torch

import aecore
from aecore import baselines, compress, metrics


@pytest.fixture(scope="module")
def train_subset():
    return aecore.load_mnist("train")[0][:2000]


@pytest.fixture(scope="module")
def fitted(train_subset):
    """(mean, components) of the subset, fitted once for the module."""
    return baselines.fit_pca(train_subset)


def pca(fitted, k):
    return baselines.PCA(fitted[0], fitted[1][:k])


@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0][:100]


def test_pca_with_all_784_components_reconstructs_exactly(fitted, digits):
    assert (pca(fitted, 784).reconstruct(digits) - digits).abs().max() < 1e-5


def test_pca_matches_numpy_svd(train_subset, fitted, digits):
    """The k-component reconstruction equals the one from numpy's SVD of the centred data."""
    x = train_subset.reshape(len(train_subset), -1).double().numpy()
    mean = x.mean(0)
    basis = np.linalg.svd(x - mean, full_matrices=False)[2][:10]            # (10,784)
    y = digits.reshape(len(digits), -1).double().numpy()
    reference = np.clip((y - mean) @ basis.T @ basis + mean, 0, 1)
    ours = pca(fitted, 10).reconstruct(digits).reshape(len(digits), -1)
    assert np.abs(ours.numpy() - reference).max() < 1e-4


def test_pca_gets_better_with_more_components_and_quacks_like_an_autoencoder(train_subset, fitted, digits):
    errors = [metrics.mse(pca(fitted, k).reconstruct(digits), digits).mean().item() for k in (2, 8, 32, 128)]
    assert errors == sorted(errors, reverse=True)
    small = baselines.pca_model(8, train_subset[:500])
    assert small.encode(digits).shape == (100, 8) and small.code_size == 8
    data = compress.compress_images(small, digits, 8)
    assert compress.decompress_bytes(data, small).shape == digits.shape
    with pytest.raises(ValueError, match="from 1 to 784"):
        baselines.pca_model(0, train_subset)


@pytest.mark.slow
def test_pca_32_on_the_training_set_matches_the_known_figure(mnist_test):
    """DESIGN.md: PCA with 32 components, MSE 0.0152 per pixel on the test set."""
    mse = metrics.mse(baselines.pca_model(32).reconstruct(mnist_test[0]), mnist_test[0]).mean().item()
    assert mse == pytest.approx(0.0152, abs=0.0003)


def test_png_is_lossless(digits):
    size, decoded = baselines.codec_roundtrip(digits, "png")
    assert torch.equal(decoded, digits) and 100 < size < 784


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_lossy_codecs_get_bigger_and_better_with_quality(digits, codec):
    results = [baselines.codec_roundtrip(digits, codec, q) for q in (5, 25, 50, 75, 95)]
    sizes = [size for size, _ in results]
    psnrs = [metrics.psnr(decoded, digits).mean().item() for _, decoded in results]
    assert sizes == sorted(sizes) and psnrs == sorted(psnrs)
    assert psnrs[0] < 30 < psnrs[-1]


def test_codec_arguments_are_checked(digits):
    with pytest.raises(ValueError, match="unknown codec 'gif'"):
        baselines.codec_roundtrip(digits, "gif")
    with pytest.raises(ValueError, match="jpeg needs quality"):
        baselines.codec_roundtrip(digits, "jpeg")
    with pytest.raises(ValueError, match="png takes no quality"):
        baselines.codec_roundtrip(digits, "png", 50)


def test_gzip_reference_holds_the_exact_pixels(mnist_test):
    images = mnist_test[0][:1000]
    pixels = baselines.to_uint8(images)
    assert torch.equal(torch.from_numpy(pixels).float().div(255).unsqueeze(1), images)  # MNIST is k/255
    size = baselines.gzip_bytes_per_image(images)
    assert size * 1000 == len(gzip.compress(pixels.tobytes(), 9, mtime=0))
    assert 120 < size < 200   # DESIGN.md: about 160 bytes per image on the whole test set
