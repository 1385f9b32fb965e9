"""An interrupted training, continued: after every finished epoch `aecore train` writes the
whole state of the run (weights, Adam's moments, the learning-rate schedule's step, the
shuffling and noise generators, the history) to `<out>.resume`, atomically; `--resume`
continues from it. The continued run takes the same steps with the same numbers as one that
was never interrupted, so its checkpoint is the recorded command's (tests/test_resume.py).

The file is read like a checkpoint: bounded, `torch.load(weights_only=True)` (no code runs),
and checked against the command before anything of it is used."""
from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path

import torch

from .atomic import atomic_write_bytes
from .checkpoint import MAX_BYTES, load_torch_file, misfit
from .errors import CheckpointError

FORMAT, VERSION = "aecore-training-state", 1
MAX_STATE_BYTES = 4 * MAX_BYTES   # the weights and Adam's two moments, all float32
SUFFIX = ".resume"


def state_path(out: str | Path) -> Path:
    """Where the run writing checkpoint `out` keeps its state: `<out>.resume` (not a .pt:
    nothing that lists checkpoints picks it up)."""
    out = Path(out)
    return out.with_name(out.name + SUFFIX)


def save_state(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_state(path: Path) -> dict:
    """The state a run saved, validated as far as it can be without the model; raises
    CheckpointError naming the file and the reason."""
    fail = lambda why: CheckpointError(f"{path}: {why}")
    state = load_torch_file(path, MAX_STATE_BYTES, fail, "a training state")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise fail("not an aecore training state (no 'format' marker)")
    if state.get("version") != VERSION:
        raise fail(f"training state version {state.get('version')!r} is not supported (this aecore reads {VERSION})")
    for key, kind in (("epoch", int), ("model", str), ("model_config", dict), ("config", dict),
                      ("weights", dict), ("optimizer", dict), ("scheduler", dict), ("rng", dict),
                      ("history", dict), ("elapsed_s", float)):
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise fail(f"the '{key}' entry is missing or malformed")
    return state


def mismatch(state: dict, model, config) -> str | None:
    """Why `state` cannot continue training `model` as `config` says (the first reason), or
    None. `config` is the run's TrainConfig with its learning rate resolved."""
    if state["model"] != model.name or state["model_config"] != dict(model.config):
        return f"it was saved training a {state['model']} model with {state['model_config']}"
    wanted = asdict(config)
    changed = [f"{k} {state['config'].get(k)!r} there, {v!r} here" for k, v in wanted.items()
               if state["config"].get(k) != v]
    if changed:
        return "it was saved by a different training: " + "; ".join(changed)
    if not 1 <= state["epoch"] < config.epochs:
        return f"its epoch {state['epoch']} is not within the run's {config.epochs} epochs"
    if why := misfit(model, state["weights"]):
        return f"its weights do not fit the model: {why}"
    return _optimizer_misfit(state["optimizer"], [p.shape for p in model.parameters()])


def _optimizer_misfit(optimizer: dict, shapes: list) -> str | None:
    """Why Adam's saved state cannot be the state of parameters of `shapes`, or None."""
    groups, moments = optimizer.get("param_groups"), optimizer.get("state")
    if not isinstance(groups, list) or not isinstance(moments, dict) \
            or [i for g in groups if isinstance(g, dict) for i in g.get("params", ())] != list(range(len(shapes))):
        return "its optimizer state is not Adam's for this model's parameters"
    for index, entry in moments.items():
        if not isinstance(index, int) or not 0 <= index < len(shapes) or not isinstance(entry, dict):
            return "its optimizer state names a parameter the model does not have"
        for key in ("exp_avg", "exp_avg_sq"):
            if not isinstance(entry.get(key), torch.Tensor) or entry[key].shape != shapes[index]:
                return f"its optimizer's {key} for parameter {index} does not fit the model"
    return None
