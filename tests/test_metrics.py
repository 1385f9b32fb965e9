"""aecore.metrics: the plain-torch SSIM against torchmetrics (the reference, tests only)."""
import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure as reference_ssim

from aecore import metrics
from aecore.noise import add_noise


def reference(x, y):
    return reference_ssim(x.float(), y.float(), data_range=1.0, reduction="none")


@pytest.mark.parametrize("shape", [(7, 1, 28, 28), (3, 1, 16, 20), (2, 3, 32, 32)])
def test_ssim_matches_torchmetrics_on_random_batches(shape):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(shape, generator=g)
    for b in ((a + 0.3 * torch.randn(shape, generator=g)).clamp(0, 1),   # related
              torch.rand(shape, generator=g),                              # unrelated
              a.clone()):                                                  # identical: 1
        ours = metrics.ssim(b, a)
        assert ours.shape == (shape[0],)
        torch.testing.assert_close(ours, reference(b, a), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind, level", [(None, 0.0), ("gaussian", 0.5), ("salt_pepper", 0.2), ("erasing", 0.3)])
def test_ssim_matches_torchmetrics_on_mnist(mnist_test, kind, level):
    clean = mnist_test[0][:256]
    g = torch.Generator().manual_seed(1)
    # a blurred digit stands in for a reconstruction; noisy inputs cover the Denoise page
    other = torch.nn.functional.avg_pool2d(clean, 3, 1, 1) if kind is None else add_noise(clean, kind, level, g)
    ours = metrics.ssim(other, clean)
    torch.testing.assert_close(ours, reference(other, clean), atol=1e-5, rtol=0)
    assert ours.std() > 0.01   # per image, not one value repeated


def test_ssim_of_an_image_with_itself_is_one_and_falls_with_noise(mnist_test):
    clean = mnist_test[0][:16]
    torch.testing.assert_close(metrics.ssim(clean, clean), torch.ones(16))
    g = torch.Generator().manual_seed(0)
    mild, strong = (add_noise(clean, "gaussian", s, g) for s in (0.1, 0.5))
    assert (metrics.ssim(strong, clean) < metrics.ssim(mild, clean)).all()


def test_ssim_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        metrics.ssim(torch.zeros(2, 1, 28, 28), torch.zeros(3, 1, 28, 28))


def test_ssim_in_chunks_gives_each_image_its_own_value(mnist_test):
    """A batch longer than SSIM_CHUNK (and not a multiple of it) is scored in pieces: every
    image gets exactly the value it gets alone, and the values stay in order."""
    clean = mnist_test[0][: 2 * metrics.SSIM_CHUNK + 45]
    other = torch.nn.functional.avg_pool2d(clean, 3, 1, 1)
    whole = metrics.ssim(other, clean)
    assert whole.shape == (len(clean),)
    for i in (0, metrics.SSIM_CHUNK - 1, metrics.SSIM_CHUNK, len(clean) - 1):
        assert whole[i] == metrics.ssim(other[i: i + 1], clean[i: i + 1])[0]
    torch.testing.assert_close(whole, reference(other, clean), atol=1e-5, rtol=0)
