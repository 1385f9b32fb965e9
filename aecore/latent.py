"""The latent space of a trained autoencoder: codes of a data set, 2-D projections of
them, interpolation between two digits, the VAE's prior samples and 2-D manifold, and
sweeps of one code dimension. UI-free: the Latent space page calls these.

Images are (B,1,28,28) in [0,1]; codes are (B,code_size); every decoded image is
clamped to [0,1]."""
from __future__ import annotations

import numpy as np
import torch

from .models import can_sample, in_batches

PROJECTIONS = ("pca", "tsne")
TSNE_POINTS = 2000    # t-SNE is O(N log N) per step but slow on 2 cores: a subset suffices
TSNE_PCA_DIMS = 50    # t-SNE on a PCA-reduced code when it is wider (van der Maaten 2008)
TSNE_ITERATIONS = 500  # sklearn's default 1000 doubles the wait for little change on MNIST


class LatentError(ValueError):
    """A request the chosen model or data cannot serve; the message says why."""


@torch.no_grad()
def encode_all(model, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """(N,1,28,28) -> (N,code_size) codes (the mean for a VAE), in batches."""
    return in_batches(model.encode, images, batch).float()


@torch.no_grad()
def decode(model, codes: torch.Tensor) -> torch.Tensor:
    """(B,code_size) -> (B,1,28,28) in [0,1]."""
    return model.decode(codes).clamp(0, 1)


def subset_indices(total: int, n: int, seed: int = 0) -> np.ndarray:
    """n distinct indices of range(total) in increasing order, seeded (all when n >= total)."""
    if n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, n, replace=False))


def project(codes, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N,D) codes -> (N,2) float32 coordinates by PCA or t-SNE (scikit-learn), seeded so
    the same codes and seed give the same picture. A 1-D code is drawn on a line."""
    x = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    if method not in PROJECTIONS:
        raise LatentError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    if len(x) < 3:
        raise LatentError(f"a projection needs at least 3 codes, got {len(x)}")
    if x.shape[1] < 2:
        return np.column_stack([x[:, 0], np.zeros(len(x))]).astype(np.float32)
    from sklearn.decomposition import PCA
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
    from sklearn.manifold import TSNE
    if x.shape[1] > TSNE_PCA_DIMS:
        x = PCA(n_components=min(TSNE_PCA_DIMS, len(x)), random_state=seed).fit_transform(x)
    tsne = TSNE(n_components=2, init="pca", random_state=seed, n_jobs=1, max_iter=TSNE_ITERATIONS,
                perplexity=min(30.0, (len(x) - 1) / 3))
    return tsne.fit_transform(x).astype(np.float32)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between codes a, b (D,) at fractions t (S,) -> (S,D)
    (Shoemake 1985; for generative models White 2016, "Sampling Generative Networks"):
    a at t=0, b at t=1, along the great circle when |a| = |b|. Falls back to the straight
    line when a and b are (anti)parallel, where the circle is undefined."""
    t = t.reshape(-1, 1).to(a.dtype)
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if torch.sin(omega).abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.reshape(-1, 1).to(a.dtype)
    return (1 - t) * a + t * b


def interpolate(model, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8,
                spherical: bool = False) -> torch.Tensor:
    """Decoded path from the code of image x_a to that of x_b: (steps,1,28,28); the first
    and last images are the reconstructions of x_a and x_b. Spherical suits a VAE, whose
    codes of typical samples lie near a shell of radius sqrt(code_size)."""
    if steps < 2:
        raise LatentError(f"an interpolation needs at least 2 steps, got {steps}")
    z = encode_all(model, torch.stack([x_a.reshape(1, 28, 28), x_b.reshape(1, 28, 28)]))
    t = torch.linspace(0, 1, steps)
    return decode(model, (slerp if spherical else lerp)(z[0], z[1], t))


def require_vae(model) -> None:
    if not can_sample(model):
        raise LatentError(f"{getattr(model, 'name', 'this model')} is not a variational "
                          "autoencoder: only a VAE has a prior to sample from")


