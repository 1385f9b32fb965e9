"""7. Training precision: each architecture trained for the same steps under today's fp32
path (contiguous layout, no autocast) and under the new default (`precision="auto"`:
bfloat16 autocast where the CPU has bf16 units, channels-last for convolutional models),
one after the other in this process; then each architecture's Train-page default run on one
thread, as the app's job runs it, against the page's measured estimate and the PCA-32 target.

The peak rows time a large fp32 and bf16 matrix product on the same threads, so the models'
achieved FLOP/s can be read as a fraction of what this CPU can do at all."""
from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import aecore
from aecore import calibrate
from aecore.models import default_run_lr, model_spec
from aecore.precision import is_convolutional, resolve_precision
from aecore.trainer import TrainConfig, evaluate, pick_device, train

from .common import Table

PCA32_MSE = 0.0152        # DESIGN.md: a 32-component PCA on the test set
CONV_UPSAMPLE_GOAL = 0.0050
STEPS = {False: 400, True: 6}
CHECK_IMAGES = 2000       # the time-to-target checks: the first 2,000 test images
BATCH = 128

# what a clean-input run measures: the U-Net (not an autoencoder) trains only on noise, and
# copies a clean input through its skips
AUTOENCODERS = [n for n in aecore.list_models() if model_spec(n).autoencoder]


