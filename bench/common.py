"""What every benchmark shares: the `Table` it returns, its Markdown form, the
environment line that goes under each table, a small timing helper and a
dependency-free SVG line chart (for the figures in docs/BENCHMARKS.md)."""
from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from html import escape

import numpy as np
import torch

from aecore.noise_kinds import describe_noise

MISSING = "—"  # a cell with no value (not measured, not applicable)


def environment() -> dict:
    """Where and when a number was measured: recorded under every table."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cores": os.cpu_count(), "cpu": cpu,
            "python": platform.python_version(), "load": round(os.getloadavg()[0], 2)}


def environment_line(env: dict) -> str:
    return (f"{env['date']} · torch {env['torch']} · {env['threads']} torch thread(s) · "
            f"{env['cores']} cores ({env['cpu']}) · Python {env['python']} · "
            f"load average {env['load']} (1 min, this run included)")


@dataclass
class Table:
    """One result table. Cells are str, int, float or None (printed as '—')."""
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)     # printed under the table
    formats: dict[str, str] = field(default_factory=dict)  # column -> format spec, e.g. ".4f"
    figure: tuple[str, str] | None = None              # (file name, SVG text)
    headline: str | None = None                        # one sentence for the summary at the top
    env: dict = field(default_factory=environment)

    def add(self, *cells) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: row has {len(cells)} cells, table has {len(self.columns)} columns")
        self.rows.append(list(cells))

    def cell(self, column: str, value) -> str:
        if value is None:
            return MISSING
        if isinstance(value, float):
            if not math.isfinite(value):
                return MISSING
            spec = self.formats.get(column)
            return format(value, spec) if spec else auto_format(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}" if abs(value) >= 10_000 else str(value)
        return str(value).replace("|", "\\|").replace("\n", " ")

    def numeric(self, i: int) -> bool:
        """Column i holds numbers (right-aligned): every cell is a number or missing."""
        cells = [row[i] for row in self.rows if row[i] is not None and row[i] not in (MISSING, "n/a")]
        return bool(cells) and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cells)

    def to_dict(self) -> dict:
        """Raw values for benchmarks.json (floats unformatted)."""
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "notes": self.notes,
                "headline": self.headline,
                "figure": self.figure[0] if self.figure else None, "env": self.env}

    def markdown(self, figures: bool = False) -> str:
        """The table as Markdown; `figures` links the SVG (saved next to the document)."""
        lines = [f"### {self.title}", "",
                 "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---:" if self.numeric(i) else ":---" for i in range(len(self.columns))) + "|"]
        lines += ["| " + " | ".join(self.cell(c, v) for c, v in zip(self.columns, row)) + " |"
                  for row in self.rows]
        lines.append("")
        lines += [f"{note}  " for note in self.notes]
        lines.append(f"_{environment_line(self.env)}_")
        if self.figure and figures:
            lines += ["", f"![{self.title}]({self.figure[0]})"]
        return "\n".join(lines) + "\n"


def auto_format(x: float) -> str:
    """3 significant digits for small numbers, fewer decimals for large ones."""
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def time_calls(fn, repeats: int, warmup: int = 2) -> dict:
    """Call fn() `warmup` times untimed, then `repeats` times: median/p95/min in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return {"median_ms": statistics.median(times), "p95_ms": float(np.percentile(times, 95)),
            "min_ms": min(times), "runs": repeats}


