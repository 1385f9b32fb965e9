"""Side-by-side scores of denoising methods: autoencoders and classic filters applied
to the same seeded noisy digits, scored against the clean ones (aecore.evaluation
scores them; a *method* is defined there). With `kind=None` nothing is corrupted and
`compare` scores plain reconstructions (the Draw page)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .checkpoint import trained_noise
from .coalesce import Coalescer
from .evaluation import IMAGE_METRICS, apply, evaluate, score
from .filters import FILTERS
from .inpaint import INPAINTING, inpaint
from .models import is_autoencoder
from .noise import BLIND, LEVEL_RANGE, NOISE_KINDS, NOISE_LABELS, corrupt

NOISY = "noisy input"   # label of the corrupted input itself, the baseline every method must beat
# what a row of `benchmark` is to its noise kind: the input itself, the kind's classic
# baseline, a denoiser trained for that kind, the blind denoiser, a denoiser of another kind
ROLES = ("noisy", "classic", "matched", "blind", "other")

# The classic method of each kind, the one a denoiser has to beat: the strongest classic
# filter on noisy MNIST digits (a 3x3 median beats a Gaussian blur on Gaussian noise too,
# `python -m bench --only denoise`), and inpainting for erased areas, which is told which
# pixels were erased, an advantage no autoencoder gets.
BASELINE = {"gaussian": "median 3x3", "salt_pepper": "median 3x3", "erasing": INPAINTING}
# The classic filters plotted in the PSNR-vs-level chart.
CLASSIC = {name: FILTERS[name] for name in ("median 3x3", "Gaussian blur σ=1")}


def classic_methods(kind: str | None) -> dict:
    """{label: method}: the classic methods that apply to `kind`, its baseline first."""
    methods = dict(FILTERS) | ({INPAINTING: inpaint} if kind == "erasing" else {})
    first = BASELINE.get(kind)
    return {first: methods[first], **methods} if first in methods else methods


@dataclass
class Scored:
    """A method's output on a batch and its per-image scores against the clean batch."""
    images: torch.Tensor    # (B,1,28,28) in [0,1]
    mse: torch.Tensor       # (B,)
    psnr: torch.Tensor      # (B,) dB
    ssim: torch.Tensor | None   # (B,); None when not asked for

    def mean(self, name: str) -> float:
        return getattr(self, name).mean().item()


def scored(images: torch.Tensor, clean: torch.Tensor, with_ssim: bool = True) -> Scored:
    images = images.clamp(0, 1)
    values = score(images, clean, IMAGE_METRICS if with_ssim else ("mse", "psnr"))
    return Scored(images, values["mse"], values["psnr"], values.get("ssim"))


@torch.no_grad()
def compare(clean: torch.Tensor, kind: str | None, level: float, seed: int,
            methods: Mapping[str, object], with_ssim: bool = True) -> dict[str, Scored]:
    """{NOISY: the noisy input, label: each method's output}, all scored against `clean`
    (B,1,28,28). Labels keep the order of `methods`."""
    _check_batch(clean)
    noisy, mask = corrupt(clean, kind, level, seed)
    out = {NOISY: scored(noisy, clean, with_ssim)}
    for label, method in methods.items():
        out[label] = scored(apply(method, noisy, mask), clean, with_ssim)
    return out


def as_batch(digit) -> torch.Tensor:
    """One (28,28) image (numpy or tensor) in [0,1] -> a batch (1,1,28,28) float32."""
    x = torch.as_tensor(digit, dtype=torch.float32)
    if tuple(x.shape) != (28, 28):
        raise ValueError(f"expected a 28x28 image, got shape {tuple(x.shape)}")
    return x.view(1, 1, 28, 28)


def reconstructions(digit, models: Mapping[str, object]) -> dict[str, Scored]:
    """Every model's reconstruction of one clean (28,28) digit, scored against it (the Draw
    page). No SSIM: the page does not show it, and its first use costs a 2 s import.
    Concurrent calls (the app's sessions) share one batched pass per model (_RECONSTRUCT)."""
    result = _RECONSTRUCT((as_batch(digit), models))
    if isinstance(result, Exception):
        raise result
    return result


def _reconstruct_batch(requests: list[tuple[torch.Tensor, Mapping[str, object]]]) -> list[dict[str, Scored] | Exception]:
    """One `compare` pass for every request with the same models (the same objects under the
    same labels), then each request's row of it; a pass that fails gives its error to its
    own requests only (one session's broken model does not fail another's stroke)."""
    groups: dict[tuple, list[int]] = {}
    for i, (_, models) in enumerate(requests):
        groups.setdefault(tuple((label, id(m)) for label, m in models.items()), []).append(i)
    out: list = [None] * len(requests)
    for rows in groups.values():
        models = requests[rows[0]][1]
        try:
            scores = compare(torch.cat([requests[i][0] for i in rows]), None, 0.0, 0, models, with_ssim=False)
        except Exception as e:  # noqa: BLE001 - raised in each of these callers' threads
            for i in rows:
                out[i] = e
            continue
        del scores[NOISY]
        for j, i in enumerate(rows):
            out[i] = {label: Scored(s.images[j:j + 1], s.mse[j:j + 1], s.psnr[j:j + 1], None)
                      for label, s in scores.items()}
    return out


_RECONSTRUCT = Coalescer(_reconstruct_batch)


