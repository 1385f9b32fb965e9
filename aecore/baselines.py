"""What an autoencoder's compression is measured against: PCA (the best *linear*
autoencoder, fitted on the training set), per-image PNG / JPEG / WebP with Pillow, and
gzip of the raw bytes. Pixels are float32 in [0,1]; MNIST's are exactly k/255."""
from __future__ import annotations

import functools
import gzip
import io

import numpy as np
import torch
from PIL import Image
from torch import nn

# Pillow save options per format; quality is added for the lossy ones.
CODECS = {"png": dict(format="PNG", optimize=True),
          "jpeg": dict(format="JPEG"),
          "webp": dict(format="WEBP", method=6)}
LOSSY = ("jpeg", "webp")


class PCA(nn.Module):
    """The first `code_size` principal components: encode = project, decode = mean + back-
    projection, clamped to [0,1]. Same interface as an autoencoder, so codes of PCA are
    quantised and stored exactly like an autoencoder's."""

    name = "pca"

    def __init__(self, mean: torch.Tensor, components: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float().reshape(784))              # (784,)
        self.register_buffer("components", components.float().reshape(-1, 784))  # (k,784), orthonormal rows
        self.code_size = len(self.components)
        self.config = {"code_size": self.code_size}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x.reshape(len(x), 784) - self.mean) @ self.components.T      # (B,k)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.components + self.mean).clamp(0, 1).reshape(-1, 1, 28, 28)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def fit_pca(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (784,), all 784 components (784,784) by falling variance) of (N,1,28,28)
    images: eigenvectors of the covariance, computed in float64. numpy's eigh: torch's
    is ~15x slower here when its threads compete with another process."""
    x = images.reshape(len(images), -1).double()
    mean = x.mean(0)
    centred = x - mean
    _, vectors = np.linalg.eigh((centred.T @ centred).numpy() / max(len(x) - 1, 1))
    components = torch.from_numpy(vectors[:, ::-1].T.copy())  # eigh sorts ascending
    return mean.float(), components.float()


@functools.lru_cache(maxsize=1)
def _train_pca() -> tuple[torch.Tensor, torch.Tensor]:
    from .data import load_mnist
    return fit_pca(load_mnist("train")[0])


def pca_model(code_size: int, images: torch.Tensor | None = None) -> PCA:
    """PCA with `code_size` components, fitted on `images` or (cached) the 60,000
    MNIST training images."""
    if not isinstance(code_size, int) or not 1 <= code_size <= 784:
        raise ValueError(f"PCA code_size must be an integer from 1 to 784, got {code_size!r}")
    mean, components = fit_pca(images) if images is not None else _train_pca()
    return PCA(mean, components[:code_size]).eval()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N,1,28,28) in [0,1] -> (N,28,28) uint8 (exact for MNIST)."""
    return (images.reshape(-1, 28, 28).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def codec_roundtrip(images: torch.Tensor, codec: str, quality: int | None = None
                    ) -> tuple[float, torch.Tensor]:
    """Each image saved alone as `codec` ('png', 'jpeg', 'webp') at `quality` (1..100,
    lossy codecs only): (mean bytes per image, decoded images (N,1,28,28) in [0,1])."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of: {', '.join(CODECS)}")
    if (codec in LOSSY) != (quality is not None):
        raise ValueError(f"{codec} {'needs' if codec in LOSSY else 'takes no'} quality")
    options = CODECS[codec] | ({"quality": int(quality)} if quality is not None else {})
    total, decoded = 0, []
    for pixels in to_uint8(images):
        buffer = io.BytesIO()
        Image.fromarray(pixels, "L").save(buffer, **options)
        total += buffer.tell()
        buffer.seek(0)
        decoded.append(np.asarray(Image.open(buffer).convert("L")))
    out = torch.from_numpy(np.stack(decoded)).float().div_(255).unsqueeze(1)
    return total / len(images), out


def gzip_bytes_per_image(images: torch.Tensor) -> float:
    """Lossless reference: gzip -9 of all the raw uint8 pixels, per image."""
    return len(gzip.compress(to_uint8(images).tobytes(), 9, mtime=0)) / len(images)