# --- SVG line chart -------------------------------------------------------------------
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def line_chart(series: dict[str, list[tuple[float, float]]], *, title: str, x_label: str, y_label: str,
               log_x: bool = False, log_y: bool = False, markers_only: set[str] = frozenset(),
               width: int = 720, height: int = 400) -> str:
    """An SVG chart of named (x, y) series; series in `markers_only` get dots, no line."""
    pts = [(x, y) for s in series.values() for x, y in s if _ok(x, log_x) and _ok(y, log_y)]
    if not pts:
        raise ValueError(f"chart {title!r} has no plottable points")
    box = _Box(width, height, log_x, log_y, [x for x, _ in pts], [y for _, y in pts])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
           *box.axes(x_label, y_label)]
    for i, (name, points) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        xy = [(box.px(x), box.py(y)) for x, y in sorted(points) if _ok(x, log_x) and _ok(y, log_y)]
        if name not in markers_only and len(xy) > 1:
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                       + " ".join(f"{a:.1f},{b:.1f}" for a, b in xy) + '"/>')
        out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3.5" fill="{colour}"/>' for a, b in xy]
        lx, ly = width - box.right + 14, box.top + 8 + 18 * i       # legend entry
        out.append(f'<circle cx="{lx}" cy="{ly}" r="4" fill="{colour}"/>'
                   f'<text x="{lx + 10}" y="{ly + 4}">{escape(name)}</text>')
    return "\n".join(out + ["</svg>"]) + "\n"


class _Box:
    """The plot area: data -> pixel transforms, grid, tick labels and axis titles."""
    left, right, top, bottom = 70, 230, 40, 50   # margins in pixels; the legend sits on the right

    def __init__(self, width, height, log_x, log_y, xs, ys):
        self.width, self.height, self.log_x, self.log_y = width, height, log_x, log_y
        self.x0, self.x1 = _span([self._t(x, log_x) for x in xs])
        self.y0, self.y1 = _span([self._t(y, log_y) for y in ys])

    @staticmethod
    def _t(v: float, log: bool) -> float:
        return math.log10(v) if log else v

    def px(self, x: float) -> float:
        return self.left + (self._t(x, self.log_x) - self.x0) / (self.x1 - self.x0) * (
            self.width - self.left - self.right)

    def py(self, y: float) -> float:
        return self.height - self.bottom - (self._t(y, self.log_y) - self.y0) / (self.y1 - self.y0) * (
            self.height - self.top - self.bottom)

    def axes(self, x_label: str, y_label: str) -> list[str]:
        w, h, l, r, t, b = self.width, self.height, self.left, self.right, self.top, self.bottom
        out = [f'<text x="{(l + w - r) / 2}" y="{h - 10}" text-anchor="middle">{escape(x_label)}</text>',
               f'<text transform="translate(16,{(t + h - b) / 2}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_label)}</text>']
        for v in _ticks(self.x0, self.x1, self.log_x):
            out.append(f'<line x1="{self.px(v):.1f}" x2="{self.px(v):.1f}" y1="{t}" y2="{h - b}" stroke="#eee"/>'
                       f'<text x="{self.px(v):.1f}" y="{h - b + 16}" text-anchor="middle">{v:g}</text>')
        for v in _ticks(self.y0, self.y1, self.log_y):
            out.append(f'<line x1="{l}" x2="{w - r}" y1="{self.py(v):.1f}" y2="{self.py(v):.1f}" stroke="#eee"/>'
                       f'<text x="{l - 6}" y="{self.py(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        out.append(f'<rect x="{l}" y="{t}" width="{w - l - r}" height="{h - t - b}" fill="none" stroke="#444"/>')
        return out


def _ok(v: float, log: bool) -> bool:
    return v is not None and math.isfinite(v) and (v > 0 or not log)


def _span(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or 0.5
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    """About five round tick values inside [lo, hi] (given in plot units)."""
    if log:
        return [10.0 ** e * m for e in range(math.floor(lo), math.ceil(hi) + 1) for m in (1, 2, 5)
                if lo <= e + math.log10(m) <= hi]
    step = 10 ** math.floor(math.log10((hi - lo) / 5))
    step *= next(m for m in (1, 2, 5, 10) if (hi - lo) / (step * m) <= 6)
    return [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def trained_on(metrics: dict) -> str:
    """What a shipped denoiser was trained on, from its manifest metrics, for a table's label."""
    return describe_noise(metrics["noise"], metrics.get("noise_level"))


def parameter_count(model: torch.nn.Module) -> int:
    """How many numbers a model learns, for a table's "parameters" column."""
    return sum(p.numel() for p in model.parameters())
