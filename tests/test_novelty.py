"""aecore.novelty: a drawing's reconstruction error placed among the test digits' errors."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from aecore import novelty
from aecore.preprocess import to_mnist
from aecore.shipped import shipped_models


def drawn(*lines, width=20):
    """MNIST-style (28,28) image of polylines drawn on a 280x280 black canvas."""
    img = Image.new("L", (280, 280), 0)
    for points in lines:
        ImageDraw.Draw(img).line(points, fill=255, width=width, joint="curve")
    return to_mnist(np.asarray(img))


LETTER_A = drawn([(70, 240), (140, 40), (210, 240)], [(100, 160), (180, 160)])
SEVEN = drawn([(80, 60), (200, 60), (120, 230)])


def scribble(seed):
    points = [tuple(int(v) for v in p) for p in np.random.default_rng(seed).integers(30, 250, (10, 2))]
    return drawn(points, width=18)


@pytest.fixture(scope="module")
def judge(mnist_test):
    models = {s.name: s.model for s in shipped_models() if s.model is not None}
    name, preferred = novelty.pick_model(models)
    assert preferred, f"none of {novelty.PREFERRED_MODELS} is shipped"
    reference = novelty.reference_errors(models[name], mnist_test[0])
    return lambda image: novelty.judge(models[name], image, reference)


def test_percentile_counts_the_reference_at_or_below():
    ref = np.sort(np.array([0.1, 0.2, 0.3, 0.4]))
    assert novelty.percentile_of(0.05, ref) == 0
    assert novelty.percentile_of(0.2, ref) == 50
    assert novelty.percentile_of(0.35, ref) == 75
    assert novelty.percentile_of(9.0, ref) == 100
    with pytest.raises(ValueError):
        novelty.percentile_of(0.1, np.array([]))


def test_pick_model_prefers_the_checked_ones():
    assert novelty.pick_model(["conv-196", "deep-32"]) == ("deep-32", True)
    assert novelty.pick_model(["mine"]) == ("mine", False)
    assert novelty.pick_model([]) == (None, False)


def test_reference_is_the_sorted_per_image_relative_error(mnist_test):
    import aecore
    model = aecore.create_model("simple", code_size=4).eval()
    images = mnist_test[0][:50]
    ref = novelty.reference_errors(model, images)
    direct = ((model.reconstruct(images) - images) ** 2).sum((1, 2, 3)) / (images ** 2).sum((1, 2, 3))
    assert ref == pytest.approx(np.sort(direct.numpy()), rel=1e-5)


def test_a_blank_image_has_a_finite_error():
    import aecore
    model = aecore.create_model("simple", code_size=4).eval()
    error = novelty.errors(model, torch.zeros(1, 1, 28, 28))[0]
    assert np.isfinite(error) and error > 0


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4])
def test_real_test_digits_look_like_digits(judge, mnist_test, index):
    result = judge(mnist_test[0][index, 0].numpy())
    assert result.verdict == "looks like a digit" and result.is_digit_like, result


def test_a_drawn_seven_looks_like_a_digit(judge):
    assert judge(SEVEN).is_digit_like


def test_a_letter_is_unlike_mnist(judge):
    result = judge(LETTER_A)
    assert not result.is_digit_like and result.percentile >= novelty.UNUSUAL, result
    assert "unlike anything in MNIST" in result.verdict


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scribbles_are_unusual(judge, seed):
    result = judge(scribble(seed))
    assert not result.is_digit_like, result
    assert result.error > 2 * result.median


def test_a_reconstruction_the_caller_has_gives_the_same_verdict_without_running_the_model(mnist_test):
    """The Draw page passes the reconstruction it shows; the judging model does not run twice."""
    from aecore import denoising
    models = {s.name: s.model for s in shipped_models() if s.model is not None}
    name, _ = novelty.pick_model(models)
    reference = novelty.reference_errors(models[name], mnist_test[0][:500])
    shown = denoising.reconstructions(LETTER_A, {name: models[name]})[name].images
    calls = []
    handle = models[name].encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        given = novelty.judge(models[name], LETTER_A, reference, shown)
        assert calls == []
        assert novelty.judge(models[name], LETTER_A, reference) == given and calls
    finally:
        handle.remove()
