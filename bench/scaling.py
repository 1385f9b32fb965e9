"""5. Scaling: training time per epoch (extrapolated from a short run) and inference speed
against batch size and code size, and the memory peak (RSS) of a process holding every
shipped model."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import torch

import aecore
from aecore.trainer import TrainConfig

from .common import Table, line_chart, parameter_count, time_calls

MODELS = ("simple", "conv_upsample")     # a dense and a convolutional model, code 32 unless varied
EPOCH = 60000                            # MNIST training images


def epoch_seconds(name: str, batch_size: int, batches: int, train_x: torch.Tensor, **config) -> float:
    """Seconds for one epoch of `aecore.train`, extrapolated from `batches` batches."""
    torch.manual_seed(0)
    model = aecore.create_model(name, **config)
    result = aecore.train(model, train_x, None, TrainConfig(epochs=1, batch_size=batch_size,
                                                            train_size=batch_size * batches))
    return result.history["seconds"][-1] / batches * (EPOCH // batch_size)


def inference_rate(name: str, batch_size: int, test_x: torch.Tensor, repeats: int, **config) -> float:
    """Images/s of `reconstruct` on batches of `batch_size` (untrained weights: same cost)."""
    model = aecore.create_model(name, **config)
    x = test_x[:batch_size]
    return batch_size / (time_calls(lambda: model.reconstruct(x), repeats)["median_ms"] / 1000)


def batch_table(quick: bool, train_x, test_x) -> Table:
    sizes = (16, 256) if quick else (16, 64, 256, 1024)
    table = Table("Scaling with batch size (code 32)" + (" (quick)" if quick else ""),
                  ["model", "batch size", "batches timed", "training s per epoch (extrapolated)",
                   "training images/s", "inference images/s"],
                  formats={"training s per epoch (extrapolated)": ".1f"})
    series = {}
    for name in MODELS:
        for bs in sizes:
            batches = 3 if quick else max(20, min(300, 30000 // bs))
            seconds = epoch_seconds(name, bs, batches, train_x)
            rate = inference_rate(name, bs, test_x, 3 if quick else 10)
            table.add(name, bs, batches, seconds, (EPOCH // bs) * bs / seconds, rate)
            series.setdefault(f"{name}: training", []).append((bs, seconds))
    table.notes.append(f"One epoch = {EPOCH:,} images (the last ragged batch dropped); time from a short "
                       "`aecore.train` run of fresh models, scaled up. Inference: `reconstruct` on one batch.")
    table.figure = ("bench-scaling.svg", line_chart(
        series, title="Training time per epoch vs batch size", x_label="batch size",
        y_label="seconds per epoch (extrapolated)", log_x=True, log_y=True))
    return table


def code_table(quick: bool, train_x, test_x) -> Table:
    codes = (2, 32) if quick else (2, 8, 32, 128)
    table = Table("Scaling with code size (batch 128)" + (" (quick)" if quick else ""),
                  ["model", "code size", "parameters", "training s per epoch (extrapolated)",
                   "inference images/s (batch 1000)"],
                  formats={"training s per epoch (extrapolated)": ".1f"})
    for name in MODELS:
        for code in codes:
            params = parameter_count(aecore.create_model(name, code_size=code))
            table.add(name, code, params,
                      epoch_seconds(name, 128, 3 if quick else 100, train_x, code_size=code),
                      inference_rate(name, 1000, test_x, 2 if quick else 5, code_size=code))
    table.notes.append("The code is one narrow layer: its size barely changes the cost; the architecture does.")
    return table


# Run in a fresh interpreter so nothing else this benchmark loaded counts. VmHWM (peak) and
# VmRSS (now) from /proc: getrusage's ru_maxrss would carry the forking parent's peak over exec.
_MEMORY_PROBE = textwrap.dedent("""
    import json, torch
    torch.set_num_threads(1)
    import aecore
    from aecore.shipped import shipped_models

    def rss():
        vm = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith("Vm"))
        return {k: int(vm[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}   # kB -> MiB

    out = {"imports": rss()}
    models = [s.model for s in shipped_models() if s.model is not None]
    x = torch.zeros(1, 1, 28, 28)
    for m in models:
        m.reconstruct(x)
    out["models"] = rss()
    out["count"] = len(models)
    out["param_mb"] = sum(p.numel() * p.element_size() for m in models for p in m.parameters()) / 2**20
    test, _ = aecore.load_mnist("test")
    for m in models:
        m.reconstruct(test[:1000])
    out["test"] = rss()
    print(json.dumps(out))
""")


def memory_table() -> Table:
    proc = subprocess.run([sys.executable, "-c", _MEMORY_PROBE], capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise RuntimeError(f"memory probe failed: {proc.stderr.strip().splitlines()[-1:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    table = Table("Memory (RSS) of a fresh process holding the shipped models",
                  ["state", "RSS MiB", "peak RSS so far MiB", "RSS increase MiB"],
                  formats={c: ".0f" for c in ("RSS MiB", "peak RSS so far MiB", "RSS increase MiB")})
    steps = [("imports", "Python + torch + aecore imported"),
             ("models", f"+ all {r['count']} shipped models loaded, one image through each"),
             ("test", "+ MNIST test set loaded, 1,000 images through every model")]
    previous = None
    for key, label in steps:
        now = r[key]
        table.add(label, now["VmRSS"], now["VmHWM"], None if previous is None else now["VmRSS"] - previous)
        previous = now["VmRSS"]
    table.headline = (f"Memory: a process holding all {r['count']} shipped models uses {r['models']['VmRSS']:.0f} "
                      f"MiB RSS, of which torch itself is {r['imports']['VmRSS']:.0f} MiB.")
    table.notes.append(f"VmRSS / VmHWM from /proc/self/status of a new interpreter with 1 torch thread; the "
                       f"shipped weights themselves are {r['param_mb']:.1f} MiB of float32. Most of the "
                       "baseline is the torch libraries.")
    return table


def run(quick: bool = False) -> list[Table]:
    train_x, _ = aecore.load_mnist("train")
    test_x, _ = aecore.load_mnist("test")
    return [batch_table(quick, train_x, test_x), code_table(quick, train_x, test_x), memory_table()]
