import os
import subprocess
import sys
from pathlib import Path

import pytest

import aecore
from tests.conftest import ROOT


def cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # aecore importable from any folder
    return subprocess.run([sys.executable, "-m", "aecore", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def test_train_one_short_epoch_writes_a_checkpoint(tmp_path):
    out, manifest = tmp_path / "m.pt", tmp_path / "manifest.json"
    r = cli("--threads", "1", "train", "--model", "simple", "--code-size", "8", "--epochs", "1",
            "--train-size", "1000", "--test-size", "200", "--out", str(out), "--manifest", str(manifest))
    assert r.returncode == 0, r.stderr
    assert "epoch 1/1" in r.stderr and "img/s" in r.stderr  # the progress bar
    assert "m.pt" in r.stdout and "PSNR" in r.stdout
    model = aecore.load_checkpoint(out)
    assert model.code_size == 8 and model.training_info["command"].startswith("python -m aecore train --model simple")
    assert model.history["epoch"] == [1] and model.metrics["images"] == 200
    import json
    entry = json.loads(manifest.read_text())["models"][0]
    assert entry["file"] == "m.pt" and entry["metrics"]["mse"] == model.metrics["mse"]


def test_retraining_replaces_a_manifest_entry_in_place_and_records_the_trainer_flags(tmp_path):
    import json
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"models": [{"file": "a.pt"}, {"file": "b.pt"}, {"file": "c.pt"}]}))
    r = cli("--threads", "1", "train", "--model", "simple", "--code-size", "4", "--epochs", "1", "--warmup", "0",
            "--no-init-bias", "--train-size", "256", "--test-size", "64", "--out", str(tmp_path / "b.pt"),
            "--manifest", str(manifest), "--quiet")
    assert r.returncode == 0, r.stderr
    models = json.loads(manifest.read_text())["models"]
    assert [e["file"] for e in models] == ["a.pt", "b.pt", "c.pt"]
    assert "--warmup 0 --no-init-bias" in models[1]["command"]
    training = aecore.load_checkpoint(tmp_path / "b.pt").training_info["config"]
    assert training["warmup"] == 0 and training["init_bias"] is False and training["lr"] == 1e-2


def test_existing_output_is_not_overwritten_without_force(tmp_path):
    out = tmp_path / "keep.pt"
    out.write_bytes(b"precious")
    r = cli("train", "--model", "simple", "--epochs", "1", "--train-size", "100", "--out", str(out))
    assert r.returncode == 2 and "exists; pass --force" in r.stderr and "Traceback" not in r.stderr
    assert out.read_bytes() == b"precious"


def test_evaluate_prints_a_table_of_the_shipped_models():
    r = cli("evaluate", "--test-size", "300")
    assert r.returncode == 0, r.stderr
    models, _, denoising = r.stdout.partition("\n\n")
    lines = models.splitlines()
    assert lines[0].split()[:3] == ["model", "code", "bytes"]
    names = [line.split()[0] for line in lines[2:]]
    assert "simple-32" in names and "conv_upsample-32" in names
    vae = next(line.split() for line in lines[2:] if line.startswith("vae-16 "))
    assert float(vae[-1]) > 0          # a VAE's negative ELBO in nats; '-' for the others
    assert next(line.split() for line in lines[2:] if line.startswith("simple-32 "))[-1] == "-"
    # issue 10: each noise kind at its default level, with its classic baseline and every denoiser
    for heading in ("Gaussian 0.5", "salt-and-pepper 0.3", "random erasing 0.25"):
        assert heading in denoising
    assert denoising.count("noisy input") == 3 and "inpainting (mask given)" in denoising
    assert denoising.count("matched") >= 3


def test_list_names_every_model_with_options_as_train_takes_them():
    """Each default `list` prints, typed back as --option KEY=VALUE, is that default
    (Python's False or (1000, 500) would be read as the strings 'False' and '(1000, 500)')."""
    from aecore.cli import parse_value
    r = cli("list")
    assert r.returncode == 0 and all(name in r.stdout for name in aecore.list_models())
    printed = [line.split("options: ", 1)[1] for line in r.stdout.splitlines() if "options: " in line]
    assert len(printed) == len(aecore.list_models())
    for name, line in zip(aecore.list_models(), printed):
        options = dict(item.split("=", 1) for item in line.split(", "))
        defaults = aecore.models.model_options(name)
        assert {k: parse_value(v) for k, v in options.items()} == {
            k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}, name


