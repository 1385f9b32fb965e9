"""A sweep on a local Ray against the same grid one trial after another, side by side in
one run (alternating, so both see the same load):

    python -m bench.sweep_speed sweeps/small.toml --cpus 2 --rounds 1

Each run is a fresh `python -m aecore sweep` process writing into its own temporary folder,
timed from start to exit: Ray's start-up and each worker's imports are part of the
parallel figure. Ray listens on the network: on a shared machine run this inside a network
namespace with only loopback (`unshare -n bash -c 'ip link set lo up; ...'`, as the tests do).
`--keep FILE` keeps the last parallel run's results.json (docs/sweep-results.json comes from
`python -m bench.sweep_speed sweeps/small.toml --keep docs/sweep-results.json`), its paths
relabelled to the spec's results folder."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aecore.sweep_spec import load_spec


def run_sweep(spec_text: str, mode: list[str], folder: Path) -> tuple[float, list[dict], str]:
    spec = folder / "spec.toml"
    spec.write_text(spec_text.replace("@RESULTS@", str(folder / "results")))
    env = dict(os.environ, RAY_DISABLE_USAGE_STATS="1")
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "aecore", "sweep", str(spec), *mode],
                         capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(mode) or 'ray'} sweep failed:\n{run.stderr[-2000:]}")
    rows = json.loads((folder / "results" / "results.json").read_text())["rows"]
    return seconds, rows, run.stdout


def keep(table: Path, temporary: Path, results: Path, out: Path) -> None:
    """Copy a results table, its paths (checkpoint, the command's --out) relabelled from the
    temporary folder to the spec's own results folder, where `aecore sweep` puts them."""
    doc = json.loads(table.read_text())
    for row in doc["rows"]:
        for key in ("checkpoint", "command"):
            if row.get(key):
                row[key] = row[key].replace(str(temporary), str(results))
    out.write_text(json.dumps(doc, indent=1) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sweep_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("spec", help="a sweep spec (its 'results' folder is replaced by a temporary one)")
    p.add_argument("--cpus", type=int, default=2, help="cores of the local Ray (default 2)")
    p.add_argument("--rounds", type=int, default=1, help="serial/parallel pairs, alternating (default 1)")
    p.add_argument("--keep", help="copy the last parallel run's results.json here")
    args = p.parse_args(argv)
    spec = load_spec(args.spec)   # a bad spec stops here with its message
    text = Path(args.spec).read_text()
    text = "\n".join(l for l in text.splitlines() if not l.startswith("results")).replace(
        "\n[", '\nresults = "@RESULTS@"\n[', 1)
    modes = {"one after another (--serial)": ["--serial"], f"local Ray, {args.cpus} CPUs": ["--cpus", str(args.cpus)]}
    timings = {name: [] for name in modes}
    last = None
    for r in range(args.rounds):
        order = list(modes) if r % 2 == 0 else list(modes)[::-1]
        for name in order:
            with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
                seconds, rows, table = run_sweep(text, modes[name], Path(tmp))
                timings[name].append((seconds, sum(r["seconds"] or 0 for r in rows), len(rows)))
                if "--serial" not in modes[name]:
                    last = (rows, table, Path(tmp) / "results" / "results.json")
                    if args.keep:
                        keep(last[2], Path(tmp) / "results", spec.results, Path(args.keep))
                print(f"round {r + 1}: {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    print(f"Sweep {spec.name}: {len(spec.trials)} trials; wall-clock seconds from start to exit of each "
          f"`aecore sweep`, rounds alternating; {os.cpu_count()} cores on this machine\n")
    names = list(modes)
    print("| round | " + " | ".join(f"{n}: wall s (sum of trial s)" for n in names) + " | speed-up |")
    print("|---" * (len(names) + 2) + "|")
    for r in range(args.rounds):
        serial, parallel = timings[names[0]][r], timings[names[1]][r]
        print(f"| {r + 1} | {serial[0]:.1f} ({serial[1]:.1f}) | {parallel[0]:.1f} ({parallel[1]:.1f}) | "
              f"{serial[0] / parallel[0]:.2f}x |")
    print(f"\nThe last parallel run's results table:\n{last[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
