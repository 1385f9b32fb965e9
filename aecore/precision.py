"""Numeric precision of training: bfloat16 autocast where the hardware has bf16 units.

Under `torch.autocast(dtype=torch.bfloat16)` matrix products and convolutions run in
bfloat16 (oneDNN on CPUs with AVX-512 bf16 or AMX, tensor cores on CUDA); master weights,
optimizer state and the loss stay fp32, so a step is as stable as fp32's (the same 8-bit
exponent) at a quarter of the bytes moved. Convolutional models also train in the
channels-last memory layout, which oneDNN's kernels prefer. docs/BENCHMARKS.md has the
measured gains (`python -m bench --only precision`)."""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_HELP = {
    "auto": "bfloat16 where this machine has bf16 units (CUDA, or a CPU with AVX-512 bf16 / AMX) and the "
            "architecture gains from it (all but the simple model), else fp32",
    "fp32": "32-bit floats throughout: the slowest, the reference",
    "bf16": "bfloat16 matrix products and convolutions; weights, optimizer and loss stay fp32",
}
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_units(device: torch.device, flags: frozenset[str] | None = None) -> bool:
    """Whether `device` computes bfloat16 natively (emulated bf16 is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        flags = cpu_flags() if flags is None else flags
        return bool(flags & BF16_CPU_FLAGS) and torch.backends.mkldnn.is_available()
    return False


def resolve_precision(requested: str, device: torch.device, flags: frozenset[str] | None = None,
                      model: torch.nn.Module | None = None) -> tuple[str, str | None]:
    """("fp32" or "bf16", a one-line note when that is not what was asked for, else None).
    "auto" is bf16 where the device has the units and `model`'s architecture gains from it
    (aecore.models.bf16_pays: not the simple model, whose products are too small)."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    native = bf16_units(device, flags)
    if requested == "auto":
        from .models import bf16_pays
        return ("bf16" if native and (model is None or bf16_pays(model)) else "fp32"), None
    if requested == "bf16" and not native:
        return "fp32", (f"precision bf16 is not supported on this {device.type} (no bfloat16 units); "
                        "training in fp32 instead")
    return requested, None


def autocast(precision: str, device: torch.device):
    """The context a training step's forward pass and loss run in."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def is_convolutional(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """torch's thread count set to `threads` inside the block (left as it is for None or 0),
    and the caller's put back after: a command's --threads holds for the command only."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def channels_last(model: torch.nn.Module | None):
    """Run a convolutional model in the channels-last layout inside the block, and put it back
    in the default layout after: oneDNN's convolutions take about half the time in fp32 on
    this CPU (the full test set through a shipped denoiser: 24 s -> 12 s), and the outputs
    differ from the default layout's by float rounding only (about 2e-6). A model that is
    not convolutional, or already in another layout (a training's), is left as it is."""
    weights = [p for p in model.parameters() if p.dim() == 4] if model is not None else []
    if not weights or not is_convolutional(model) or not all(p.is_contiguous() for p in weights):
        yield
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)
