"""2. Denoising on the MNIST test set: PSNR and SSIM against the clean digit for the noisy
input itself, the shipped denoising autoencoder(s), a plain autoencoder of the same
architecture, and the classic filters (Gaussian blur, median) with their parameter tuned
per noise on training images, so the baselines get their best shot."""
from __future__ import annotations

import functools

import torch

import aecore
from aecore import filters, metrics
from aecore.noise import add_noise
from aecore.models import can_sample
from aecore.shipped import shipped_models

from .common import Table, line_chart

CONDITIONS = [("gaussian", 0.25), ("gaussian", 0.5), ("gaussian", 0.75), ("salt_pepper", 0.2), ("erasing", 0.25)]
CURVE_SIGMAS = (0.1, 0.25, 0.5, 0.75, 1.0)
BLUR_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0)
MEDIAN_SIZES = (3, 5)
SEED = 1234
BLUR, MEDIAN = "Gaussian blur (tuned σ)", "median filter (tuned size)"


def label(kind: str, level: float) -> str:
    return {"gaussian": f"Gaussian σ={level:g}", "salt_pepper": f"salt & pepper {level:g}",
            "erasing": f"erasing {level:g}"}[kind]


def corrupted(clean: torch.Tensor, kind: str, level: float) -> torch.Tensor:
    return add_noise(clean, kind, level, SEED)


@torch.no_grad()
def score(method, noisy: torch.Tensor, clean: torch.Tensor, with_ssim: bool = True) -> dict:
    """Mean PSNR (and SSIM) of method(noisy) against clean, in batches of 1000."""
    psnr = ssim = 0.0
    for x, y in zip(noisy.split(1000), clean.split(1000)):
        out = method(x).clamp(0, 1)
        psnr += metrics.psnr(out, y).sum().item()
        ssim += metrics.ssim(out, y).sum().item() if with_ssim else 0.0
    n = len(clean)
    return {"psnr": psnr / n, "ssim": ssim / n if with_ssim else None}


def tuned_filters(validation: torch.Tensor, kind: str, level: float) -> dict:
    """{row name: (filter, chosen parameter)}: blur sigma and median size with the best
    PSNR on `validation` (training images, never the test set)."""
    noisy = corrupted(validation, kind, level)
    psnr = lambda f: score(f, noisy, validation, with_ssim=False)["psnr"]
    blur = max(BLUR_SIGMAS, key=lambda s: psnr(lambda x: filters.gaussian_blur(x, s)))
    size = max(MEDIAN_SIZES, key=lambda k: psnr(lambda x: filters.median(x, k)))
    return {BLUR: (lambda x: filters.gaussian_blur(x, blur), f"σ={blur:g}"),
            MEDIAN: (lambda x: filters.median(x, size), f"{size}x{size}")}


def pick_models(shipped) -> tuple[list, object | None]:
    """The denoisers, and the plain autoencoder to compare with: same architecture as the
    first denoiser if one is shipped, else the plain model with the lowest recorded MSE."""
    ready = [s for s in shipped if s.model is not None]
    denoisers = [s for s in ready if s.is_denoiser]
    plain = [s for s in ready if not s.is_denoiser and not can_sample(s.model)]
    if denoisers:
        same = [s for s in plain if s.entry.get("model") == denoisers[0].entry.get("model")]
        plain = same or plain
    best = min(plain, key=lambda s: s.entry.get("metrics", {}).get("mse", 1.0), default=None)
    return denoisers, best


def methods_for(denoisers, plain) -> dict:
    out = {"noisy input (no denoising)": lambda x: x}
    for s in denoisers:
        m = s.entry["metrics"]
        out[f"{s.name} (denoising AE, trained on {m['noise']} {m['noise_level']:g})"] = s.model.reconstruct
    if plain is not None:
        out[f"{plain.name} (plain autoencoder)"] = plain.model.reconstruct
    return out


