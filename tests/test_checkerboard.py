"""Tests for aecore.checkerboard: the checkerboard score on synthetic patterns (checked
against its DFT definition) and on real decoders."""
from __future__ import annotations

import math

import pytest
import torch

import aecore
from aecore.checkerboard import (checkerboard_power, checkerboard_share, decoder_response,
                                 error_report, grid_ratio, grid_ratio_of, neighbour_differences,
                                 periodic_component, random_codes, signed_to_unit)
from aecore.shipped import shipped_models

ii, jj = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
CHECKER = (-1.0) ** (ii + jj)                                  # the (pi,pi) pattern
BLOB = torch.exp(-((ii - 13.5) ** 2 + (jj - 11.0) ** 2) / (2 * 5.0 ** 2))   # smooth


def nyquist_share(e: torch.Tensor) -> float:
    """Reference: share of the power at (pi,0), (0,pi), (pi,pi) of the 2-D DFT."""
    f = torch.fft.fft2(e.double()).abs().pow(2)
    return ((f[14, 0] + f[0, 14] + f[14, 14]) / f.sum()).item()


def test_pure_checkerboard_scores_one():
    assert checkerboard_share(CHECKER).item() == pytest.approx(1.0, abs=1e-12)
    assert checkerboard_share(0.03 * CHECKER).item() == pytest.approx(1.0, abs=1e-12)


def test_any_zero_mean_2x2_tile_scores_one():
    tile = torch.tensor([[0.3, -0.1], [-0.5, 0.3]])
    assert checkerboard_share(tile.repeat(14, 14)).item() == pytest.approx(1.0, abs=1e-12)


def test_smooth_error_scores_about_zero():
    assert checkerboard_share(BLOB).item() < 1e-3
    assert checkerboard_share(torch.full((28, 28), 0.2)).item() == pytest.approx(0.0, abs=1e-15)


def test_mixture_scores_the_power_fraction():
    # the blob and checkerboard are almost orthogonal, so the share is ~ 1 / (1 + |blob|^2/|c|^2)
    e = BLOB + 0.1 * CHECKER
    expected = (0.1 ** 2 * 784) / (0.1 ** 2 * 784 + BLOB.pow(2).sum().item())
    assert checkerboard_share(e).item() == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("seed", range(3))
def test_share_equals_nyquist_power_share_of_the_dft(seed):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(28, 28, generator=g) + 0.3 * CHECKER + BLOB
    assert checkerboard_share(e).item() == pytest.approx(nyquist_share(e), rel=1e-9)


def test_white_noise_scores_its_expected_baseline():
    e = torch.randn(2000, 28, 28, generator=torch.Generator().manual_seed(0))
    assert checkerboard_share(e).mean().item() == pytest.approx(3 / 784, rel=0.1)


def test_periodic_component_is_a_projection():
    e = torch.randn(5, 28, 28, generator=torch.Generator().manual_seed(1))
    c = periodic_component(e)
    assert torch.allclose(periodic_component(c), c, atol=1e-6)        # idempotent
    assert torch.allclose((c * (e - c)).sum(dim=(1, 2)), torch.zeros(5), atol=1e-4)  # orthogonal


def test_batched_shape_zero_error_and_power():
    e = torch.stack([CHECKER, BLOB, torch.zeros(28, 28)])
    share = checkerboard_share(e)
    assert share.shape == (3,) and share[2] == 0
    assert checkerboard_power(0.5 * CHECKER).item() == pytest.approx(0.25)


def test_period_four_and_bad_period():
    tile = torch.randn(4, 4, generator=torch.Generator().manual_seed(2))
    assert checkerboard_share((tile - tile.mean()).repeat(7, 7), period=4).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="period"):
        checkerboard_share(CHECKER, period=3)


def test_centre_ignores_the_mean():
    assert checkerboard_share(CHECKER + 5.0).item() < 0.05
    assert checkerboard_share(CHECKER + 5.0, centre=True).item() == pytest.approx(1.0)


