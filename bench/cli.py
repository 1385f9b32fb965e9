"""8. Command-line start-up: whole-process wall time of `python -m aecore` commands
against `python -c "import torch"`, the floor any command that touches a model pays.
Run interleaved (each repeat runs every command once, in a rotating order) so load on
this shared machine hits them alike; medians. Target: a one-epoch training of the
simple model, the command as a user types it (torch's threads: all cores), within 1.5x
the time of importing torch; the same on one thread is shown beside it."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import Table

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.5   # whole `train --epochs 1` process / `import torch`
# The other rows run on one torch thread: start-up, not parallel speed. On a shared 2-core
# machine a 2-thread training spins on OpenMP barriers whenever another process runs, and
# its time then varies several-fold; the target row is the command as typed (all cores).
THREADS = 1


TRAIN = "python -m aecore train --model simple --epochs 1"
NO_PATCH = "AECORE_EAGER_OPTIMIZERS=0"   # the same training, importing torch._dynamo (aecore.fastimport off)


def commands(quick: bool, out: Path, threads: int) -> dict[str, list[str]]:
    """The commands by row name; the fourth is the target's (the training as typed)."""
    typed = [sys.executable, "-m", "aecore"]
    aecore = [*typed, "--threads", str(threads)]
    sizes = ["--train-size", "1024", "--test-size", "500"] if quick else []
    train = ["train", "--model", "simple", "--epochs", "1", *sizes, "--out", str(out), "--force", "--quiet"]
    suffix = " (1,024 images)" if quick else ""
    one = TRAIN.replace("aecore ", f"aecore --threads {threads} ")
    return {
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        "python -m aecore --help": [*aecore, "--help"],
        "python -m aecore list": [*aecore, "list"],
        TRAIN + suffix: [*typed, *train],
        one + suffix: [*aecore, *train],
        f"{NO_PATCH} {one}{suffix}": [*aecore, *train],
    }


def wall_seconds(argv: list[str], name: str = "") -> float:
    env = dict(os.environ)   # `python -m aecore` run in ROOT imports ROOT's aecore
    env.pop("AECORE_EAGER_OPTIMIZERS", None)
    if name.startswith(NO_PATCH):
        env["AECORE_EAGER_OPTIMIZERS"] = "0"
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:])} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return seconds


def measure(cmds: dict[str, list[str]], repeats: int) -> dict[str, list[float]]:
    names = list(cmds)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:   # rotate the order
            times[name].append(wall_seconds(cmds[name], name))
    return times


def run(quick: bool) -> list[Table]:
    repeats = 2 if quick else 7
    threads = THREADS
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(quick, Path(tmp) / "simple.pt", threads)
        times = measure(cmds, repeats)
    names = list(cmds)
    floor = statistics.median(times[names[0]])
    table = Table("Whole-process wall time of command-line calls" + (" (quick)" if quick else ""),
                  ["command", "median s", "min s", "max s", "× import torch", "target ×"],
                  formats={"median s": ".2f", "min s": ".2f", "max s": ".2f", "× import torch": ".2f"})
    for name in names:
        t = times[name]
        target = TARGET if name == names[3] else None
        table.add(name, statistics.median(t), min(t), max(t), statistics.median(t) / floor, target)
    train_name, one_name = names[3], names[4]
    train = statistics.median(times[train_name]) / floor
    one = statistics.median(times[one_name]) / floor
    table.notes += [
        f"{repeats} runs of each, interleaved in a rotating order; the training as typed uses torch's "
        f"default threads (all {os.cpu_count()} cores), the other rows `--threads {threads}`; training to a "
        "temporary file with `--force --quiet`" + (" on the first 1,024 training and 500 test images" if quick
                                                   else " on all 60,000 training images, evaluated on 10,000"),
        f"`{NO_PATCH}`: the same training with `aecore.fastimport` switched off, so torch.optim "
        "imports torch._dynamo as it does by default.",
        "What keeps it close to the floor: SSIM in plain torch and scipy imported only by the filters "
        "(torchmetrics and scipy take seconds to import), torch.optim without its torch._dynamo import "
        "(the row above, `aecore.fastimport`), binary cross-entropy without torch's unvectorised log1p "
        "sharing one sigmoid with its gradient, fp32 for the simple model (bf16's casts cost more than its "
        "small products gain), one pass over the test set at the end (the last epoch's test pass measures "
        "the checkpoint's figures), batches gathered with index_select, commands importing what they need "
        "when they need it, and no garbage collection of torch's heap at exit (`aecore.cli.run`: gc.freeze "
        "before the interpreter's shutdown; `import torch` alone pays that collection).",
    ]
    verdict = "meets" if train <= TARGET else "misses"
    table.headline = (f"**Command line:** `python -m aecore train --model simple --epochs 1` takes "
                      f"{statistics.median(times[train_name]):.1f} s as a whole process, {train:.2f}x "
                      f"`import torch` ({floor:.1f} s): {verdict} the {TARGET}x target"
                      + (" (quick sizes)" if quick else "") + f"; on one thread {one:.2f}x.")
    return [table]


if __name__ == "__main__":
    for t in run(quick="--quick" in sys.argv):
        print(t.markdown(figures=False))