def measure(methods: dict, clean: torch.Tensor, tune) -> tuple[dict, dict]:
    """({(method, condition label): {'psnr', 'ssim'}}, {condition label: chosen filter parameters})."""
    results, chosen = {}, {}
    for kind, level in CONDITIONS:
        noisy, tuned, column = corrupted(clean, kind, level), tune(kind, level), label(kind, level)
        chosen[column] = {name: param for name, (_, param) in tuned.items()}
        for name, method in (methods | {name: f for name, (f, _) in tuned.items()}).items():
            results[name, column] = score(method, noisy, clean)
    return results, chosen


def run(quick: bool = False) -> list[Table]:
    clean, _ = aecore.load_mnist("test")
    validation = aecore.load_mnist("train")[0][-1000:]
    if quick:
        clean, validation = clean[:200], validation[:200]
    shipped = shipped_models()
    denoisers, plain = pick_models(shipped)
    methods = methods_for(denoisers, plain)
    tune = functools.cache(lambda kind, level: tuned_filters(validation, kind, level))
    results, chosen = measure(methods, clean, tune)
    columns = [label(*c) for c in CONDITIONS]
    tables = []
    for metric, unit in (("psnr", "PSNR dB, higher is better"), ("ssim", "SSIM, higher is better")):
        t = Table(f"Denoising: {unit}" + (" (quick: 200 images)" if quick else ""), ["method", *columns],
                  formats={c: ".2f" if metric == "psnr" else ".3f" for c in columns})
        for name in [*methods, BLUR, MEDIAN]:
            t.add(name, *[results[name, c][metric] for c in columns])
        tables.append(t)
    tables[0].notes += [
        f"{len(clean):,} test images, one fixed noise draw per condition (seed {SEED}); salt & pepper "
        "0.2 sets 20% of pixels to 0 or 1; erasing 0.25 blacks out one rectangle of 25% of the area. "
        "Scores compare the output with the clean digit.",
        f"Filter parameters chosen per condition for the best PSNR on {len(validation):,} training images: "
        + "; ".join(f"{c}: blur {p[BLUR]}, median {p[MEDIAN]}" for c, p in chosen.items()) + ".",
        *[f"Unavailable: {s.name} ({s.error})" for s in shipped if s.model is None],
        *([] if denoisers else ["No denoising autoencoder is shipped: its rows are missing."])]
    sigmas = (0.25, 0.75) if quick else CURVE_SIGMAS
    tables[0].figure = ("bench-denoise.svg", _curve(methods, clean, tune, sigmas))
    tables[0].headline = headline(results, denoisers)
    return tables


def headline(results: dict, denoisers) -> str | None:
    if not denoisers:
        return None
    column = label("gaussian", 0.5)
    psnr = {name.split(" (")[0]: r["psnr"] for (name, c), r in results.items() if c == column}
    dae = next(n for n in psnr if n == denoisers[0].name)
    return (f"Denoising Gaussian noise σ=0.5: {dae} {psnr[dae]:.1f} dB PSNR, median filter "
            f"{psnr['median filter']:.1f} dB, Gaussian blur {psnr['Gaussian blur']:.1f} dB, "
            f"noisy input {psnr['noisy input']:.1f} dB.")


def _curve(methods: dict, clean: torch.Tensor, tune, sigmas) -> str:
    """SVG: PSNR against Gaussian noise sigma for every method."""
    series = {}
    for sigma in sigmas:
        noisy = corrupted(clean, "gaussian", sigma)
        tuned = tune("gaussian", sigma)
        for name, method in (methods | {n: f for n, (f, _) in tuned.items()}).items():
            series.setdefault(name.split(" (")[0], []).append((sigma, score(method, noisy, clean, False)["psnr"]))
    return line_chart(series, title="Denoising Gaussian noise (MNIST test set)", x_label="noise σ",
                      y_label="PSNR dB")
