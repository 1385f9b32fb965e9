"""A sweep spec: a small TOML file naming a grid of trainings (or a list of them), read
into `Trial`s. Each trial is exactly one `python -m aecore train ...` command: `command()`
writes it, and the CLI's own parser reads it back into the same settings
(tests/test_sweep_spec.py), so a sweep and the recorded commands of weights/ cannot drift.

    name = "small"                 # optional; default: the file's stem
    results = "runs/small"         # results.json, results.csv and the checkpoints
    retries = 2                    # more attempts for a trial whose worker or node was lost
    rate_bits = 6                  # also compress the test digits (aecore.compress, codes quantised
                                   # to 6 bits): bytes per digit and PSNR, a rate-distortion point
    [train]                        # settings of every trial: aecore train's flags
    epochs = 1
    train_size = 4096
    [grid]                         # every combination of these lists is a trial
    model = ["simple", "conv_upsample"]
    code_size = [8, 32]
    noise = ["none", "gaussian"]
    noise_level = 0.5
    seed = [0, 1]
    [grid.options]                 # model options (aecore train --option KEY=VALUE)
    width = [16, 32]
    [[trial]]                      # and/or single trainings, e.g. with their own file
    model = "vae2d"
    code_size = 2
    out = "weights/vae2d-2.pt"     # default: RESULTS/NAME.pt
    manifest = "weights/manifest.json"   # also record it there (as aecore train --manifest)

Paths are relative to the current directory, as aecore train's are. Grid combinations an
architecture refuses (a conv code that is not a multiple of 49) are not spec errors: those
trials fail with the model's reason and the others run."""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import shlex
import tomllib
from pathlib import Path

from .models import list_models, model_options, training_error
from .noise import BLIND
from .trainer import ConfigError, TrainConfig

MAX_SPEC_BYTES = 1 << 20
MAX_TRIALS = 10_000
MAX_RETRIES = 10
# aecore train's flags for TrainConfig's settings, in the order the CLI's help lists them
# (and so a command writes them); device and channels_last are not flags
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "warmup", "init_bias", "weight_decay", "loss", "precision",
               "seed", "noise", "noise_level", "train_size", "test_size", "weights_dtype")
TOP_KEYS = {"name", "results", "retries", "rate_bits", "train", "grid", "trial"}
MAX_RATE_BITS = 16    # aecore.compress.MAX_BITS
TRIAL_KEYS = {"model", "code_size", "options", *TRAIN_FLAGS}
PATH_KEYS = {"name", "out", "manifest"}        # of one [[trial]] only


class SpecError(ValueError):
    """A spec cannot be used; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class Trial:
    name: str
    model: str
    options: dict          # model options, code_size included
    train: dict            # TrainConfig settings (the flags of TRAIN_FLAGS)
    out: str               # the checkpoint
    manifest: str | None = None
    spec: str = ""         # the spec's name, recorded with the result
    rate_bits: int | None = None   # also measure compression at this many bits per code number

    @property
    def config(self) -> dict:
        """Plain data for aecore.trial.run_trial: what to build, how to train and score it."""
        return {"model": self.model, "options": dict(self.options), "train": dict(self.train),
                **({"rate_bits": self.rate_bits} if self.rate_bits else {})}

    @property
    def key(self) -> str:
        """Identifies the training (not where it is written): a result is reused only for it.
        Settings equal to aecore train's defaults do not count (epochs = 5 is no epochs)."""
        defaults = TrainConfig()
        train = {k: v for k, v in self.train.items() if v != getattr(defaults, k)}
        config = {"model": self.model, "options": self.options, "train": train,
                  **({"rate_bits": self.rate_bits} if self.rate_bits else {})}
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]

    def argv(self) -> list[str]:
        """The arguments of `aecore train` that train exactly this trial."""
        args = ["train", "--model", self.model]
        options = dict(self.options)
        if "code_size" in options:
            args += ["--code-size", str(options.pop("code_size"))]
        for key, value in options.items():
            args += ["--option", f"{key}={option_text(value)}"]
        for name in TRAIN_FLAGS:   # each setting the spec gives, defaults included (as it was written)
            value = self.train.get(name)
            if value is None or value is True:   # no noise; init_bias on (there is only --no-init-bias)
                continue
            if value is False:
                args.append("--no-init-bias")
            else:
                args += ["--" + name.replace("_", "-"), str(value)]
        args += ["--out", self.out]
        if self.manifest:
            args += ["--manifest", self.manifest]
        return args + ["--force", "--quiet"]

    def command(self) -> str:
        return "python -m aecore " + " ".join(shlex.quote(a) for a in self.argv())


