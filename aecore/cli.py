"""Command line: `python -m aecore {list,train,evaluate} ...`.

Errors print one line and exit non-zero; `--debug` shows the traceback."""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from .atomic import WriteError
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, trained_noise
from .data import SPLITS, DataError, load_mnist
from .evaluation import ALL_METRICS, evaluate, format_table
from .manifest import read_manifest_file, record_in_manifest
from .models import (UnknownModelError, create_model, describe_model, is_autoencoder, list_models, model_options,
                     recommended_lr)
from .noise import BLIND, LEVEL_RANGE, TRAINING_NOISES
from .shipped import make_example
from .precision import PRECISION_HELP, PRECISIONS, resolve_precision, torch_threads
from . import resume
from .trainer import (INTEGERS, LIMITS, WEIGHTS_DTYPES, ConfigError, TrainConfig, TrainingDiverged, pick_device,
                      resolved)

class CLIError(Exception):
    pass


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def parse_value(text: str):
    """'3' -> 3, '0.5' -> 0.5, '[1,2]' -> [1, 2], 'nearest' -> 'nearest'."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def progress_bar(stream=sys.stderr, every_s: float = 0.5):
    last = [0.0]

    def show(p):
        now = time.perf_counter()
        if p.event == "batch" and now - last[0] < every_s:
            return
        last[0] = now
        width = 30
        filled = int(width * p.fraction)
        tail = (f" test mse {p.test_mse:.5f}" if p.test_mse is not None else "")
        stream.write(f"\repoch {p.epoch}/{p.epochs} [{'#' * filled}{'.' * (width - filled)}] "
                     f"{100 * p.fraction:5.1f}% loss {p.loss:.4f} {p.images_per_s:7.0f} img/s "
                     f"eta {p.eta_s:5.0f}s{tail}   ")
        if p.event == "epoch":
            stream.write("\n")
        stream.flush()
    return show


def cmd_list(args) -> int:
    from .sweep_spec import option_text   # as --option KEY=VALUE takes it: batch_norm=false, hidden=[1000,500]
    for name in list_models():
        options = ", ".join(f"{k}={option_text(v)}" for k, v in model_options(name).items())
        print(f"{name:14s} {describe_model(name)}\n{'':14s} options: {options}")
    return 0


def cmd_prepare_data(args) -> int:
    from .data import ensure_mnist
    started = time.perf_counter()
    folder = ensure_mnist()
    print(f"MNIST ready in {folder} ({time.perf_counter() - started:.1f} s)")
    return 0


def cmd_train(args) -> int:
    from .trial import build_model, fit, training_record
    options = model_options_from_args(args)
    tc = train_config_from_args(args)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CLIError(f"{out} exists; pass --force to replace it")
    if args.manifest:
        read_manifest_file(Path(args.manifest))  # a broken manifest stops us before training
    model = build_model(args.model, options, args.seed)
    state_file = resume.state_path(out)
    state = interrupted_run(state_file, model, tc, args.resume)
    precision, note = resolve_precision(tc.precision, pick_device(tc.device), model=model)
    if note:
        print(f"note: {note}", file=sys.stderr)
    print(f"training {args.model} {model.config} on {min(SPLITS['train'][2], tc.train_size or 10**9)} "
          f"images with {torch.get_num_threads()} threads, precision {precision}", file=sys.stderr)
    if state:
        print(f"resuming after epoch {state['epoch']} of {tc.epochs} from {state_file}", file=sys.stderr)
    try:
        fitted = fit(model, tc, callback=None if args.quiet else progress_bar(), resume=state,
                     snapshot=saver(state_file))
    except ConfigError as e:   # a saved state that cannot be restored: name its file
        if state:
            raise CLIError(f"{state_file}: {e}") from e
        raise
    except KeyboardInterrupt:
        if state_file.exists():
            print(f"\nthe run's state after its last finished epoch is in {state_file}: "
                  "the same command with --resume continues from there", file=sys.stderr)
        raise
    # global options (--threads, --debug) and --resume do not change the result; record the rest
    command = "python -m aecore " + " ".join(shlex.quote(a) for a in args.argv[args.argv.index("train"):]
                                             if a != "--resume")
    save_checkpoint(model, out, metrics=fitted.metrics, history=fitted.result.history,
                    training=training_record(command, fitted))
    print(format_table([{"name": out.name, **fitted.metrics, "code_size": model.code_size,
                         "autoencoder": is_autoencoder(model)}]), flush=True)
    if args.manifest:
        record_in_manifest(Path(args.manifest), out, command, fitted.metrics, model,
                           make_example(model, fitted.test_images))
    state_file.unlink(missing_ok=True)   # the run is done: its checkpoint holds everything
    print(f"saved {out}", file=sys.stderr)
    return 0


def saver(state_file: Path):
    """The snapshot callback of `aecore train`: each epoch's state to `state_file`. A state that
    cannot be written (a full disk) is warned about once and the training goes on: losing the
    run over its safety copy would be worse."""
    warned = []

    def save(state: dict) -> None:
        try:
            resume.save_state(state_file, state)
        except WriteError as e:
            if not warned:
                print(f"\nwarning: {e}; the training goes on, but --resume could only continue from an "
                      "earlier epoch", file=sys.stderr)
                warned.append(e)
    return save


def interrupted_run(state_file: Path, model, tc: TrainConfig, wanted: bool) -> dict | None:
    """The saved state of an interrupted run of this command, when `wanted` (--resume) and
    there is one; an existing state is never overwritten unasked."""
    if not state_file.exists():
        if wanted:
            print(f"note: no interrupted run at {state_file}; starting at epoch 1", file=sys.stderr)
        return None
    if not wanted:
        raise CLIError(f"{state_file} holds an interrupted training: pass --resume to continue it, "
                       "or delete the file to start over")
    state = resume.read_state(state_file)
    if why := resume.mismatch(state, model, resolved(tc, model)):
        raise CLIError(f"{state_file} cannot continue this command: {why}. Run the command that "
                       "saved it, or delete the file to start over")
    return state


def train_config_from_args(args) -> TrainConfig:
    """The TrainConfig of parsed `aecore train` arguments (validated)."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                          if hasattr(args, f.name)}).validate()


