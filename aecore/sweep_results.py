"""A sweep's results table, without torch: its columns, its two files (results.json and
results.csv, each written atomically, whole, after every trial that lands), a bounded,
validating reader for the app (the shipped docs/sweep-results.json or an upload), and the
series the Sweeps page plots."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from .atomic import atomic_write_bytes, read_bounded
from .paths import docs_dir

FORMAT, VERSION = "aecore-sweep-results", 1
MAX_BYTES = 4 * 1024 * 1024      # a results file read by the app (about 10,000 rows)
MAX_ROWS = 10_000
# one row per trial; config first, then what it measured and where it ran
COLUMNS = ("trial", "status", "model", "code_size", "options", "epochs", "seed", "noise", "noise_level",
           "train_size", "test_size", "mse", "psnr", "ssim", "nelbo", "denoise_psnr", "rate_bits",
           "bytes_per_digit", "rate_psnr", "seconds", "node",
           "attempts", "checkpoint", "sha256", "command", "key", "error")
NUMBERS = ("code_size", "epochs", "seed", "noise_level", "train_size", "test_size", "mse", "psnr", "ssim",
           "nelbo", "denoise_psnr", "rate_bits", "bytes_per_digit", "rate_psnr", "seconds", "attempts")
INTEGERS = ("code_size", "epochs", "seed", "train_size", "test_size", "rate_bits", "attempts")
REQUIRED = ("trial", "status", "model", "code_size", "mse", "psnr")
STATUSES = ("done", "failed")
QUALITY = {"psnr": "PSNR (dB), higher is better", "mse": "MSE per pixel, lower is better",
           "ssim": "SSIM, higher is better", "denoise_psnr": "denoising PSNR (dB), higher is better"}


class ResultsError(ValueError):
    """A results table cannot be read; the message names it and says why."""


def shipped_results_path() -> Path:
    return docs_dir() / "sweep-results.json"


def write_results(folder: Path, spec: str, rows: list[dict]) -> None:
    """results.json and results.csv in `folder`, each replaced in one rename."""
    ordered = [{c: r.get(c) for c in COLUMNS} for r in rows]
    atomic_write_bytes(Path(folder) / "results.json",
                       (json.dumps({"format": FORMAT, "version": VERSION, "spec": spec, "rows": ordered},
                                   indent=1) + "\n").encode())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in ordered)
    atomic_write_bytes(Path(folder) / "results.csv", text.getvalue().encode())


def read_results(source: str | Path | bytes, name: str | None = None) -> dict:
    """{"spec": name, "rows": [...]} from a results.json or results.csv (path or bytes).
    Rows keep the known columns, numbers as floats (whole ones of INTEGERS as ints) or None;
    ResultsError otherwise."""
    label = name or (str(source) if not isinstance(source, bytes) else "uploaded file")
    fail = lambda why: ResultsError(f"{label}: {why}")
    data = read_bounded(source, MAX_BYTES, fail, "a results table")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise fail("not a text file (a results table is JSON or CSV)") from e
    spec, rows = _parse(text, fail)
    if len(rows) > MAX_ROWS:
        raise fail(f"{len(rows):,} rows; at most {MAX_ROWS:,}")
    return {"spec": spec, "rows": [_clean(r, i, fail) for i, r in enumerate(rows, 1)]}


def _parse(text: str, fail) -> tuple[str, list]:
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise fail(f"not valid JSON ({e})") from e
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise fail(f"not a sweep results table (no \"format\": \"{FORMAT}\")")
        if not isinstance(doc.get("rows"), list) or not all(isinstance(r, dict) for r in doc["rows"]):
            raise fail("its 'rows' are missing or not a list of objects")
        return str(doc.get("spec") or ""), doc["rows"]
    try:
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise fail(f"not a sweep results table: no column {', '.join(missing)} "
                       "(expected aecore sweep's results.csv or results.json)")
        return "", list(reader)
    except csv.Error as e:
        raise fail(f"not valid CSV ({e})") from e


def _clean(row: dict, i: int, fail) -> dict:
    out = {}
    for c in COLUMNS:
        value = row.get(c)
        if c in NUMBERS:
            out[c] = _number(value, c, i, fail)
            if c in INTEGERS and out[c] is not None and out[c].is_integer():
                out[c] = int(out[c])
        else:
            out[c] = None if value in (None, "") else str(value)[:2000]
    for c in REQUIRED:
        if out[c] is None and not (c in ("mse", "psnr") and out["status"] == "failed"):
            raise fail(f"row {i} has no {c}")
    if out["status"] not in STATUSES:
        raise fail(f"row {i}: status must be one of {', '.join(STATUSES)}, got {out['status']!r}")
    return out


def _number(value, column: str, i: int, fail) -> float | None:
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise fail(f"row {i}: {column} is not a number ({str(value)[:40]!r})") from None
    if math.isnan(number) or math.isinf(number):
        return None
    return number


def group_label(row: dict) -> str:
    """A line of the Sweeps page: the architecture, its other options, the noise it removes."""
    options = ""
    try:
        extra = {k: v for k, v in json.loads(row.get("options") or "{}").items() if k != "code_size"}
        options = " ".join(f"{k}={v}" for k, v in extra.items())
    except (ValueError, AttributeError):
        pass
    noise = f"denoising {row['noise']}" if row.get("noise") else ""
    return " · ".join(p for p in (row["model"], options, noise) if p)


def quality_by_code_size(rows: list[dict], y: str = "psnr") -> dict[str, list[dict]]:
    """{line label: [{"code_size", y (mean over the line's trials of that size), "trials",
    "n"}] sorted by code size} for the finished trials that measured `y`."""
    if y not in QUALITY:
        raise ValueError(f"unknown quality {y!r}; choose one of {', '.join(QUALITY)}")
    groups: dict[str, dict[float, list[dict]]] = {}
    for r in rows:
        if r["status"] == "done" and r.get(y) is not None and r.get("code_size") is not None:
            groups.setdefault(group_label(r), {}).setdefault(r["code_size"], []).append(r)
    return {label: [{"code_size": int(size), y: sum(r[y] for r in rs) / len(rs),
                     "trials": ", ".join(r["trial"] for r in rs), "n": len(rs)}
                    for size, rs in sorted(sizes.items())]
            for label, sizes in groups.items()}


def rate_distortion(rows: list[dict]) -> dict[str, list[dict]]:
    """{line label: [{"bytes_per_digit", "rate_psnr", "code_size", "trial"}] by size} for the
    finished trials that were compressed (a spec's rate_bits); {} when none were."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        if r["status"] == "done" and r.get("bytes_per_digit") is not None and r.get("rate_psnr") is not None:
            out.setdefault(group_label(r), []).append(
                {"bytes_per_digit": r["bytes_per_digit"], "rate_psnr": r["rate_psnr"],
                 "code_size": int(r["code_size"]), "trial": r["trial"]})
    return {label: sorted(points, key=lambda p: p["bytes_per_digit"]) for label, points in out.items()}
