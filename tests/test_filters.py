"""aecore.filters against scipy.ndimage, the reference implementation (mode="nearest")."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from aecore.filters import FILTERS, gaussian_blur, median


def random_batch(shape=(3, 1, 28, 28), seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (2, 2, 9, 13)], ids=["mnist", "odd-shape"])
def test_median_matches_scipy(k, shape):
    x = random_batch(shape)
    expected = ndimage.median_filter(x.numpy(), size=(1, 1, k, k), mode="nearest")
    np.testing.assert_allclose(median(x, k).numpy(), expected, atol=1e-7)


def test_median_of_a_known_array():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0          # a lone salt pixel vanishes
    x[0, 0, :, 4] = 0.5          # a full column of width 1 at the edge survives (edge replicated)
    out = median(x, 3)[0, 0]
    assert out[2, 2] == 0
    assert torch.equal(out[:, 4], torch.full((5,), 0.5))
    assert torch.equal(out[:, :3], torch.zeros(5, 3))


def test_median_removes_salt_and_pepper_from_a_flat_image():
    x = torch.full((1, 1, 28, 28), 0.3)
    noisy = x.clone()
    noisy[0, 0, ::5, ::7] = 1.0   # isolated impulses
    noisy[0, 0, 2::5, 3::7] = 0.0
    assert torch.equal(median(noisy, 3), x)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_gaussian_blur_matches_scipy(sigma):
    x = random_batch((2, 1, 28, 28), seed=1)
    expected = ndimage.gaussian_filter(x.double().numpy(), sigma=(0, 0, sigma, sigma), mode="nearest")
    np.testing.assert_allclose(gaussian_blur(x, sigma).numpy(), expected, atol=1e-6)


def test_filters_do_not_import_scipy_until_used():
    """scipy takes seconds to import: the command line and the app load it only to filter."""
    import subprocess
    import sys
    code = "import sys, aecore.filters; assert 'scipy' not in sys.modules; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "ok", r.stderr[-2000:]


def test_blur_preserves_the_mean_of_digits(mnist_test):
    # A zero margin wider than the kernel radius (4) keeps all mass away from the edge,
    # where the replicated padding would add some.
    digits = torch.nn.functional.pad(mnist_test[0][:50], (6, 6, 6, 6))
    blurred = gaussian_blur(digits, 1.0)
    torch.testing.assert_close(blurred.mean(dim=(1, 2, 3)), digits.mean(dim=(1, 2, 3)), atol=1e-6, rtol=0)
    assert (blurred - digits).abs().max() > 0.1  # and it did blur


@pytest.mark.parametrize("name", list(FILTERS))
def test_filters_keep_shape_dtype_and_constants(name):
    x = torch.full((4, 1, 28, 28), 0.7)
    out = FILTERS[name](x)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, x)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="odd"):
        median(random_batch(), 4)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(random_batch(), 0.0)
    with pytest.raises(ValueError, match=r"\(B,C,H,W\)"):
        median(torch.rand(28, 28))
