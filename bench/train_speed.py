"""3. Training speed: `aecore.train` against the straightforward loop of the classic course
notebooks (torchvision `MNIST` + `ToTensor`, `DataLoader` batch 20, Adam 1e-3, MSE on the
sigmoid output), same architecture, run one after the other in this process with the same
thread count. Reported as images/s per model and as time to reach the same test MSE."""
from __future__ import annotations

import statistics
import threading
import time
from dataclasses import replace

import torch
from torch import nn

import aecore
from aecore import metrics
from aecore.data import cache_dir, ensure_mnist
from aecore.shipped import shipped_models
from aecore.trainer import TrainConfig

from .common import Table, parameter_count

REFERENCE_BATCH, REFERENCE_LR = 20, 1e-3
CHECK_EVERY = {False: 2048, True: 256}  # {quick: images}: how often our runs check the test MSE
SEEDS = {False: 5, True: 2}             # {quick: n}: seeds per setting of ours (the spread is wide)


def reference_loader(limit: int | None = None, batch_size: int = REFERENCE_BATCH):
    """The course notebooks' data pipeline: a PIL image per sample through ToTensor."""
    from torchvision import datasets, transforms
    ensure_mnist()
    data = datasets.MNIST(root=str(cache_dir()), train=True, download=False, transform=transforms.ToTensor())
    if limit:
        data = torch.utils.data.Subset(data, range(limit))
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True)


@torch.no_grad()
def test_mse(model, test: torch.Tensor) -> float:
    return torch.cat([metrics.mse(model.reconstruct(x), x) for x in test.split(2000)]).mean().item()