@dataclasses.dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    results: Path
    retries: int
    trials: list[Trial]


def option_text(value) -> str:
    """A model option as `--option KEY=VALUE` writes it (the CLI reads it back with json)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    fail = lambda why: SpecError(f"{path}: {why}")
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise fail(f"over {MAX_SPEC_BYTES // 1024} KB: not a sweep spec")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise fail(f"cannot read it ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise fail("not a text file") from e
    except tomllib.TOMLDecodeError as e:
        raise fail(f"not valid TOML ({e})") from e
    return parse_spec(data, path)


def parse_spec(data: dict, path: Path) -> Spec:
    def fail(why):
        return SpecError(f"{path}: {why}")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise fail(f"unknown setting {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(TOP_KEYS))}")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise fail("'name' must be a non-empty string")
    results = data.get("results", f"runs/{name}")
    if not isinstance(results, str) or not results.strip():
        raise fail("'results' must be a folder path (a string)")
    retries = data.get("retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise fail(f"'retries' must be a whole number from 0 to {MAX_RETRIES}, got {retries!r}")
    rate_bits = data.get("rate_bits")
    if rate_bits is not None and (isinstance(rate_bits, bool) or not isinstance(rate_bits, int)
                                  or not 1 <= rate_bits <= MAX_RATE_BITS):
        raise fail(f"'rate_bits' must be a whole number from 1 to {MAX_RATE_BITS}, got {rate_bits!r}")
    base = _table(data, "train", fail)
    _check_keys(base, set(TRAIN_FLAGS), "[train]", fail)
    tables = []
    if "grid" in data:
        tables += _expand_grid(_table(data, "grid", fail), fail)
    explicit = data.get("trial", [])
    if not isinstance(explicit, list) or not all(isinstance(t, dict) for t in explicit):
        raise fail("'trial' must be an array of tables ([[trial]])")
    for i, t in enumerate(explicit, 1):
        _check_keys(t, TRIAL_KEYS | PATH_KEYS, f"[[trial]] number {i}", fail)
        tables.append(dict(t))
    if not tables:
        raise fail("no trials: give a [grid] or [[trial]] tables")
    trials, seen = [], {}
    for t in tables:
        trial = _make_trial(base | {k: v for k, v in t.items() if k in TRAIN_FLAGS}, t, name, results, fail)
        trial = dataclasses.replace(trial, rate_bits=rate_bits)
        if trial.name in seen:
            if seen[trial.name].key == trial.key and seen[trial.name].out == trial.out:
                continue   # a grid can repeat a training (noise 'none' at several levels): run it once
            raise fail(f"two trials are named {trial.name!r}; give them distinct 'name's")
        seen[trial.name] = trial
        trials.append(trial)
    outs = [t.out for t in trials]
    if len(set(outs)) != len(outs):
        raise fail(f"two trials write the same checkpoint {next(o for o in outs if outs.count(o) > 1)!r}")
    return Spec(path, name, Path(results), retries, trials)


def _table(data: dict, key: str, fail) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise fail(f"'{key}' must be a table ([{key}])")
    return value


def _check_keys(table: dict, valid: set, where: str, fail) -> None:
    unknown = sorted(set(table) - valid)
    if unknown:
        raise fail(f"{where}: unknown setting {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(valid))}")


def _expand_grid(grid: dict, fail) -> list[dict]:
    _check_keys(grid, TRIAL_KEYS, "[grid]", fail)
    if "model" not in grid:
        raise fail("[grid] needs 'model' (a list of architectures)")
    axes = {k: v for k, v in grid.items() if k != "options"}
    options = grid.get("options", {})
    if not isinstance(options, dict):
        raise fail("[grid] 'options' must be a table ([grid.options])")
    keys = [*axes, *(f"options.{k}" for k in options)]
    values = [_axis(v, k, fail) for k, v in [*axes.items(), *((f"options.{k}", v) for k, v in options.items())]]
    if _count(values) > MAX_TRIALS:
        raise fail(f"the grid makes {_count(values):,} trials; at most {MAX_TRIALS:,}")
    out = []
    for combo in itertools.product(*values):
        t = {"options": {}}
        for k, v in zip(keys, combo):
            if k.startswith("options."):
                t["options"][k.removeprefix("options.")] = v
            else:
                t[k] = v
        out.append(t)
    return out


def _axis(value, key: str, fail) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise fail(f"[grid] '{key}' is an empty list: no trials")
    return values


def _count(values: list[list]) -> int:
    n = 1
    for v in values:
        n *= len(v)
    return n


def _make_trial(settings: dict, table: dict, spec_name: str, results: str, fail) -> Trial:
    model = table.get("model")
    if model not in list_models():
        raise fail(f"unknown model {model!r}; choose one of: {', '.join(list_models())}")
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise fail("a trial's 'options' must be a table of model options")
    options = dict(options)
    if "code_size" in table:
        options["code_size"] = table["code_size"]
    valid = model_options(model)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise fail(f"model {model!r} has no option {', '.join(unknown)}; valid options: {', '.join(valid)}")
    for key, value in options.items():
        if not isinstance(value, (int, float, str, list)):
            raise fail(f"model option {key!r} must be a number, a string or a list, got {value!r}")
    if "code_size" in options and (isinstance(options["code_size"], bool) or not isinstance(options["code_size"], int)):
        raise fail(f"code_size must be a whole number, got {options['code_size']!r}")
    train = dict(settings)
    if train.get("noise") in ("none", ""):
        train["noise"] = None
    if not train.get("noise") or train.get("noise") == BLIND:
        train.pop("noise_level", None)   # no noise, or blind: aecore train ignores the level
    try:
        TrainConfig(**train).validate()
    except (ConfigError, TypeError) as e:
        raise fail(f"{_label(model, options)}: {e}") from e
    if error := training_error(model, train.get("noise")):
        raise fail(f"{_label(model, options)}: {error}")
    if train.get("noise") is None:
        train.pop("noise", None)
    name = table.get("name") or _name(model, options, train)
    if not isinstance(name, str) or "/" in name or name.startswith("."):
        raise fail(f"a trial's name must be a plain file name, got {name!r}")
    out = table.get("out", f"{results}/{name}.pt")
    manifest = table.get("manifest")
    for key, value in (("out", out), ("manifest", manifest)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(f"trial {name!r}: '{key}' must be a path (a string)")
    return Trial(name, model, options, train, out, manifest, spec_name)


def _label(model: str, options: dict) -> str:
    return f"{model} " + " ".join(f"{k}={v}" for k, v in options.items())


def _name(model: str, options: dict, train: dict) -> str:
    parts = [model, str(options.get("code_size", model_options(model).get("code_size")))]
    parts += [f"{k}{option_text(v)}" for k, v in options.items() if k != "code_size"]
    if train.get("noise"):
        parts.append(train["noise"] + (f"{train['noise_level']:g}" if "noise_level" in train else ""))
    for key in ("seed", "epochs"):
        if key in train:
            parts.append(f"{key[0]}{train[key]}")
    return "-".join(parts).replace("/", "_").replace(" ", "")