def blocks(seed=0, size=2):
    """An image of constant size x size blocks, like a 1-channel k=s=size transposed conv."""
    g = torch.Generator().manual_seed(seed)
    return torch.kron(torch.rand(28 // size, 28 // size, generator=g), torch.ones(size, size))


def test_neighbour_differences_by_hand():
    x = torch.zeros(4, 4)
    x[:, 1] = 1.0                     # a vertical line in column 1
    # horizontal pairs (0,1) and (1,2) jump by 1, pairs (2,3), (3,0) do not; no vertical jumps
    assert neighbour_differences(x, 2).tolist() == pytest.approx([0.25, 0.25])
    assert neighbour_differences(x, 4).tolist() == pytest.approx([0.5, 0.5, 0.0, 0.0])


def test_grid_ratio_of_blocks_and_of_unaligned_images():
    assert grid_ratio(blocks()).item() == math.inf                  # jumps only at block edges
    assert grid_ratio(blocks(size=4), period=4).item() == math.inf
    assert grid_ratio(torch.zeros(28, 28)).item() == 1.0
    # the same blocks moved by one pixel put every jump *inside* the 2-pixel grid
    assert grid_ratio(blocks().roll(1, -1).roll(1, -2)).item() == 0.0
    # a checkerboard jumps everywhere alike: no grid
    assert grid_ratio(CHECKER).item() == pytest.approx(1.0)
    noise = torch.rand(500, 28, 28, generator=torch.Generator().manual_seed(1))
    assert grid_ratio_of(noise) == pytest.approx(1.0, abs=0.01)


def test_grid_ratio_of_test_digits_is_one(mnist_test):
    digits = mnist_test[0][:2000, 0]
    assert grid_ratio_of(digits) == pytest.approx(1.0, abs=0.02)
    # shifting permutes the phases exactly: a shift by the period changes nothing
    assert grid_ratio_of(digits.roll(2, -1)) == pytest.approx(grid_ratio_of(digits), rel=1e-12)


def test_grid_ratio_pools_images():
    a, b = blocks(1) * 0.1 + CHECKER, CHECKER
    d = (neighbour_differences(a.double()) + neighbour_differences(b.double())) / 2
    assert grid_ratio_of(torch.stack([a, b])) == pytest.approx((d[1] / d[0]).item())


def test_signed_to_unit_maps_zero_to_grey():
    d = signed_to_unit(torch.tensor([-0.2, 0.0, 0.1]))
    assert d.tolist() == pytest.approx([0.0, 0.5, 0.75])
    d = signed_to_unit(torch.tensor([-0.2, 0.0, 0.1]), scale=0.1)
    assert d.tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_random_codes_draw_each_dimension_from_its_own_values():
    codes = torch.tensor([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0]])
    r = random_codes(codes, 50, seed=3)
    assert r.shape == (50, 2)
    assert set(r[:, 0].tolist()) <= {0.0, 1.0, 2.0} and set(r[:, 1].tolist()) <= {10.0, 20.0, 30.0}
    assert torch.equal(r, random_codes(codes, 50, seed=3))


def test_transpose_conv_decoder_imprints_the_pattern(mnist_test):
    """An untrained k2 s2 transpose-convolution decoder already answers a random code with
    a 2-periodic pattern; the resize-convolution decoder does far less (same init seed)."""
    images = mnist_test[0][:200]
    shares = {}
    for name in ("conv", "conv_upsample"):
        torch.manual_seed(0)
        out = decoder_response(aecore.create_model(name).eval(), images, n=16)[:, 0]
        shares[name] = checkerboard_share(out, centre=True).mean().item()
    assert shares["conv"] > 5 * shares["conv_upsample"]


def test_shipped_transpose_conv_decoder_draws_a_grid(mnist_test):
    """The trained course model jumps at its 2- and 4-pixel block edges; the trained
    upsample + convolution model hardly does (measured: 1.44 / 1.73 against 1.03 / 1.07)."""
    shipped = {s.name: s for s in shipped_models()}
    for name in ("conv-196", "conv_upsample-32"):
        if shipped[name].entry["metrics"]["images"] < 10_000:
            pytest.skip(f"{name} is a quickly trained stand-in, not the shipped model")
    recon = {name: shipped[name].model.reconstruct(mnist_test[0][:1000])[:, 0]
             for name in ("conv-196", "conv_upsample-32")}
    assert grid_ratio_of(recon["conv-196"], 2) > 1.25 and grid_ratio_of(recon["conv-196"], 4) > 1.4
    assert grid_ratio_of(recon["conv_upsample-32"], 2) < 1.1


def test_error_report_matches_direct_computation(mnist_test):
    images = mnist_test[0][:300]
    torch.manual_seed(0)
    model = aecore.create_model("conv").eval()
    r = error_report(model, images, batch=128)
    recon = model.reconstruct(images)[:, 0]
    e = recon - images[:, 0]
    assert r["images"] == 300
    assert r["mse"] == pytest.approx(e.pow(2).mean().item(), rel=1e-5)
    assert r["share"] == pytest.approx(checkerboard_share(e).mean().item(), rel=1e-5)
    assert torch.allclose(r["mean_error"], e.mean(0), atol=1e-6)
    assert r["share_of_mean"] == pytest.approx(checkerboard_share(e.mean(0)).item(), rel=1e-4)
    assert r["power"] == pytest.approx(checkerboard_power(e).mean().item(), rel=1e-4)
    assert r["grid2"] == pytest.approx(grid_ratio_of(recon, 2), rel=1e-6)
    assert r["grid4"] == pytest.approx(grid_ratio_of(recon, 4), rel=1e-6)
