"""Tests for aecore.latent: codes, projections, interpolation, prior samples, manifold,
sweeps. Small untrained models: the maths must hold for any weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import aecore
from aecore import latent as L


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: aecore.create_model(name, **cfg).eval() for name, cfg in [
        ("simple", {"code_size": 8}), ("vae", {"code_size": 4, "width": 8}),
        ("vae2d", {"width": 8})]}


@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0][:300], mnist_test[1][:300]


def test_encode_all_matches_one_batch(models, digits):
    x = digits[0]
    codes = L.encode_all(models["simple"], x, batch=64)
    assert codes.shape == (300, 8)
    with torch.no_grad():
        assert torch.allclose(codes, models["simple"].encode(x), atol=1e-5)


@pytest.mark.parametrize("method", L.PROJECTIONS)
def test_projection_shape_and_determinism(models, digits, method):
    codes = L.encode_all(models["simple"], digits[0][:60])     # t-SNE: small keeps it fast
    a, b = L.project(codes, method, seed=1), L.project(codes, method, seed=1)
    assert a.shape == (60, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_pca_projection_matches_svd_reference():
    x = np.random.default_rng(0).normal(size=(200, 6)) * [5, 3, 1, 0.5, 0.1, 0.1]
    p = L.project(x, "pca")
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    ref = xc @ vt[:2].T
    np.testing.assert_allclose(np.abs(p), np.abs(ref), rtol=1e-4, atol=1e-4)   # up to sign


def test_tsne_keeps_separated_clusters_apart():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (30, 10)), rng.normal(20, 1, (30, 10))])
    p = L.project(x, "tsne", seed=0)
    inside = np.linalg.norm(p[:30] - p[:30].mean(0), axis=1).mean()
    assert np.linalg.norm(p[:30].mean(0) - p[30:].mean(0)) > 3 * inside


def test_projection_errors_and_one_dimensional_codes():
    with pytest.raises(L.LatentError, match="unknown projection"):
        L.project(np.zeros((10, 3)), "umap")
    line = L.project(np.arange(5.0).reshape(5, 1), "pca")
    assert line.shape == (5, 2) and np.all(line[:, 1] == 0)


def test_subset_indices_seeded_distinct_sorted():
    a = L.subset_indices(10000, 2000, seed=4)
    assert len(np.unique(a)) == 2000 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, L.subset_indices(10000, 2000, seed=4))
    assert len(L.subset_indices(50, 2000)) == 50


def test_slerp_endpoints_and_norms():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, generator=g), torch.randn(16, generator=g)
    a, b = 3 * a / a.norm(), 3 * b / b.norm()
    t = torch.linspace(0, 1, 9)
    path = L.slerp(a, b, t)
    assert path.shape == (9, 16)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    assert torch.allclose(path.norm(dim=1), torch.full((9,), 3.0), atol=1e-4)
    # constant angular speed along the great circle
    angles = torch.arccos((path @ a / 9).clamp(-1, 1))
    assert torch.allclose(angles, t * angles[-1], atol=1e-3)
    # the straight line cuts inside the sphere
    assert L.lerp(a, b, torch.tensor([0.5])).norm() < 3.0 - 1e-3


def test_slerp_parallel_codes_fall_back_to_the_line():
    a = torch.tensor([1.0, 2.0])
    path = L.slerp(a, 2 * a, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(path, torch.stack([a, 1.5 * a, 2 * a]))


@pytest.mark.parametrize("name,spherical", [("simple", False), ("vae", True), ("vae", False)])
def test_interpolation_endpoints_are_the_reconstructions(models, digits, name, spherical):
    model, x = models[name], digits[0]
    path = L.interpolate(model, x[0], x[1], steps=7, spherical=spherical)
    assert path.shape == (7, 1, 28, 28)
    assert torch.allclose(path[0], model.reconstruct(x[:1])[0], atol=1e-5)
    assert torch.allclose(path[-1], model.reconstruct(x[1:2])[0], atol=1e-5)
    with pytest.raises(L.LatentError, match="at least 2 steps"):
        L.interpolate(model, x[0], x[1], steps=1)


def test_vae_samples_in_range_seeded(models):
    s = L.sample_prior(models["vae"], 6, seed=5)
    assert s.shape == (6, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert torch.equal(s, L.sample_prior(models["vae"], 6, seed=5))
    assert not torch.equal(s, L.sample_prior(models["vae"], 6, seed=6))
    with pytest.raises(L.LatentError, match="not a variational"):
        L.sample_prior(models["simple"], 2)


def test_manifold_grid_shape_and_layout(models):
    model = models["vae2d"]
    grid = L.manifold_grid(model, n=5, extent=0.9)
    assert grid.shape == (25, 1, 28, 28)
    z = torch.special.ndtri(L.manifold_levels(5, 0.9)).float()
    # top-left cell: smallest z1, largest z2; bottom-right: largest z1, smallest z2
    assert torch.allclose(grid[0], L.decode(model, torch.stack([z[0], z[-1]])[None])[0], atol=1e-6)
    assert torch.allclose(grid[-1], L.decode(model, torch.stack([z[-1], z[0]])[None])[0], atol=1e-6)
    assert L.manifold_levels(5, 0.9)[[0, -1]].tolist() == pytest.approx([0.05, 0.95])
    with pytest.raises(L.LatentError, match="2-D code"):
        L.manifold_grid(models["simple"])


def test_to_levels_inverts_the_quantiles():
    q = L.manifold_levels(7, 0.8)
    assert torch.allclose(L.to_levels(torch.special.ndtri(q)), q)


def test_tile_places_images_row_major():
    images = torch.arange(5.0).reshape(5, 1, 1, 1).expand(5, 1, 28, 28) / 10
    t = L.tile(images, cols=3)
    assert t.shape == (56, 84)
    assert t[0, 0] == 0 and t[0, 28] == pytest.approx(0.1) and t[28, 28] == pytest.approx(0.4)
    assert t[28, 56] == 0   # blank sixth cell


def test_sweep_changes_only_the_chosen_dimension(models, digits):
    model = models["simple"]
    code = L.encode_all(model, digits[0][:1])[0]
    values = [code[3].item(), 0.0, 5.0]
    out = L.sweep(model, code, 3, values)
    assert out.shape == (3, 1, 28, 28)
    assert torch.allclose(out[0], model.reconstruct(digits[0][:1])[0], atol=1e-5)
    changed = code.clone()
    changed[3] = 5.0
    assert torch.allclose(out[2], L.decode(model, changed[None])[0], atol=1e-6)
    with pytest.raises(L.LatentError, match="out of range"):
        L.sweep(model, code, 8, [0.0])


def test_code_range_and_nth_of_class():
    codes = torch.arange(100.0).reshape(100, 1)
    lo, hi = L.code_range(codes, 0, q=0.1)
    assert lo == pytest.approx(9.9) and hi == pytest.approx(89.1)
    assert L.code_range(torch.zeros(10, 1), 0) == (-1.0, 1.0)
    labels = torch.tensor([3, 1, 3, 7, 3])
    assert [L.nth_of_class(labels, 3, k) for k in range(4)] == [0, 2, 4, 0]
    with pytest.raises(L.LatentError, match="no digit 5"):
        L.nth_of_class(labels, 5)
