"""1. Reconstruction quality of every shipped model on the MNIST test set, next to PCA
with the same number of components and the deep autoencoder published by Hinton &
Salakhutdinov, "Reducing the Dimensionality of Data with Neural Networks", Science 2006
(784-1000-500-250-30, 3.00 squared error per test image)."""
from __future__ import annotations

import torch

import aecore
from aecore import baselines, metrics
from aecore.evaluation import evaluate
from aecore.models import can_sample
from aecore.shipped import shipped_models

from .common import Table, line_chart, trained_on

HINTON_2006_CODE = 30
HINTON_2006_SQUARED_ERROR = 3.00          # per image, pixels in [0,1]: MSE 3.00 / 784 = 0.0038
PCA_CURVE = (1, 2, 4, 8, 16, 30, 32, 64, 128, 196, 256)
PCA_KIND = "PCA (fit on the training set)"
PUBLISHED = "Hinton & Salakhutdinov 2006"


def _kind(s) -> str:
    if s.is_denoiser:
        return f"denoising AE (trained on {trained_on(s.entry['metrics'])}), clean input"
    return "VAE (decodes the mean)" if can_sample(s.model) else "autoencoder"


def measure(shipped, test: torch.Tensor, pca) -> list[tuple]:
    """(name, kind, code size, {'mse', 'psnr', 'ssim'}) for every loaded autoencoder, PCA at
    each of their code sizes and at 30, and the published figure. A U-Net is left out: its
    skips carry a clean input around its code, so its "reconstruction" is close to a copy."""
    ready = [s for s in shipped if s.model is not None and s.is_autoencoder]
    rows = [(s.name, _kind(s), s.model.code_size, evaluate(s.model, test)) for s in ready]
    for k in sorted({s.model.code_size for s in ready} | {HINTON_2006_CODE}):
        rows.append((f"PCA {k}", PCA_KIND, k, evaluate(pca(k), test)))
    rows.append((PUBLISHED, "published deep autoencoder (784-1000-500-250-30)", HINTON_2006_CODE,
                 {"mse": HINTON_2006_SQUARED_ERROR / 784, "psnr": None, "ssim": None}))
    return sorted(rows, key=lambda row: (row[2], row[3]["mse"]))


def figure(rows: list[tuple], test: torch.Tensor, pca) -> str:
    """SVG: the PCA curve over PCA_CURVE, every other row as a dot."""
    series = {"PCA": [(k, metrics.mse(pca(k).reconstruct(test), test).mean().item()) for k in PCA_CURVE]}
    series |= {name: [(k, r["mse"])] for name, kind, k, r in rows if kind != PCA_KIND}
    return line_chart(series, title="Reconstruction MSE vs code size (MNIST test set)",
                      x_label="code size (numbers)", y_label="MSE per pixel", log_x=True, log_y=True,
                      markers_only=set(series) - {"PCA"})


def run(quick: bool = False) -> list[Table]:
    test, _ = aecore.load_mnist("test")
    train, _ = aecore.load_mnist("train")
    if quick:
        test, train = test[:300], train[:3000]
    mean, components = baselines.fit_pca(train)          # (784,), (784,784) by falling variance
    pca = lambda k: baselines.PCA(mean, components[:k]).eval()
    shipped = shipped_models()
    rows = measure(shipped, test, pca)
    pca_mse = {k: r["mse"] for _, kind, k, r in rows if kind == PCA_KIND}
    table = Table(
        "Reconstruction quality on the MNIST test set" + (" (quick: 300 images)" if quick else ""),
        ["model", "kind", "code size", "code bytes (float32)", "MSE per pixel", "squared error per image",
         "PSNR dB", "SSIM", "MSE / PCA MSE"],
        formats={"MSE per pixel": ".4f", "squared error per image": ".2f", "PSNR dB": ".2f",
                 "SSIM": ".3f", "MSE / PCA MSE": ".2f"})
    for name, kind, k, r in rows:
        table.add(name, kind, k, 4 * k, r["mse"], 784 * r["mse"], r["psnr"], r["ssim"], r["mse"] / pca_mse[k])
    table.notes += [
        f"{len(test):,} test images; MSE, PSNR and SSIM are means over images (pixels in [0,1]). "
        f"PCA (aecore.baselines): top-k eigenvectors of the covariance of {len(train):,} training "
        "images, reconstruction clipped to [0,1]. The published row is the paper's figure "
        "(it reports no PSNR or SSIM).",
        *[f"Unavailable: {s.name} ({s.error})" for s in shipped if s.model is None],
        *[f"Left out: {s.name}, not an autoencoder (its skip connections carry the image around its code)"
          for s in shipped if s.model is not None and not s.is_autoencoder]]
    table.figure = ("bench-quality.svg", figure(rows, test, pca))
    table.headline = headline(rows, pca_mse)
    return [table]


def headline(rows: list[tuple], pca_mse: dict) -> str | None:
    models = [(r["mse"] / pca_mse[k], name, k, r["mse"]) for name, kind, k, r in rows
              if kind != PCA_KIND and name != PUBLISHED]
    if not models:
        return None
    ratio, name, k, mse = min(models)
    return (f"Reconstruction: {name} has test MSE {mse:.4f} per pixel, {ratio:.2f}x the MSE of PCA with the "
            f"same {k} components ({pca_mse[k]:.4f}); Hinton & Salakhutdinov (2006) report 0.0038 at 30.")