def sample_prior(model, n: int, seed: int = 0) -> torch.Tensor:
    """n new digits decoded from the VAE prior N(0, I), seeded: (n,1,28,28) in [0,1]."""
    require_vae(model)
    return model.sample(n, torch.Generator().manual_seed(seed)).clamp(0, 1)


def manifold_levels(n: int = 15, extent: float = 0.9) -> torch.Tensor:
    """n evenly spaced probability levels covering the central `extent` of N(0,1), (n,)."""
    if not 0 < extent < 1:
        raise LatentError(f"extent must lie strictly between 0 and 1, got {extent}")
    return torch.linspace((1 - extent) / 2, (1 + extent) / 2, n, dtype=torch.float64)


def manifold_grid(model, n: int = 15, extent: float = 0.9) -> torch.Tensor:
    """The decoded plane of a 2-D code (Kingma & Welling 2014, fig. 4): an n x n grid of
    codes at the Gaussian quantiles `manifold_levels(n, extent)`, so every cell covers the
    same prior mass. (n*n,1,28,28), row-major from the top left; z1 grows to the right,
    z2 upwards (the top row has the largest z2)."""
    if model.code_size != 2:
        raise LatentError(f"the manifold needs a 2-D code; this model's code has "
                          f"{model.code_size} dimensions")
    z = torch.special.ndtri(manifold_levels(n, extent)).float()      # (n,) quantiles
    z2, z1 = torch.meshgrid(z.flip(0), z, indexing="ij")              # (n,n) each
    return decode(model, torch.stack([z1.flatten(), z2.flatten()], 1))


def manifold_extent(n: int = 15, extent: float = 0.9) -> tuple[float, float]:
    """(low, high) level of the outer cell edges of `manifold_grid`: each cell spans one
    level step centred on its level, so the plane covers [low, high] on both axes."""
    levels = manifold_levels(n, extent)
    half = (levels[1] - levels[0]).item() / 2 if n > 1 else 0.5
    return levels[0].item() - half, levels[-1].item() + half


def to_levels(codes: torch.Tensor) -> torch.Tensor:
    """Codes -> their N(0,1) probability levels Phi(z): the coordinates of `manifold_grid`."""
    return torch.special.ndtr(torch.as_tensor(codes, dtype=torch.float64))


def tile(images: torch.Tensor, cols: int) -> np.ndarray:
    """(B,1,28,28) -> one (rows*28, cols*28) float array, row-major; blank cells stay 0."""
    rows = -(-len(images) // cols)
    out = np.zeros((rows * 28, cols * 28), np.float32)
    for i, im in enumerate(images.detach().reshape(-1, 28, 28).numpy()):
        r, c = divmod(i, cols)
        out[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28] = im
    return out


def sweep(model, code: torch.Tensor, dim: int, values) -> torch.Tensor:
    """Decode copies of `code` (code_size,) with dimension `dim` set to each of `values`:
    (len(values),1,28,28) — what one coordinate of the code controls."""
    code = torch.as_tensor(code, dtype=torch.float32).reshape(-1)
    if not 0 <= dim < len(code):
        raise LatentError(f"dimension {dim} is out of range: the code has {len(code)} dimensions")
    codes = code.repeat(len(values), 1)
    codes[:, dim] = torch.as_tensor(values, dtype=torch.float32)
    return decode(model, codes)


def code_range(codes: torch.Tensor, dim: int, q: float = 0.01) -> tuple[float, float]:
    """(low, high) quantiles q and 1-q of dimension `dim` over `codes`: a slider range."""
    v = codes[:, dim].double()
    lo, hi = torch.quantile(v, q).item(), torch.quantile(v, 1 - q).item()
    return (lo, hi) if hi > lo else (lo - 1.0, hi + 1.0)


def nth_of_class(labels: torch.Tensor, digit: int, k: int = 0) -> int:
    """Index of the k-th example (0-based, wrapping) of class `digit` in `labels`."""
    where = torch.nonzero(torch.as_tensor(labels) == digit).flatten()
    if len(where) == 0:
        raise LatentError(f"there is no digit {digit} in this set")
    return int(where[k % len(where)])