@torch.no_grad()
def code_of(model, digit) -> list[float]:
    """The code of one (28,28) digit (a VAE's: the mean)."""
    return model.encode(as_batch(digit))[0].tolist()


def noisy_input(noisy: torch.Tensor) -> torch.Tensor:
    """The 'method' that returns the noisy input itself: the floor every method must beat."""
    return noisy


def psnr_curve(methods: Mapping[str, object], images: torch.Tensor, kind: str,
               levels: Sequence[float], seed: int = 0) -> dict[str, list[float]]:
    """Mean PSNR (dB) over `images` at each noise level: {NOISY or label: [one per level]}."""
    _check_batch(images)
    methods = {NOISY: noisy_input, **methods}
    return {label: [evaluate(method, images, noise=kind, level=level, seed=seed, metrics=("psnr",))["psnr"]
                    for level in levels] for label, method in methods.items()}


def trained_for(model) -> str | None:
    """The noise kind a model was trained to remove (BLIND for all kinds), None for a
    plain autoencoder."""
    noise = trained_noise(model)
    return noise and noise[0]


def matched(kind: str, denoisers: Mapping[str, object]) -> str | None:
    """Label of the denoiser trained for `kind` (the first such, an autoencoder before a model
    that is not one: the lesson's), else of a blind one, else None."""
    ordered = sorted(denoisers.items(), key=lambda item: not is_autoencoder(item[1]))   # stable
    for wanted in (kind, BLIND):
        for label, model in ordered:
            if trained_for(model) == wanted:
                return label
    return None


def benchmark(denoisers: Mapping[str, object], images: torch.Tensor, seed: int = 0,
              roles: Sequence[str] = ROLES) -> list[dict]:
    """Every noise kind at its default level (LEVEL_RANGE) on `images`: the noisy input,
    the kind's classic baseline and every denoiser, as rows {noise, level, method, role,
    psnr} (role: "noisy", "classic", "matched" (trained for this kind), "blind" or "other").
    Only the rows of `roles` are measured (format_benchmark needs "noisy")."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(sorted(unknown))}; choose from {', '.join(ROLES)}")
    rows = []
    for kind in NOISE_KINDS:
        level = LEVEL_RANGE[kind][2]
        methods = {NOISY: ("noisy", noisy_input), BASELINE[kind]: ("classic", classic_methods(kind)[BASELINE[kind]])}
        for label, model in denoisers.items():
            trained = trained_for(model)
            methods[label] = ("matched" if trained == kind else "blind" if trained == BLIND else "other", model)
        for label, (role, method) in methods.items():
            if role not in roles:
                continue
            psnr = evaluate(method, images, noise=kind, level=level, seed=seed, metrics=("psnr",))["psnr"]
            rows.append({"noise": kind, "level": level, "method": label, "role": role, "psnr": psnr})
    return rows


def format_benchmark(rows: list[dict]) -> str:
    """The denoising table `python -m aecore evaluate` prints: PSNR and the gain over the
    noisy input, by noise kind."""
    head = f"{'noise':>19s}  {'method':34s} {'role':>8s} {'PSNR dB':>8s} {'gain dB':>8s}"
    lines = [head, "-" * len(head)]
    for kind in dict.fromkeys(r["noise"] for r in rows):
        group = [r for r in rows if r["noise"] == kind]
        floor = next(r["psnr"] for r in group if r["role"] == "noisy")
        for i, r in enumerate(group):
            where = f"{NOISE_LABELS[kind]} {r['level']:g}" if i == 0 else ""
            lines.append(f"{where:>19s}  {r['method'][:34]:34s} {r['role']:>8s} {r['psnr']:8.2f} "
                         f"{r['psnr'] - floor:+8.2f}")
    return "\n".join(lines)


def curve_levels(kind: str, points: int = 10) -> list[float]:
    """`points` evenly spaced levels up to the slider's maximum for `kind`, without 0
    (no noise: the PSNR of the input is infinite)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise {kind!r}; choose one of: {', '.join(NOISE_KINDS)}")
    top = LEVEL_RANGE[kind][0]
    return [round(top * i / points, 4) for i in range(1, points + 1)]


def slider_levels(kind: str) -> list[float]:
    """Every position of the Denoise page's slider for `kind`: 0 to its maximum in its steps
    (LEVEL_RANGE), as the slider shows them."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise {kind!r}; choose one of: {', '.join(NOISE_KINDS)}")
    top, step, _ = LEVEL_RANGE[kind]
    return [round(i * step, 6) for i in range(round(top / step) + 1)]


def on_slider(kind: str, level: float) -> float:
    """`level` as the slider position it is (a browser's float arithmetic may be off by 1e-16)."""
    return min(slider_levels(kind), key=lambda position: abs(position - level))


def pick_digits(labels: torch.Tensor, n: int, seed: int, digit: int | None = None) -> torch.Tensor:
    """Indices of `n` test images drawn at random with `seed` (only of class `digit` if given)."""
    pool = torch.arange(len(labels)) if digit is None else torch.nonzero(labels == digit).flatten()
    if len(pool) == 0:
        raise ValueError(f"no images of class {digit}")
    g = torch.Generator().manual_seed(int(seed))
    return pool[torch.randperm(len(pool), generator=g)[:n]]


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected a batch of MNIST images (B,1,28,28), got shape {tuple(x.shape)}")
