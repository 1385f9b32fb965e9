"""13. Gaussian denoising: skip connections and a dense code. Issue 10 asks for 22.0 dB at
σ = 0.5. The shipped denoiser, an autoencoder, sees the whole digit through its 128-number
code but loses the local detail a code that small cannot hold; section 11's U-Net keeps the
detail through its skips but sees little of the whole digit at once. This section puts both
in one network, a U-Net with a dense code at its bottom (aecore's `unet`, the shipped one's shape),
trains it as section 11 trains its U-Net (aecore.train, fresh noise each epoch, the same
seed, 50 epochs; weights rounded to float16, as the app ships them), and scores it every
few epochs on the test digits and seeded noise of `python -m aecore evaluate`. Its last rows
are the weighted mean of its output and the shipped autoencoder's (an ensemble of two
different networks, whose errors differ more than two autoencoders' do: section 12's blend
of the Gaussian and the blind autoencoders gained nothing).

The app ships this network, trained by the same code path with the same seed
(weights/manifest.json: denoiser-gaussian-unet); the rows say how it gets there, and how far
this machine's training budget is from the target."""
from __future__ import annotations

import torch

import aecore
from aecore.shipped import shipped_models
from aecore.trainer import TrainConfig, train

from .ceiling import KIND, LEVEL, LR, TARGET, UNetDenoiser, scored_along, target_psnr
from .common import Table, parameter_count
from .levers import Blend

WIDTH, CODE, SQUEEZE = 32, 256, 16   # section 11's width; the code's numbers; channels squeezed into it
EPOCHS, EVERY = 50, 5
WEIGHTS = (0.5, 0.6, 0.7, 0.8)       # the U-Net's share in each blend with the shipped autoencoder


def run(quick: bool = False) -> list[Table]:
    test, _ = aecore.load_mnist("test")
    train_images, _ = aecore.load_mnist("train", as_uint8=True)
    width, code, epochs, every = (WIDTH, CODE, EPOCHS, EVERY) if not quick else (4, 8, 2, 1)
    if quick:
        test, train_images = test[:200], train_images[:1024]
    psnr = lambda method: target_psnr(method, test)

    column = f"PSNR dB, Gaussian σ={LEVEL:g}"
    t = Table("Gaussian denoising with skip connections and a dense code" + (" (quick: 200 images)" if quick else ""),
              ["method", "parameters", "epochs", column, "training minutes (this run)"],
              formats={column: ".2f", "training minutes (this run)": ".1f"})
    shipped = next((s for s in shipped_models() if s.is_autoencoder and s.entry["metrics"]["noise"] == KIND), None)
    if shipped is not None:
        t.add(f"{shipped.name} (shipped autoencoder)", parameter_count(shipped.model), None, psnr(shipped.model), None)

    torch.manual_seed(0)
    net = UNetDenoiser(width, code, SQUEEZE)
    label = f"U-Net, width {width}, with a code of {code} numbers"
    scored: list[float] = []

    def record(epoch: int, value: float, minutes: float) -> None:
        scored.append(value)
        t.add(label, parameter_count(net), epoch, value, minutes)

    # scored every `every` epochs and after the last, on the float16 weights
    train(net, train_images, None, TrainConfig(epochs=epochs, noise=KIND, noise_level=LEVEL, lr=LR,
                                               weights_dtype="float16"),
          callback=scored_along(lambda: psnr(net), every, epochs, record))
    alone = scored[-1]
    blends = {}
    if shipped is not None:
        for weight in WEIGHTS:
            blends[weight] = psnr(Blend(net, shipped.model, weight))
            t.add(f"{weight:g} × the U-Net + {1 - weight:g} × {shipped.name}", None, None, blends[weight], None)
    t.add("issue 10's target", None, None, TARGET, None)

    best = max([alone, *blends.values()])
    t.notes += [
        f"{len(test):,} test digits, the noise of `python -m aecore evaluate` (seed 0). The U-Net trains on the "
        f"{len(train_images):,} training digits with fresh noise each epoch (aecore.train, lr {LR:g}, batch "
        f"{TrainConfig.batch_size}, section 11's seed); its rows are one {epochs}-epoch run scored along the "
        f"way (a row before the last is that schedule stopped early). Its last row and the blends use its "
        f"weights rounded to float16.",
        f"Best here: {best:.2f} dB against the target's {TARGET:.1f} dB.",
        *([] if shipped else [f"No shipped {KIND} denoiser could be loaded: its row and the blends are missing."]),
    ]
    t.headline = (f"Gaussian σ={LEVEL:g}, skip connections and a code: a U-Net with a code of {code} numbers "
                  f"({epochs} epochs) {alone:.2f} dB"
                  + (f", blended with {shipped.name} at best {max(blends.values()):.2f} dB" if blends else "")
                  + f"; issue 10's target {TARGET:.1f} dB.")
    return [t]
