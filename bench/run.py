"""Run the benchmarks, print every table as Markdown and write them (with figures) to one
document: `python -m bench` (full: writes docs/BENCHMARKS.md, and docs/COMPRESSION.md with docs/rate_distortion.json;
~15 minutes on 2 cores, ~37 more for the ceiling section's 50-epoch training, ~12 for the levers' and
~90 for the coded section's) or
`python -m bench --quick` (smoke test, under a minute, writes to a temporary folder). To rerun some
sections only and put them into the docs: `python -m bench --only latency,scaling --update` (each
replaced section says which command made it and when; the others, their summary lines and their
JSON stay as they were)."""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import re
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from aecore.atomic import atomic_write_bytes
from bench.common import Table, environment, environment_line

ROOT = Path(__file__).resolve().parent.parent
DOCS_OUT = ROOT / "docs" / "BENCHMARKS.md"
SCRATCH_OUT = Path(tempfile.gettempdir()) / "aecore-bench" / "BENCHMARKS.md"
# section key -> (heading, module); a module's run(quick) returns a list of Table (or Markdown str)
SECTIONS = {
    "quality": ("1. Reconstruction quality", "bench.quality"),
    "denoise": ("2. Denoising", "bench.denoise"),
    "train_speed": ("3. Training speed", "bench.train_speed"),
    "latency": ("4. Interactive latency", "bench.latency"),
    "scaling": ("5. Scaling and memory", "bench.scaling"),
    "rate_distortion": ("6. Compression: rate and distortion", "bench.rate_distortion"),
    "precision": ("7. Training precision: bfloat16 and channels-last", "bench.precision"),
    "cli": ("8. Command-line start-up", "bench.cli"),
    "floor": ("9. Draw and Denoise against the stack's floor (real Chromium)", "bench.floor"),
    # its own process (Locust patches the standard library for gevent): bench/capacity/__init__.py
    "capacity": ("10. Capacity: concurrent sessions without browsers", "bench.capacity"),
    "ceiling": ("11. Gaussian denoising without a bottleneck", "bench.ceiling"),
    "levers": ("12. Gaussian denoising: the shipped model's cheap levers", "bench.levers"),
    "coded": ("13. Gaussian denoising: skip connections and a dense code", "bench.coded"),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small inputs and few repeats: a smoke test")
    p.add_argument("--out", help=f"Markdown file to write (default: {DOCS_OUT.relative_to(ROOT)} for a full run "
                                 f"of every section, else {SCRATCH_OUT}); figures and a .json go next to it")
    p.add_argument("--only", help=f"comma-separated sections to run, from: {', '.join(SECTIONS)}")
    p.add_argument("--update", action="store_true",
                   help=f"replace the sections run (their text, summary lines, figures and JSON) in the existing "
                        f"document (default {DOCS_OUT.relative_to(ROOT)}) and keep the others")
    p.add_argument("--threads", type=int,
                   help=f"torch threads (default: all {os.cpu_count()} cores; 1 with --quick, which must "
                        "stay light on a shared CI machine); the latency section always uses 1, as the app")
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    # Only a full run of every section, or --update, writes to the docs by default.
    args.out = Path(args.out) if args.out else (
        SCRATCH_OUT if (args.quick or args.only) and not args.update else DOCS_OUT)
    if args.update and not args.out.exists():
        p.error(f"--update needs an existing document to update: {args.out} does not exist")
    if args.quick and args.out.resolve() == DOCS_OUT.resolve():
        p.error(f"--quick must not overwrite {DOCS_OUT.relative_to(ROOT)}: give another --out")
    if args.threads is None:
        args.threads = 1 if args.quick else os.cpu_count()
    if args.threads < 1:
        p.error("--threads must be at least 1")
    return args


def run_section(key: str, quick: bool) -> list[Table | str]:
    return list(importlib.import_module(SECTIONS[key][1]).run(quick=quick))


def render(item: Table | str, figures: bool = True) -> str:
    return item.markdown(figures=figures) if isinstance(item, Table) else str(item).rstrip() + "\n"


def section_text(items: list | Exception) -> str:
    """A section's Markdown under its heading."""
    if isinstance(items, Exception):
        return f"**This section failed:** `{type(items).__name__}: {items}`\n"
    return "\n".join(render(item) for item in items)


def headlines(results: dict) -> list[tuple[str, str]]:
    """(section key, headline) of every table that has one, in the order run."""
    return [(key, t.headline) for key, items in results.items() if isinstance(items, list)
            for t in items if isinstance(t, Table) and t.headline]


def number(key: str) -> str:
    return SECTIONS[key][0].split(".")[0]


def anchor(heading: str) -> str:
    """The link target a Markdown renderer gives a heading ("## 9. Draw and …" → "9-draw-and-…")."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def summary(lines: list[tuple[str, str]]) -> list[str]:
    """The summary's lines in section order, each linked to its section ("- [§9](#9-draw…) …")."""
    order = list(SECTIONS)
    return ["## Summary", "", *[f"- [§{number(key)}](#{anchor(SECTIONS[key][0])}) {text}"
                                for key, text in sorted(lines, key=lambda line: order.index(line[0]))], ""]


def document(results: dict, quick: bool, command: str, seconds: float, env: dict) -> str:
    mode = " (QUICK MODE: smoke-test sizes, not for the docs)" if quick else ""
    head = ["# Benchmarks", "",
            f"Generated by `{command}` in {seconds / 60:.1f} minutes{mode}. "
            "Do not edit by hand: rerun the command to update it. Every table says when, with which torch "
            "and how many threads it was measured; timings are from this machine's CPU and vary with load.", "",
            f"Run environment: {environment_line(env)}.", ""]
    if lines := headlines(results):
        head += summary(lines)
    body = []
    for key, items in results.items():
        body += [f"## {SECTIONS[key][0]}", "", section_text(items)]
    return "\n".join(head + body)


SUMMARY_LINE = re.compile(r"- \[§(\d+)\]\(#[^)]*\) (.*)")


def split_document(text: str) -> tuple[str, list[tuple[str, str]], dict[str, str]]:
    """A document's head (up to its summary), its summary lines as (section key, text), and
    each section's text under its heading, by key. Raises ValueError on a heading or a summary
    line that names no section of SECTIONS (the document is then not updated)."""
    by_heading = {f"## {heading}": key for key, (heading, _) in SECTIONS.items()}
    by_number = {number(key): key for key in SECTIONS}
    parts = re.split(r"(?m)^(## .*)\n", text)   # [head, heading, text, heading, text, ...]
    head, lines, sections = parts[0], [], {}
    for heading, body in zip(parts[1::2], parts[2::2]):
        if heading == "## Summary":
            for line in body.splitlines():
                if not line.strip():
                    continue
                match = SUMMARY_LINE.fullmatch(line)
                if not match or match[1] not in by_number:
                    raise ValueError(f"a summary line names no section (\"- [§N](#…) …\"): {line[:80]}")
                lines.append((by_number[match[1]], match[2]))
        elif heading in by_heading:
            sections[by_heading[heading]] = body
        else:
            raise ValueError(f"a heading that is no section of bench/run.py: {heading}")
    return head, lines, sections


def updated(text: str, results: dict, command: str, minutes: dict[str, float]) -> str:
    """`text` with the sections of `results` replaced (each under a line naming `command`, today
    and its own `minutes`) and their summary lines with them; every other line as it was."""
    head, lines, sections = split_document(text)
    lines = [line for line in lines if line[0] not in results] + headlines(results)
    for key, items in results.items():
        sections[key] = (f"\nGenerated by `{command}` on {datetime.date.today()} in {minutes[key]:.1f} minutes "
                         "(this section only; the sections without such a line come from the full run named at "
                         "the top).\n\n" + section_text(items) + "\n")
    text = head + "".join(line + "\n" for line in (summary(lines) if lines else [])) + "".join(
        f"## {SECTIONS[key][0]}\n{sections[key]}" for key in SECTIONS if key in sections)
    return text.rstrip("\n") + "\n"


def raw_values(out: Path) -> dict:
    """The raw values written beside `out` (its .json), or {} (saying why) when there are none to read."""
    path = out.with_suffix(".json")
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        print(f"warning: {path} is unreadable ({e}); it is rewritten with the sections run only", file=sys.stderr)
        return {}
    return values if isinstance(values, dict) else {}


def read_document(out: Path, read):
    """read(the text of `out`), or None after saying why `out` will not be updated."""
    try:
        return read(out.read_text())
    except (OSError, ValueError) as e:   # unreadable, not UTF-8, or not a document of these sections
        print(f"error: {out} was not updated: {e}", file=sys.stderr)
        return None


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.update and read_document(args.out, split_document) is None:   # before any work, not after it
        return 1
    env, started, results, minutes = environment(), time.perf_counter(), {}, {}
    for key in args.sections:
        t = time.perf_counter()
        print(f"## {SECTIONS[key][0]}", flush=True)
        try:
            items = run_section(key, args.quick)
        except Exception as e:  # noqa: BLE001 - report the failure, keep the other sections
            traceback.print_exc()
            results[key] = e
            continue
        finally:
            torch.set_num_threads(args.threads)   # a section may change it (latency runs with 1)
            minutes[key] = (time.perf_counter() - t) / 60
        results[key] = items
        for item in items:
            print(render(item, figures=False), flush=True)
        print(f"[{key}: {minutes[key] * 60:.1f} s]\n", file=sys.stderr, flush=True)
    command = " ".join(["python -m bench", shlex.join(sys.argv[1:] if argv is None else argv)]).strip()
    if args.update:   # a failed section keeps its last good text
        done = {key: items for key, items in results.items() if not isinstance(items, Exception)}
        if (text := read_document(args.out, lambda text: updated(text, done, command, minutes))) is None:
            return 1
        write(args.out, done, text, keep={k: v for k, v in raw_values(args.out).items() if k not in done})
    else:
        write(args.out, results, document(results, args.quick, command, time.perf_counter() - started, env))
    failed = [k for k, v in results.items() if isinstance(v, Exception)]
    if failed:
        print(f"failed sections: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def write(out: Path, results: dict, text: str, keep: dict | None = None) -> None:
    """The document, its figures (next to it) and the raw values (same name, .json), with the
    raw values of the sections in `keep` (an update's others) as they were, in section order."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tables = {key: [t.to_dict() for t in items if isinstance(t, Table)] if isinstance(items, list)
              else {"error": f"{type(items).__name__}: {items}"} for key, items in results.items()}
    tables = {key: tables[key] if key in tables else keep[key] for key in SECTIONS
              if key in tables or key in (keep or {})}
    for items in results.values():
        for item in items if isinstance(items, list) else []:
            if isinstance(item, Table) and item.figure:
                atomic_write_bytes(out.parent / item.figure[0], item.figure[1].encode())
    atomic_write_bytes(out.with_suffix(".json"), (json.dumps(tables, indent=1) + "\n").encode())
    atomic_write_bytes(out, text.encode())
    print(f"wrote {out} ({datetime.datetime.now():%H:%M:%S})", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