class Clock:
    """Training time with evaluation excluded: `checkpoint()` pauses, evaluates, resumes."""

    def __init__(self, model, test: torch.Tensor):
        self.model, self.test = model, test
        self.start, self.paused, self.curve = time.perf_counter(), 0.0, []   # curve: (train s, images, mse)

    def train_seconds(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def checkpoint(self, images: int) -> float:
        t, pause = self.train_seconds(), time.perf_counter()
        self.curve.append((t, images, test_mse(self.model, self.test)))
        self.paused += time.perf_counter() - pause
        return self.curve[-1][2]

    def first_reaching(self, target: float) -> tuple[float, int] | None:
        return next(((t, n) for t, n, m in self.curve if m <= target), None)


def reference_train(model, loader, test: torch.Tensor, checkpoints: int = 20) -> Clock:
    """One epoch of the classic loop; the test MSE is taken `checkpoints` times, spread
    evenly, with the clock paused."""
    torch.set_flush_denormal(False)   # the PyTorch default, which the notebooks keep
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=REFERENCE_LR)
    criterion = nn.MSELoss()
    total = len(loader)
    every = max(1, total // checkpoints)
    clock, seen = Clock(model, test), 0
    for i, (images, _) in enumerate(loader, 1):
        opt.zero_grad()
        loss = criterion(model(images), images)
        loss.backward()
        opt.step()
        seen += len(images)
        if i % every == 0 or i == total:
            clock.checkpoint(seen)
    return clock


def ours_until(model, train_x: torch.Tensor, test: torch.Tensor, config: TrainConfig, target: float,
               every: int) -> Clock:
    """aecore.train, stopped as soon as the test MSE (checked every `every` training images,
    clock paused) reaches `target`. The clock starts before the call, so whatever the trainer
    does first (the output-bias init) counts."""
    stop, clock, checked = threading.Event(), Clock(model, test), [0]
    batch = min(config.batch_size, config.train_size or len(train_x), len(train_x))

    def on_progress(p):
        images = ((p.epoch - 1) * p.batches + p.batch) * batch
        if p.event != "batch" or (images - checked[0] < every and p.batch < p.batches):
            return
        checked[0] = images
        if clock.checkpoint(images) <= target:
            stop.set()

    clock.start = time.perf_counter()
    aecore.train(model, train_x, None, config, callback=on_progress, stop=stop)
    return clock


REFERENCE = "reference loop: torchvision MNIST + ToTensor, DataLoader batch 20, Adam 1e-3, MSE"


def settings(quick: bool, limit: int | None) -> list[tuple[str, TrainConfig]]:
    short, long = (1, 3) if quick else (2, 10)
    return [
        (f"aecore.train, its defaults (batch 128, Adam 1e-2 = simple's rate, BCE, 50 warm-up steps, "
         f"output bias at the mean image; cosine over {long} epochs)", TrainConfig(epochs=long, train_size=limit)),
        (f"aecore.train, the reference's settings (batch 20, Adam 1e-3, MSE) + warm-up and bias init; "
         f"cosine over {short} epochs", TrainConfig(epochs=short, batch_size=20, lr=1e-3, loss="mse", train_size=limit)),
        (f"aecore.train as before warm-up and bias init (batch 128, Adam 2e-3, BCE; cosine over {long} epochs)",
         TrainConfig(epochs=long, lr=2e-3, warmup=0, init_bias=False, train_size=limit)),
    ]


def race(quick: bool) -> tuple[list[tuple[str, list[Clock]]], float, int]:
    """The reference for one epoch (quick: 2,000 images), then each setting of our trainer,
    over several seeds, until it reaches the reference's final test MSE:
    ([(trainer, [clock per seed])], target MSE, test images)."""
    train_x, _ = aecore.load_mnist("train")
    test = aecore.load_mnist("test")[0][:1000 if quick else None]
    limit = 2000 if quick else None
    torch.manual_seed(0)
    ref = reference_train(aecore.create_model("simple", code_size=32), reference_loader(limit), test)
    target = ref.curve[-1][2]
    runs = [(REFERENCE, [ref])]
    for name, config in settings(quick, limit):
        clocks = []
        for seed in range(SEEDS[quick]):
            torch.manual_seed(seed)
            model = aecore.create_model("simple", code_size=32)
            clocks.append(ours_until(model, train_x, test, replace(config, seed=seed), target, CHECK_EVERY[quick]))
        runs.append((name, clocks))
    return runs, target, len(test)


def time_to_target(quick: bool) -> Table:
    runs, target, tested = race(quick)
    ref_time = runs[0][1][0].first_reaching(target)[0]
    table = Table(f"Training speed: time to reach test MSE {target:.4f} (simple autoencoder, code 32)"
                  + (" (quick: 2,000-image reference run)" if quick else ""),
                  ["trainer", "seeds", "reached", "median training s to target", "fastest s", "slowest s",
                   "median images seen", "images/s", "speed-up vs reference (median)", "speed-up, slowest seed"],
                  formats={"median training s to target": ".3f", "fastest s": ".3f", "slowest s": ".3f",
                           "speed-up vs reference (median)": ".1f", "speed-up, slowest seed": ".1f"})
    medians = {}
    for name, clocks in runs:
        hits = [hit for c in clocks if (hit := c.first_reaching(target))]
        rate = statistics.median(c.curve[-1][1] / c.curve[-1][0] for c in clocks)
        if len(hits) < len(clocks) or not hits:   # a seed that never got there has no time
            median_s = slowest = None
        else:
            median_s, slowest = statistics.median(t for t, _ in hits), max(t for t, _ in hits)
        medians[name] = median_s
        table.add(name, len(clocks), len(hits), median_s, min((t for t, _ in hits), default=None), slowest,
                  statistics.median(n for _, n in hits) if hits else None, rate,
                  ref_time / median_s if median_s else None, ref_time / slowest if slowest else None)
    table.notes.append(
        f"Target = the reference's test MSE after {'its 2,000-image run' if quick else 'one epoch (60,000 images)'}"
        f" (seed 0). Our settings run with seeds 0-{SEEDS[quick] - 1}: the seed changes the initial weights "
        f"and the order of the images, and with them the time by up to 2x. Test MSE on {tested:,} test "
        f"images, checked every {CHECK_EVERY[quick]:,} training images with the clock paused; training time "
        "excludes building the datasets and includes everything aecore.train does (the output-bias init "
        "included). '—': a seed did not reach the target within the epochs given. The issue's goal: our "
        "trainer at least 20x sooner. The issue quotes about 250 s and test MSE 0.0197 for the reference's "
        "epoch, measured on this machine under other load; this table is this run's.")
    table.notes.append(
        "Where the speed comes from: the reference spends 3,000 small steps and a PIL-to-tensor conversion "
        "per image; aecore.train takes batches of 128 from one tensor (about 10x the images/s), and the "
        "simple model takes Adam at 1e-2 after a short warm-up, starting from the mean image "
        "(without the warm-up, early large steps leave ReLU codes dead and the time varies 3x between seeds).")
    ours = medians[runs[1][0]]
    table.headline = (f"Training speed: aecore.train (its defaults) reaches the reference loop's one-epoch test MSE "
                      f"({target:.4f}) in {ours:.2f} s (median of {SEEDS[quick]} seeds) against the reference's "
                      f"{ref_time:.1f} s: {ref_time / ours:.0f}x sooner (goal: 20x)." if ours else
                      f"Training speed: aecore.train (its defaults) did not reach the reference's test MSE "
                      f"{target:.4f} with every seed.")
    return table


def throughput(quick: bool) -> Table:
    """images/s of every shipped architecture: aecore.train (batch 128) and the reference loop (batch 20)."""
    train_x, _ = aecore.load_mnist("train")
    ours_batches, ref_batches = (5, 10) if quick else (100, 200)
    loader = reference_loader(REFERENCE_BATCH * ref_batches)
    table = Table("Training throughput per model" + (" (quick)" if quick else ""),
                  ["model", "parameters", "aecore.train images/s (batch 128)",
                   "reference loop images/s (batch 20)", "ratio"], formats={"ratio": ".1f"})
    for s in shipped_models():
        if s.model is None:
            table.notes.append(f"Unavailable: {s.name} ({s.error})")
            continue
        build = lambda: aecore.create_model(s.entry["model"], **s.entry["config"])
        torch.manual_seed(0)
        ours = aecore.train(build(), train_x, None, TrainConfig(epochs=1, train_size=128 * ours_batches))
        ref = reference_train(build(), loader, train_x[:10], checkpoints=1)
        ref_rate = ref.curve[-1][1] / ref.curve[-1][0]
        ours_rate = ours.history["images_per_s"][-1]
        params = parameter_count(s.model)
        table.add(s.name, params, ours_rate, ref_rate, ours_rate / ref_rate)
    table.notes.append(
        f"Fresh models of each shipped configuration, plain reconstruction objective (BCE for aecore.train, "
        f"MSE for the reference; the VAEs train on their ELBO in aecore.train); {ours_batches} batches of 128 "
        f"and {ref_batches} batches of 20 respectively.")
    return table


def run(quick: bool = False) -> list[Table]:
    return [time_to_target(quick), throughput(quick)]
