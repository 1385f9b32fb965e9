import pytest
import torch

from aecore.noise import NOISE_KINDS, add_noise


@pytest.fixture
def x(mnist_test):
    return mnist_test[0][:32]


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_seeded_and_in_range(kind, x):
    a, b, c = add_noise(x, kind, 0.3, 1), add_noise(x, kind, 0.3, 1), add_noise(x, kind, 0.3, 2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_level_zero_is_identity(kind, x):
    assert torch.equal(add_noise(x, kind, 0.0, 0), x)


def test_gaussian_sigma(x):
    flat = torch.full((1000, 1, 28, 28), 0.5)
    assert (add_noise(flat, "gaussian", 0.1, 0) - 0.5).std().item() == pytest.approx(0.1, rel=0.02)


def test_salt_pepper_fraction():
    flat = torch.full((200, 1, 28, 28), 0.5)
    changed = (add_noise(flat, "salt_pepper", 0.2, 0) != 0.5).float().mean().item()
    assert changed == pytest.approx(0.2, abs=0.01)


def test_erasing_area():
    ones = torch.ones(500, 1, 28, 28)
    erased = (add_noise(ones, "erasing", 0.25, 0) == 0).float().mean().item()
    assert erased == pytest.approx(0.25, abs=0.03)


@pytest.mark.parametrize("kind,level,message", [("speckle", 0.1, "unknown noise"),
                                                 ("salt_pepper", 1.5, "must be in"),
                                                 ("gaussian", -1, "must be in")])
def test_bad_arguments(kind, level, message, x):
    with pytest.raises(ValueError, match=message):
        add_noise(x, kind, level)


def test_what_a_denoiser_was_trained_on_in_the_words_every_page_uses():
    """One phrasing (aecore.noise_kinds.describe_noise) for Home, the Denoise page and the bench."""
    from aecore.noise import BLIND, LEVEL_RANGE, NOISE_LABELS, describe_noise
    assert describe_noise(None) is None and describe_noise("", 0.3) is None   # a plain autoencoder
    assert describe_noise("salt_pepper", 0.3) == "salt-and-pepper noise 0.3"
    assert describe_noise("gaussian") == "Gaussian noise"   # a checkpoint that recorded no level
    blind = describe_noise(BLIND, 0.0)
    for kind, (top, _, _) in LEVEL_RANGE.items():
        assert f"{NOISE_LABELS[kind]} 0–{top:g}" in blind
    assert describe_noise(BLIND, 0.0, brief=True) == "every kind, blind"   # a table cell (Home)
    assert describe_noise("gaussian", 0.5, brief=True) == "Gaussian 0.5"
    assert describe_noise("speckle", 0.1) == "an unknown noise 'speckle'"