def peak_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def train_step_gflop(name: str) -> float:
    """FLOPs of one training step (forward + backward) per image, counted by PyTorch."""
    model = aecore.create_model(name, code_size=model_spec(name).train_code_size).train()
    x = torch.rand(BATCH, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        loss, _ = model.loss(x, x)
        loss.backward()
    return counter.get_total_flops() / BATCH / 1e9


def side_by_side(quick: bool, train_x: torch.Tensor, test_x: torch.Tensor) -> Table:
    steps = STEPS[quick]
    device = pick_device()
    native, _ = resolve_precision("auto", device)
    peaks = {"fp32": peak_gflops(torch.float32), "bf16": peak_gflops(torch.bfloat16)}
    t = Table(f"Same {steps} steps (batch {BATCH}), fp32 as before vs the new default",
              ["model", "fp32 img/s", "default img/s", "speed-up", "test MSE fp32", "test MSE default",
               "MSE ratio", "GFLOP/image", "default GFLOP/s", "% of peak"],
              formats={"speed-up": ".2f", "MSE ratio": ".3f", "test MSE fp32": ".5f", "test MSE default": ".5f",
                       "GFLOP/image": ".4f", "% of peak": ".1f"})
    runs = {"fp32": dict(precision="fp32", channels_last=False), "default": dict(precision="auto")}
    test = test_x[: 1000 if quick else 10_000]
    for name in AUTOENCODERS:
        rate, mse = {}, {}
        for key, settings in runs.items():
            torch.manual_seed(0)
            model = aecore.create_model(name, code_size=model_spec(name).train_code_size)
            config = TrainConfig(epochs=1, batch_size=BATCH, train_size=steps * BATCH, **settings)
            result = train(model, train_x, None, config)
            rate[key] = result.history["images_per_s"][-1]
            if key == "default":
                used = result.precision   # what "auto" chose for this architecture
            mse[key] = evaluate(model, test, config)[1]
        gflop = train_step_gflop(name)
        layout = "channels-last, " if is_convolutional(aecore.create_model(name)) else ""
        t.add(f"{name} ({layout}{used})", rate["fp32"], rate["default"], rate["default"] / rate["fp32"],
              mse["fp32"], mse["default"], mse["default"] / mse["fp32"], gflop, gflop * rate["default"],
              100 * gflop * rate["default"] / peaks[used])
    t.add("peak: 2048² matrix product, fp32", None, None, None, None, None, None, None, peaks["fp32"], 100.0)
    t.add("peak: 2048² matrix product, bf16", None, None, None, None, None, None, None, peaks["bf16"], 100.0)
    t.notes = [
        f"Each pair trains the same fresh model (seed 0) on the same first {steps * BATCH:,} training images "
        "through `aecore.train`; images/s is the trainer's own figure for the epoch (no evaluation), "
        f"test MSE is on {len(test):,} test images in fp32 after those steps. fp32 = the trainer before "
        "this change (`precision='fp32', channels_last=False`); default = `precision='auto'` (resolved "
        f"here to {native} where the architecture gains from it) with channels-last for convolutional models.",
        "GFLOP/image: one training step's forward + backward FLOPs per image, counted by "
        "`torch.utils.flop_counter`; % of peak compares the default's achieved GFLOP/s with this run's "
        "matrix-product peak in the precision it used.",
    ]
    conv = [r for r in t.rows if r[0].split()[0] in ("conv_upsample", "vae") or r[0].startswith("vae2d")]
    worst = min(r[3] for r in conv) if conv else None
    t.headline = (f"Training precision: the new default ({native}, channels-last) trains conv_upsample/vae/vae2d "
                  f"{worst:.1f}x or more as fast as fp32, same steps, MSE ratio "
                  f"{max(r[6] for r in conv):.3f} at most." if conv else None)
    return t


def time_to_target(name: str, train_x, test_x, quick: bool) -> dict:
    """The Train page's default run of `name` on one thread, with the test MSE checked every
    tenth of an epoch on the first CHECK_IMAGES test images, with the clock paused."""
    spec = model_spec(name)
    config = TrainConfig(epochs=1 if quick else spec.epochs, batch_size=spec.batch_size, test_size=2000,
                         lr=default_run_lr(name),
                         train_size=spec.batch_size * 20 if quick else None)
    test = test_x[:500] if quick else test_x[:CHECK_IMAGES]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        estimate = calibrate.measure(name, spec.train_code_size, config, train_x).seconds(config)
        model = aecore.create_model(name, code_size=spec.train_code_size)
        paused, reached, start = 0.0, {}, time.perf_counter()
        every = max(1, (len(train_x) if config.train_size is None else config.train_size) // config.batch_size // 10)

        def check(p):
            nonlocal paused
            if p.event != "batch" or (p.batch % every and p.batch != p.batches):
                return
            t0 = time.perf_counter()
            mse = evaluate(model, test, config)[1]
            model.train()
            wall = t0 - start - paused
            for goal in (PCA32_MSE, CONV_UPSAMPLE_GOAL):
                if mse <= goal and goal not in reached:
                    reached[goal] = wall
            paused += time.perf_counter() - t0
        train(model, train_x, test_x, config, callback=check)
        actual = time.perf_counter() - start - paused
    finally:
        torch.set_num_threads(threads)
    return {"epochs": config.epochs, "estimate": estimate, "actual": actual,
            "pca": reached.get(PCA32_MSE), "goal": reached.get(CONV_UPSAMPLE_GOAL)}


def train_page_runs(quick: bool, train_x, test_x) -> Table:
    t = Table("The Train page's default run of each architecture, one thread (as the app's job)",
              ["model", "default run", "estimate s", "actual s", "estimate / actual",
               "s to MSE ≤ 0.0152 (PCA-32)", "s to MSE ≤ 0.0050"],
              formats={"estimate / actual": ".2f", "estimate s": ".1f", "actual s": ".1f",
                       "s to MSE ≤ 0.0152 (PCA-32)": ".1f", "s to MSE ≤ 0.0050": ".1f"})
    names = AUTOENCODERS[:2] if quick else AUTOENCODERS
    for name in names:
        r = time_to_target(name, train_x, test_x, quick)
        t.add(f"{name}-{model_spec(name).train_code_size}", f"{r['epochs']} ep", r["estimate"], r["actual"],
              r["estimate"] / r["actual"], r["pca"], r["goal"])
    t.notes = [
        "The run the Train page starts with each architecture's defaults (ModelSpec: epochs, code size, batch "
        "size, learning rate; precision auto, 2,000 test images per epoch) on one torch thread. estimate: "
        "what the page says before Start (`aecore.calibrate`: a few timed steps on this machine); actual: the "
        "run's wall time without the checks. The test MSE is checked on the first 2,000 test images every "
        "tenth of an epoch with the clock paused; — = not reached in the run. vae2d-2 cannot reach PCA-32's "
        "figure at all: a 2-number code (PCA with 2 components: 0.0555).",
    ]
    return t


def run(quick: bool = False) -> list[Table]:
    train_x, _ = aecore.load_mnist("train")
    test_x, _ = aecore.load_mnist("test")
    return [side_by_side(quick, train_x, test_x), train_page_runs(quick, train_x, test_x)]
