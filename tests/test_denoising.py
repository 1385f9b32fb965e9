"""aecore.denoising: seeded comparisons of denoisers and filters, scored against clean digits."""
import threading

import pytest
import torch

from aecore import denoising, metrics
from aecore.denoising import (CLASSIC, NOISY, as_batch, code_of, compare, curve_levels, on_slider, pick_digits,
                              psnr_curve, reconstructions)
from aecore.filters import median
from aecore.noise import LEVEL_RANGE, NOISE_KINDS, add_noise
from aecore.shipped import shipped_models


def identity(x):
    return x


@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0][:200]


@pytest.fixture(scope="module")
def shipped_denoiser():
    found = [s for s in shipped_models() if s.model is not None and s.is_denoiser]
    if not found:
        pytest.skip("no denoising autoencoder in the weights folder")
    return found[0]


def test_compare_scores_each_method_against_the_clean_digits(digits):
    clean = digits[:8]
    out = compare(clean, "gaussian", 0.4, 3, {"median": lambda x: median(x, 3), "same": identity})
    assert list(out) == [NOISY, "median", "same"]
    noisy = add_noise(clean, "gaussian", 0.4, 3)  # the reference: the same seeded noise
    torch.testing.assert_close(out[NOISY].images, noisy)
    torch.testing.assert_close(out["median"].images, median(noisy, 3))
    torch.testing.assert_close(out["median"].psnr, metrics.psnr(median(noisy, 3), clean))
    torch.testing.assert_close(out["same"].ssim, metrics.ssim(noisy, clean))
    for scored in out.values():
        assert scored.images.shape == clean.shape
        assert scored.mse.shape == scored.psnr.shape == scored.ssim.shape == (8,)


def test_compare_is_deterministic_and_follows_the_seed(digits):
    clean = digits[:4]
    for kind in NOISE_KINDS:
        a = compare(clean, kind, 0.3, 7, {})[NOISY].images
        assert torch.equal(a, compare(clean, kind, 0.3, 7, {})[NOISY].images)
        assert not torch.equal(a, compare(clean, kind, 0.3, 8, {})[NOISY].images)


def test_without_noise_the_input_is_the_clean_digit(digits):
    out = compare(digits[:2], None, 0.0, 0, {"same": identity})
    assert torch.equal(out[NOISY].images, digits[:2])
    assert out["same"].mean("mse") == 0.0


def test_classic_filters_match_published_figures(mnist_test):
    # DESIGN.md, measured on MNIST test digits with Gaussian noise sigma 0.5, clipped:
    # noisy 9.4 dB, Gaussian blur 12.4 dB, median 3x3 14.2 dB.
    out = compare(mnist_test[0][:500], "gaussian", 0.5, 0, CLASSIC)
    assert out[NOISY].mean("psnr") == pytest.approx(9.4, abs=0.15)
    assert out["median 3x3"].mean("psnr") == pytest.approx(14.2, abs=0.3)
    assert out["Gaussian blur σ=1"].mean("psnr") == pytest.approx(12.4, abs=0.4)


def test_median_beats_salt_and_pepper_noise(digits):
    out = compare(digits, "salt_pepper", 0.2, 0, CLASSIC)
    assert out["median 3x3"].mean("psnr") > out[NOISY].mean("psnr") + 5


def test_shipped_denoiser_beats_the_noisy_input(digits, shipped_denoiser):
    m = shipped_denoiser.entry["metrics"]
    out = compare(digits, m["noise"], m["noise_level"], 0, {"denoiser": shipped_denoiser.model})
    assert out["denoiser"].mean("psnr") > out[NOISY].mean("psnr") + 1.0


def test_psnr_curve_has_one_value_per_level_and_agrees_with_compare(digits):
    levels = curve_levels("gaussian", 5)
    curve = psnr_curve({"median 3x3": CLASSIC["median 3x3"]}, digits[:50], "gaussian", levels, seed=2)
    assert list(curve) == [NOISY, "median 3x3"]
    assert all(len(values) == len(levels) for values in curve.values())
    assert curve[NOISY] == sorted(curve[NOISY], reverse=True)  # more noise, lower PSNR
    at = compare(digits[:50], "gaussian", levels[2], 2, {"median 3x3": CLASSIC["median 3x3"]})
    assert curve["median 3x3"][2] == pytest.approx(at["median 3x3"].mean("psnr"), abs=1e-5)
    assert curve == psnr_curve({"median 3x3": CLASSIC["median 3x3"]}, digits[:50], "gaussian", levels, seed=2)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_curve_levels_span_the_slider_range(kind):
    levels = curve_levels(kind)
    assert len(levels) == 10 and levels == sorted(levels)
    assert levels[0] > 0 and levels[-1] == pytest.approx(LEVEL_RANGE[kind][0])


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_the_default_level_and_the_chart_levels_are_slider_positions(kind):
    """The Denoise page shows its figures at the slider position nearest the slider's value
    (on_slider): a default off the steps would show another level's figures under its own."""
    for level in [LEVEL_RANGE[kind][2], *curve_levels(kind)]:
        assert on_slider(kind, level) == pytest.approx(level, abs=1e-9), (kind, level)


def test_curve_levels_rejects_unknown_noise():
    with pytest.raises(ValueError, match="unknown noise 'speckle'"):
        curve_levels("speckle")