def model_options_from_args(args) -> dict:
    """The model options of parsed `aecore train` arguments: --option KEY=VALUE and --code-size."""
    config = {k: parse_value(v) for k, v in (_split_option(o) for o in args.option)}
    if args.code_size is not None:
        config["code_size"] = args.code_size
    return config


def _split_option(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise CLIError(f"--option takes KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip().replace("-", "_"), value


def cmd_evaluate(args) -> int:
    from .denoising import benchmark, format_benchmark, trained_for
    from .shipped import shipped_models
    test_x, _ = load_mnist("test")
    rows = []
    if args.checkpoint:
        targets = [(Path(p).name, load_checkpoint(p)) for p in args.checkpoint]
    else:
        shipped = shipped_models(args.weights and Path(args.weights))
        targets = [(s.name, s.model) for s in shipped if s.model is not None]
        for s in shipped:
            if s.model is None:
                print(f"warning: {s.name} unavailable: {s.error}", file=sys.stderr)
    images = test_x[: args.test_size]
    print(f"{len(images)} MNIST test digits; a denoiser is scored on the noise it was trained on "
          "(a blind one on a random mix); -ELBO: a VAE's negative ELBO, nats per digit", file=sys.stderr)
    for name, model in targets:
        noise = trained_noise(model) or (None, 0.0)
        rows.append({"name": name, "code_size": model.code_size, "autoencoder": is_autoencoder(model),
                     **evaluate(model, images, noise=noise[0], level=noise[1], metrics=ALL_METRICS)})
    print(format_table(rows))
    denoisers = {name: model for name, model in targets if trained_for(model)}
    if denoisers:
        print("\nDenoising at each noise kind's default level (the Denoise page's), same seeded noise "
              "for every method; the inpainting baseline is told which pixels were erased:")
        print(format_benchmark(benchmark(denoisers, images)))
    return 0


def _range_flag(parser, name: str, text: str, default_text: str | None = None) -> None:
    """--NAME for TrainConfig's setting `name`: its default from TrainConfig, its range from
    trainer.LIMITS (TrainConfig.validate() refuses values outside it)."""
    lo, hi = LIMITS[name]
    default = getattr(TrainConfig, name)
    parser.add_argument("--" + name.replace("_", "-"), type=int if name in INTEGERS else float, default=default,
                        help=f"{text}; {lo:g} to {hi:g} (default: {default_text or f'{default:g}'})")


def build_parser() -> argparse.ArgumentParser:
    # `aecore ...` when run as the console script (pyproject.toml), else `python -m aecore ...`
    prog = "aecore" if Path(sys.argv[0]).name == "aecore" else "python -m aecore"
    p = argparse.ArgumentParser(prog=prog, description="MNIST autoencoders: train, evaluate, compress.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch (default: all cores)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered models and their options").set_defaults(func=cmd_list)
    sub.add_parser("prepare-data", help="convert the bundled MNIST into the idx cache (once)"
                   ).set_defaults(func=cmd_prepare_data)
    t = sub.add_parser("train", help="train a model on MNIST and save a checkpoint")
    t.add_argument("--model", required=True, choices=list_models(), metavar="NAME",
                   help=f"one of: {', '.join(list_models())}")
    t.add_argument("--code-size", type=int, help="size of the code (latent) vector")
    t.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="another model option, e.g. width=32 or mode=bilinear (repeatable)")
    _range_flag(t, "epochs", "passes over the training images")
    _range_flag(t, "batch_size", "images per step")
    _range_flag(t, "lr", "Adam learning rate, warmed up then decayed to 0 on a cosine", default_text=(
        "the architecture's recommended rate: "
        + ", ".join(f"{n} {recommended_lr(n):g}" for n in list_models())))
    _range_flag(t, "warmup", "steps of linear learning-rate warm-up (at most a tenth of the run; 0: none)")
    t.add_argument("--no-init-bias", dest="init_bias", action="store_false",
                   help="keep the decoder's default output bias (default: the logit of the mean training pixel)")
    _range_flag(t, "weight_decay", "Adam weight decay")
    t.add_argument("--loss", choices=("bce", "mse"), default=TrainConfig.loss,
                   help=f"the training objective (default: {TrainConfig.loss}; the VAE always uses its ELBO)")
    t.add_argument("--precision", choices=PRECISIONS, default=TrainConfig.precision,
                   help="; ".join(f"{k}: {v}" for k, v in PRECISION_HELP.items())
                   + f" (default: {TrainConfig.precision})")
    t.add_argument("--seed", type=int, default=TrainConfig.seed,
                   help=f"shuffling, noise and sampling (default: {TrainConfig.seed})")
    t.add_argument("--noise", choices=TRAINING_NOISES, help="train as a denoiser with this corruption; "
                   f"{BLIND}: every kind, each image at a random level up to "
                   + ", ".join(f"{k} {r[0]:g}" for k, r in LEVEL_RANGE.items()) + " (--noise-level ignored)")
    _range_flag(t, "noise_level", "strength of --noise")
    t.add_argument("--train-size", type=positive_int, help="use only the first N training images (default: all 60,000)")
    t.add_argument("--test-size", type=positive_int, help="evaluate on the first N test images (default: all 10,000)")
    t.add_argument("--weights-dtype", choices=WEIGHTS_DTYPES, default=TrainConfig.weights_dtype,
                   help="store the weights as float16 (half the file; the trained weights are rounded before "
                        "the final evaluation, so the recorded figures are the file's) or float32 (default)")
    t.add_argument("--out", required=True, help="checkpoint path to write (.pt)")
    t.add_argument("--force", action="store_true", help="replace --out if it exists")
    t.add_argument("--resume", action="store_true",
                   help=f"continue an interrupted run of this command from its last finished epoch (the state "
                        f"saved after each epoch in OUT{resume.SUFFIX}); the result is the uninterrupted run's")
    t.add_argument("--manifest", help="record the command and metrics in this manifest (JSON)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="table of metrics on the MNIST test set")
    e.add_argument("--weights", default=None, help="folder with manifest.json (default: the shipped weights/)")
    e.add_argument("--checkpoint", nargs="+", help="evaluate these files instead of the shipped models")
    e.add_argument("--test-size", type=positive_int, help="only the first N test images")
    e.set_defaults(func=cmd_evaluate)
    from .compress import add_commands
    add_commands(sub)
    from . import sweep
    sweep.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    with torch_threads(args.threads):   # an in-process caller (a test, a notebook) keeps its own count
        try:
            return args.func(args)
        except (CLIError, ConfigError, TrainingDiverged, CheckpointError, DataError, WriteError,
                UnknownModelError, ValueError, OSError) as e:
            if args.debug:
                raise
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130


def run() -> int:
    """The process entry (`python -m aecore`, the `aecore` command): main(), ready to exit.
    Before exiting, everything alive is frozen out of the garbage collector's reach
    (`gc.freeze`): Python's collections at shutdown would otherwise walk torch's whole heap
    to free memory the operating system takes back anyway (what it saves: docs/BENCHMARKS.md,
    section 8). Files are closed and atexit handlers run as usual."""
    code = main()
    gc.freeze()
    return code