@pytest.mark.parametrize("args,message", [
    (["train", "--model", "simple", "--out", "x.pt", "--lr", "5"], "error: lr must be"),
    (["train", "--model", "simple", "--out", "x.pt", "--option", "depth"], "--option takes KEY=VALUE"),
    (["train", "--model", "simple", "--out", "x.pt", "--option", "colour=red"], "has no option colour"),
    (["train", "--model", "conv", "--code-size", "50", "--out", "x.pt"], "multiple of 49"),
    (["evaluate", "--checkpoint", "missing.pt"], "missing.pt: cannot read the file"),
    (["evaluate", "--checkpoint", "README.md"], "README.md: not a checkpoint file"),
])
def test_bad_input_gives_one_error_line_and_no_traceback(args, message, tmp_path):
    r = cli(*args, cwd=tmp_path if "README.md" not in args else ROOT)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr


def test_wrong_model_name_is_refused_by_argparse():
    r = cli("train", "--model", "resnet", "--out", "x.pt")
    assert r.returncode == 2 and "invalid choice: 'resnet'" in r.stderr


def test_debug_shows_the_traceback():
    r = cli("--debug", "evaluate", "--checkpoint", "missing.pt")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_trainings_that_finish_together_keep_both_manifest_entries(tmp_path):
    """scripts/train-weights.sh runs two chains: their manifest updates must not race."""
    import json
    import threading
    from aecore.manifest import record_in_manifest
    manifest, model = tmp_path / "manifest.json", aecore.create_model("simple", code_size=2)
    names = [f"m{i}.pt" for i in range(24)]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    def record(mine):
        for name in mine:
            record_in_manifest(manifest, tmp_path / name, "cmd", {"mse": 0.1}, model)
    threads = [threading.Thread(target=record, args=(names[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e["file"] for e in json.loads(manifest.read_text())["models"]) == sorted(names)


# Runs `python -m aecore ARGS` and, at exit, writes the names of the imported modules to a file.
WITH_MODULE_LIST = """
import atexit, json, runpy, sys
out, sys.argv = sys.argv[1], ["aecore", *sys.argv[2:]]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
runpy.run_module("aecore", run_name="__main__", alter_sys=True)
"""
HEAVY = ("torch._dynamo", "scipy", "torchmetrics", "sympy", "torchvision")


def train_listing_modules(tmp_path, name, **env):
    listing, out = tmp_path / f"{name}.json", tmp_path / f"{name}.pt"
    r = subprocess.run([sys.executable, "-c", WITH_MODULE_LIST, str(listing), "--threads", "1", "train",
                        "--model", "simple", "--epochs", "1", "--train-size", "512", "--test-size", "256",
                        "--out", str(out), "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    assert r.returncode == 0, r.stderr
    import json
    modules = set(json.loads(listing.read_text()))
    return {m.split(".")[0] if not m.startswith("torch._dynamo") else "torch._dynamo" for m in modules}, out


def test_training_imports_no_compiler_or_scipy_and_learns_the_same_weights(tmp_path):
    import torch
    fast, fast_out = train_listing_modules(tmp_path, "fast")
    assert "torch" in fast and not fast & set(HEAVY), sorted(fast & set(HEAVY))
    # the same run with aecore.fastimport switched off: torch imports torch._dynamo, same result
    slow, slow_out = train_listing_modules(tmp_path, "slow", AECORE_EAGER_OPTIMIZERS="0")
    assert "torch._dynamo" in slow
    a, b = (torch.load(p, map_location="cpu", weights_only=True) for p in (fast_out, slow_out))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert a["history"]["train_loss"] == b["history"]["train_loss"]
    assert a["metrics"]["ssim"] == b["metrics"]["ssim"] and 0 < a["metrics"]["ssim"] < 1


def test_the_aecore_console_script_lists_the_models():
    script = Path(sys.executable).parent / "aecore"
    if not script.exists():
        pytest.skip(f"no `aecore` console script next to {sys.executable}: run `pip install -e .` "
                    "(the Makefile does) to install it")
    r = subprocess.run([str(script), "list"], cwd="/", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert all(name in r.stdout for name in aecore.list_models())
    r = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: aecore ")
