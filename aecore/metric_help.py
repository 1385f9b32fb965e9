"""What MSE, PSNR, SSIM and a VAE's negative ELBO mean, in plain words: the one place the app's explanation and
its tooltips come from (aecore.metrics computes them). Torch-free, so the Home page can
show it before torch loads."""

NAMES = {"mse": "MSE", "psnr": "PSNR", "ssim": "SSIM", "nelbo": "−ELBO"}
SPELLED = {"mse": "mean squared error", "psnr": "peak signal-to-noise ratio, in decibels",
           "ssim": "structural similarity", "nelbo": "negative evidence lower bound, in nats per digit"}
IMAGE_SCORES = ("mse", "psnr", "ssim")   # what every model gets; nelbo only a VAE

MEANING = {
    "mse": "The average squared difference between rebuilt and original pixels (0 is black, "
           "1 white). 0 is a perfect copy: lower is better.",
    "psnr": "The same error on a log scale, 10·log10(1/MSE). Higher is better: 10 dB more is "
            "10 times less squared error; ∞ is an exact copy.",
    "ssim": "Compares small patches (brightness, contrast, the pattern of the strokes), closer "
            "to how people judge a picture than a pixel error. 1 is identical: higher is better.",
    "nelbo": "A variational autoencoder's own score, the quantity it is trained to lower: how many "
             "nats (units of information, 1 nat ≈ 1.44 bits) its code and decoder need to describe a "
             "test digit, the reconstruction term plus the KL cost of the code. Lower is better; it "
             "bounds the digit's true negative log-likelihood from above. For scale: PyTorch's "
             "example VAE (20 numbers) reports about 105.",
}


def explanation(*keys: str) -> str:
    """A markdown list explaining `keys` (MSE, PSNR, SSIM by default), one line each."""
    return "\n".join(f"- **{NAMES[k]}** ({SPELLED[k]}): {MEANING[k]}" for k in (keys or IMAGE_SCORES))


def tooltip(*keys: str, plain: bool = False) -> str:
    """The same explanations as one tooltip, a paragraph each: Markdown for st.* `help=`, or
    `plain` text for an HTML title attribute."""
    bold = "" if plain else "**"
    return "\n\n".join(f"{bold}{NAMES[k]}{bold} ({SPELLED[k]}): {MEANING[k]}" for k in keys)