def test_pick_digits(mnist_test):
    labels = mnist_test[1]
    idx = pick_digits(labels, 6, seed=1)
    assert len(idx) == 6 and len(set(idx.tolist())) == 6
    assert torch.equal(idx, pick_digits(labels, 6, seed=1))
    assert not torch.equal(idx, pick_digits(labels, 6, seed=2))
    sevens = pick_digits(labels, 5, seed=1, digit=7)
    assert (labels[sevens] == 7).all()
    with pytest.raises(ValueError, match="no images of class 11"):
        pick_digits(labels, 1, 0, digit=11)


def test_reconstructions_of_one_digit(digits):
    digit = digits[0, 0].numpy()
    out = reconstructions(digit, {"same": identity, "blur": CLASSIC["Gaussian blur σ=1"]})
    assert list(out) == ["same", "blur"]
    assert out["same"].mean("mse") == 0.0
    assert out["blur"].images.shape == (1, 1, 28, 28)
    assert out["blur"].ssim is None  # not computed for the Draw page
    assert 0 < out["blur"].mean("mse") < 0.1


def reconstruct_while_held(asks, started, release) -> list:
    """`reconstructions(digit, models)` for each ask in its own thread, as concurrent sessions do:
    the first runs alone and its gate model holds it (having set `started`) while the others start
    and queue behind it; then `release` lets them all finish. Each result (or RuntimeError), in order."""
    out = [None] * len(asks)

    def call(i):
        try:
            out[i] = reconstructions(*asks[i])
        except RuntimeError as e:
            out[i] = e
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(asks))]
    threads[0].start()
    assert started.wait(10)
    for t in threads[1:]:
        t.start()
    while len(denoising._RECONSTRUCT._waiting) < len(asks) - 1:   # every later call queued
        threading.Event().wait(0.001)
    release.set()
    for t in threads:
        t.join(10)
    return out


def test_concurrent_reconstructions_share_a_batch_and_each_gets_its_own(digits, shipped_denoiser):
    """As the Draw page's sessions do: strokes that arrive while a pass runs share the next one
    (aecore.coalesce); each gets what it would have got alone, from its own models."""
    started, release, sizes = threading.Event(), threading.Event(), []

    def gate(x):  # holds the first pass until every other call waits
        sizes.append(len(x))
        started.set()
        release.wait(10)
        return x
    mine = {"gate": gate, "denoiser": shipped_denoiser.model}
    other = {"gate": gate, "blur": CLASSIC["Gaussian blur σ=1"]}      # another session's models
    asks = [(digits[i, 0].numpy(), mine if i % 3 else other) for i in range(7)]
    out = reconstruct_while_held(asks, started, release)
    assert sizes[0] == 1 and sorted(sizes[1:]) == [2, 4]   # the waiting six: a pass per set of models
    for (digit, models), got in zip(asks, out):
        alone = compare(as_batch(digit), None, 0.0, 0, models, with_ssim=False)
        assert list(got) == list(models)
        for label in models:
            assert got[label].images.shape == (1, 1, 28, 28)
            assert torch.allclose(got[label].images, alone[label].images, atol=1e-5)
            assert got[label].mse.item() == pytest.approx(alone[label].mse.item(), abs=1e-7)


def test_a_failing_model_fails_only_its_own_sessions_strokes(digits):
    """Two sets of models in one batch: the pass of the set whose model raises gives its error
    to its own callers; the other set's strokes are rebuilt as usual."""
    started, release = threading.Event(), threading.Event()

    def gate(x):
        started.set()
        release.wait(10)
        return x

    def broken(x):
        raise RuntimeError("this model cannot run")
    good, bad = {"gate": gate, "blur": CLASSIC["Gaussian blur σ=1"]}, {"gate": gate, "broken": broken}
    asks = [good, good, bad, good, bad]
    out = reconstruct_while_held([(digits[i, 0].numpy(), m) for i, m in enumerate(asks)], started, release)
    for models, got in zip(asks, out):
        if models is bad:
            assert isinstance(got, RuntimeError) and "cannot run" in str(got)
        else:
            assert list(got) == ["gate", "blur"]
    assert list(reconstructions(digits[0, 0].numpy(), good)) == ["gate", "blur"]   # and it keeps serving


def test_as_batch_and_code_of(digits):
    class Halves:  # a stand-in encoder: the mean of the top and the bottom half
        def encode(self, x):
            return torch.stack([x[:, 0, :14].mean((1, 2)), x[:, 0, 14:].mean((1, 2))], 1)
    digit = digits[0, 0].numpy()
    assert as_batch(digit).shape == (1, 1, 28, 28)
    code = code_of(Halves(), digit)
    assert code == pytest.approx([digit[:14].mean(), digit[14:].mean()])
    with pytest.raises(ValueError, match="28x28"):
        as_batch(digit[:20])


def test_benchmark_measures_only_the_roles_asked_for(digits, shipped_denoiser):
    rows = denoising.benchmark({"d": shipped_denoiser.model}, digits, roles=("noisy", "matched", "blind"))
    assert {r["role"] for r in rows} <= {"noisy", "matched", "blind"}
    assert [r["noise"] for r in rows if r["role"] == "noisy"] == list(NOISE_KINDS)
    everything = denoising.benchmark({"d": shipped_denoiser.model}, digits)
    assert {r["role"] for r in everything} >= {"noisy", "classic"}
    assert [r for r in everything if r["role"] in ("noisy", "matched", "blind")] == rows
    with pytest.raises(ValueError, match="unknown role"):
        denoising.benchmark({}, digits, roles=("best",))
