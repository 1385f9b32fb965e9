"""2. Denoising on the MNIST test set: PSNR and SSIM against the clean digit for the noisy
input itself, the shipped denoising autoencoder(s), a plain autoencoder of the same
architecture, the classic filters (Gaussian blur, median) with their parameter tuned
per noise on training images, so the baselines get their best shot, and for random
erasing two inpainting methods that are told which pixels were erased. Every score comes
from aecore.evaluation.evaluate."""
from __future__ import annotations

import functools

import torch

import aecore
from aecore import filters
from aecore.evaluation import evaluate
from aecore.inpaint import inpaint
from aecore.denoising import noisy_input
from aecore.models import can_sample
from aecore.noise import BLIND
from aecore.shipped import shipped_models

from .common import Table, line_chart, trained_on

CONDITIONS = [("gaussian", 0.25), ("gaussian", 0.5), ("gaussian", 0.75), ("salt_pepper", 0.2), ("salt_pepper", 0.3),
              ("erasing", 0.25)]
CURVE_SIGMAS = (0.1, 0.25, 0.5, 0.75, 1.0)
BLUR_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0)
MEDIAN_SIZES = (3, 5)
SEED = 1234
BLUR, MEDIAN = "Gaussian blur (tuned σ)", "median filter (tuned size)"
INPAINTERS = {"inpainting, Navier-Stokes (mask given)": lambda x, m: inpaint(x, m, "ns"),
              "inpainting, Telea (mask given)": lambda x, m: inpaint(x, m, "telea")}
for _f in INPAINTERS.values():
    _f.needs_mask = True


def label(kind: str, level: float) -> str:
    return {"gaussian": f"Gaussian σ={level:g}", "salt_pepper": f"salt & pepper {level:g}",
            "erasing": f"erasing {level:g}"}[kind]


def score(method, clean: torch.Tensor, kind: str, level: float, with_ssim: bool = True) -> dict:
    """Mean PSNR (and SSIM) of `method` on `clean` corrupted by (kind, level), seed SEED."""
    r = evaluate(method, clean, noise=kind, level=level, seed=SEED,
                 metrics=("psnr", "ssim") if with_ssim else ("psnr",))
    return {"psnr": r["psnr"], "ssim": r.get("ssim")}


def tuned_filters(validation: torch.Tensor, kind: str, level: float) -> dict:
    """{row name: (filter, chosen parameter)}: blur sigma and median size with the best
    PSNR on `validation` (training images, never the test set)."""
    psnr = lambda f: score(f, validation, kind, level, with_ssim=False)["psnr"]
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
    out = {"noisy input (no denoising)": noisy_input}
    for s in denoisers:
        what = "denoising AE" if s.is_autoencoder else "U-Net, not an autoencoder"
        out[f"{s.name} ({what}, trained on {trained_on(s.entry['metrics'])})"] = s.model
    if plain is not None:
        out[f"{plain.name} (plain autoencoder)"] = plain.model
    return out


def measure(methods: dict, clean: torch.Tensor, tune) -> tuple[dict, dict]:
    """({(method, condition label): {'psnr', 'ssim'}}, {condition label: chosen filter parameters})."""
    results, chosen = {}, {}
    for kind, level in CONDITIONS:
        tuned, column = tune(kind, level), label(kind, level)
        chosen[column] = {name: param for name, (_, param) in tuned.items()}
        extra = INPAINTERS if kind == "erasing" else {}
        for name, method in (methods | {name: f for name, (f, _) in tuned.items()} | extra).items():
            results[name, column] = score(method, clean, kind, level)
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
        for name in [*methods, BLUR, MEDIAN, *INPAINTERS]:
            t.add(name, *[results[name, c][metric] if (name, c) in results else None for c in columns])
        tables.append(t)
    tables[0].notes += [
        f"{len(clean):,} test images, one fixed noise draw per condition (seed {SEED}); salt & pepper "
        "0.2 sets 20% of pixels to 0 or 1; erasing 0.25 blacks out one rectangle of 25% of the area. "
        "Scores compare the output with the clean digit. The inpainting methods (OpenCV) are told which "
        "pixels were erased; the autoencoders are not.",
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
    gaussian = [s.name for s in denoisers if s.entry["metrics"]["noise"] in ("gaussian", BLIND)] or [denoisers[0].name]
    dae = max(gaussian, key=psnr.get)
    return (f"Denoising Gaussian noise σ=0.5: {dae} {psnr[dae]:.1f} dB PSNR, median filter "
            f"{psnr['median filter']:.1f} dB, Gaussian blur {psnr['Gaussian blur']:.1f} dB, "
            f"noisy input {psnr['noisy input']:.1f} dB.")


def _curve(methods: dict, clean: torch.Tensor, tune, sigmas) -> str:
    """SVG: PSNR against Gaussian noise sigma for every method."""
    series = {}
    for sigma in sigmas:
        tuned = tune("gaussian", sigma)
        for name, method in (methods | {n: f for n, (f, _) in tuned.items()}).items():
            series.setdefault(name.split(" (")[0], []).append((sigma, score(method, clean, "gaussian", sigma, False)["psnr"]))
    return line_chart(series, title="Denoising Gaussian noise (MNIST test set)", x_label="noise σ",
                      y_label="PSNR dB")
