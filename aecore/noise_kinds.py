"""The noise kinds, their names, level ranges and the blind objective: plain data without
torch, so the Home page can name what a denoiser was trained on before torch loads.
aecore.noise applies them."""

NOISE_KINDS = ("gaussian", "salt_pepper", "erasing")
NOISE_LABELS = {"gaussian": "Gaussian", "salt_pepper": "salt-and-pepper", "erasing": "random erasing"}
# Level range per kind: (max, slider step, default). Beyond these maxima the digits are gone;
# the defaults are the levels the shipped denoisers are measured at (`python -m aecore evaluate`),
# and each is a slider position, as the Denoise chart's ten levels are (a default off the steps
# would show its figures at the nearest position instead).
LEVEL_RANGE = {"gaussian": (1.0, 0.05, 0.5), "salt_pepper": (0.6, 0.02, 0.3), "erasing": (0.5, 0.05, 0.25)}
# A *blind* denoiser is trained on every kind at once: each image gets a kind drawn at random
# and a level drawn uniformly up to that kind's maximum, so it never needs to be told either.
BLIND = "blind"
TRAINING_NOISES = (*NOISE_KINDS, BLIND)   # what a denoiser can be trained on
LEVEL_HELP = {
    "gaussian": "standard deviation of the added noise (pixels in [0,1])",
    "salt_pepper": "fraction of pixels set to black or white",
    "erasing": "fraction of the image area covered by one erased rectangle",
}


def blind_ranges() -> str:
    """The blind objective's kinds and level ranges: "Gaussian 0–1, salt-and-pepper 0–0.6, …"."""
    return ", ".join(f"{NOISE_LABELS[k]} 0–{r[0]:g}" for k, r in LEVEL_RANGE.items())


def describe_noise(kind: str | None, level: float | None = None, brief: bool = False) -> str | None:
    """What a denoiser was trained to remove, in the words every page and table uses after
    "trained on": "Gaussian noise 0.5", or the blind objective's kinds and level ranges; `brief`,
    for a table cell: "Gaussian 0.5", "every kind, blind". None for a plain autoencoder."""
    if not kind:
        return None
    if kind == BLIND:
        return "every kind, blind" + ("" if brief else f" ({blind_ranges()})")
    if kind not in NOISE_LABELS:
        return f"an unknown noise {kind!r}"
    return NOISE_LABELS[kind] + ("" if brief else " noise") + ("" if level is None else f" {level:g}")
