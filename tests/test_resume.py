"""An interrupted training continues where it stopped (aecore.resume): the continued run's
weights and figures are the uninterrupted run's, bit for bit; a state file is never
overwritten unasked, and one that does not belong to the command, or is not a state at
all, gets a clear message and is kept."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from aecore import resume
from aecore.checkpoint import read_checkpoint
from aecore.errors import CheckpointError
from aecore.trainer import ConfigError, TrainConfig, resolved, train
from aecore.trial import build_model
from tests.conftest import ROOT

TINY = dict(epochs=3, train_size=512, test_size=128, batch_size=64)
# the models whose training draws from every saved generator: the U-Net trains on noise
# (the noise generator) with batch norm (running statistics), the VAE samples its codes (torch's)
MODELS = [("unet", {"code_size": 256, "width": 8, "batch_norm": True}, {"noise": "gaussian", "noise_level": 0.5}),
          ("vae", {"code_size": 4}, {})]


@pytest.fixture(scope="module")
def train_images():
    from aecore.data import load_mnist
    return load_mnist("train", as_uint8=True)[0]


@pytest.mark.parametrize("name,options,noise", MODELS, ids=[m[0] for m in MODELS])
def test_a_run_continued_from_any_epoch_is_the_uninterrupted_run(name, options, noise, train_images, mnist_test,
                                                                  tmp_path):
    config = TrainConfig(**TINY, **noise, weights_dtype="float16")
    states = []
    whole = build_model(name, options, 0)
    expected = train(whole, train_images, mnist_test[0], config, snapshot=states.append)
    assert [s["epoch"] for s in states] == [1, 2]   # none after the last epoch: the checkpoint is the end
    for state in states:
        path = tmp_path / f"after-{state['epoch']}.pt.resume"
        resume.save_state(path, state)               # through the file, as `aecore train` does
        saved = resume.read_state(path)
        model = build_model(name, options, 0)
        assert resume.mismatch(saved, model, resolved(config, model)) is None
        result = train(model, train_images, mnist_test[0], config, resume=saved)
        for key, tensor in whole.state_dict().items():
            assert torch.equal(model.state_dict()[key], tensor), (state["epoch"], key)
        for key in ("epoch", "train_loss", "test_loss", "test_mse"):
            assert result.history[key] == expected.history[key]


def test_a_state_from_another_training_is_refused_with_the_reason(train_images, mnist_test):
    config = TrainConfig(**TINY)
    states = []
    train(build_model("simple", {"code_size": 8}, 0), train_images, mnist_test[0], config, snapshot=states.append)
    state, model = states[0], build_model("simple", {"code_size": 8}, 0)
    assert resume.mismatch(state, model, resolved(TrainConfig(**{**TINY, "epochs": 4}), model)) == \
        "it was saved by a different training: epochs 3 there, 4 here"
    assert "lr 0.01 there, 0.001 here" in resume.mismatch(state, model, TrainConfig(**TINY, lr=1e-3))
    other = build_model("simple", {"code_size": 16}, 0)
    assert "a simple model with" in resume.mismatch(state, other, resolved(config, other))


def test_a_state_whose_parts_do_not_fit_is_refused_before_a_step(train_images, mnist_test):
    config = TrainConfig(**TINY)
    states = []
    train(build_model("simple", {"code_size": 8}, 0), train_images, mnist_test[0], config, snapshot=states.append)
    model = build_model("simple", {"code_size": 8}, 0)
    moments = states[0]["optimizer"]["state"][0]
    moments["exp_avg"] = moments["exp_avg"][:1]
    assert resume.mismatch(states[0], model, resolved(config, model)) == \
        "its optimizer's exp_avg for parameter 0 does not fit the model"
    states[1]["rng"]["shuffle"] = torch.zeros(3, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="the saved training state cannot be restored"):
        train(model, train_images, mnist_test[0], config, resume=states[1])


def cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "aecore", "--threads", "1", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)


def train_args(out, epochs=3):
    return ["train", "--model", "conv", "--code-size", "49", "--epochs", str(epochs), "--train-size", "3000",
            "--test-size", "100", "--quiet", "--out", str(out), "--manifest", str(out.parent / "manifest.json")]


def start_and_stop(out, sig, epochs):
    """`aecore train` started for real and stopped by `sig` as soon as it has saved a state
    (after its first epoch): (exit code, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "aecore", "--threads", "1", *train_args(out, epochs)], cwd=ROOT,
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         # Ctrl-C reaches it even where this runs in the background (SIGINT ignored)
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    state, deadline = resume.state_path(out), time.monotonic() + 240
    while not state.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    p.send_signal(sig)
    _, stderr = p.communicate(timeout=60)
    assert state.exists(), stderr
    return p.returncode, stderr


def test_killed_training_resumes_to_the_uninterrupted_checkpoint(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    whole, interrupted = tmp_path / "a" / "m.pt", tmp_path / "b" / "m.pt"
    assert cli(*train_args(whole)).returncode == 0
    # killed outright, as when the machine goes away: the state after epoch 1 is all that is left
    start_and_stop(interrupted, signal.SIGKILL, epochs=3)
    state = resume.state_path(interrupted)
    saved = state.read_bytes()

    again = cli(*train_args(interrupted))                  # without --resume: refused, nothing touched
    assert again.returncode == 2 and "holds an interrupted training: pass --resume" in again.stderr
    assert "Traceback" not in again.stderr and state.read_bytes() == saved and not interrupted.exists()

    done = cli(*train_args(interrupted), "--resume")
    assert done.returncode == 0, done.stderr
    assert "resuming after epoch" in done.stderr and not state.exists()
    a, b = read_checkpoint(whole), read_checkpoint(interrupted)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["metrics"] == b["metrics"] and a["history"]["train_loss"] == b["history"]["train_loss"]
    assert b["training"]["seconds"] >= sum(b["history"]["seconds"])   # the killed process's epochs count too
    # the recorded command is the uninterrupted run's: --resume changes nothing in the result
    command = json.loads((tmp_path / "b" / "manifest.json").read_text())["models"][0]["command"]
    assert b["training"]["command"] == command == a["training"]["command"].replace("/a/", "/b/")


def test_ctrl_c_keeps_the_state_and_says_how_to_continue(tmp_path):
    out = tmp_path / "m.pt"
    code, stderr = start_and_stop(out, signal.SIGINT, epochs=40)
    assert code == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert "with --resume continues from there" in stderr and str(resume.state_path(out)) in stderr
    assert resume.read_state(resume.state_path(out))["epoch"] >= 1 and not out.exists()


def test_resume_without_a_saved_state_starts_at_epoch_one(tmp_path):
    out = tmp_path / "m.pt"
    r = cli(*train_args(out, epochs=1), "--resume")
    assert r.returncode == 0 and "no interrupted run" in r.stderr and out.exists()


@pytest.mark.parametrize("content,message", [
    (b"garbage", "not a training state (expected the zip container torch.save writes)"),
    (b"PK\x03\x04" + bytes(100), "not a training state, or it is truncated or corrupt"),
    (None, "refused: the file holds objects other than tensors"),     # a pickle that would run code
    ("checkpoint", "not an aecore training state"),                    # a checkpoint is not a state
], ids=["garbage", "cut", "pickle", "checkpoint"])
def test_a_bad_state_file_gets_a_clear_message_and_is_kept(content, message, tmp_path):
    out = tmp_path / "m.pt"
    state = resume.state_path(out)
    if content is None:
        torch.save({"format": resume.FORMAT, "x": os.system}, state)
    elif content == "checkpoint":
        state.write_bytes((ROOT / "weights" / "conv-196.pt").read_bytes())
    else:
        state.write_bytes(content)
    before = state.read_bytes()
    r = cli(*train_args(out, epochs=1), "--resume")
    assert r.returncode == 2 and message in r.stderr and str(state) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and state.read_bytes() == before and not out.exists()


def test_the_state_reader_bounds_what_it_reads(tmp_path, monkeypatch):
    path = tmp_path / "big.resume"
    path.write_bytes(b"PK\x03\x04" + bytes(2**20))
    monkeypatch.setattr(resume, "MAX_STATE_BYTES", 2**20)
    with pytest.raises(CheckpointError, match="over the 1 MB limit for a training state"):
        resume.read_state(path)


def test_a_state_that_cannot_be_written_is_warned_about_and_the_training_goes_on(tmp_path, monkeypatch, capsys):
    from aecore import atomic, cli as aecore_cli

    def disk_full(path, data):
        raise atomic.WriteError(f"cannot write {path}: No space left on device")
    monkeypatch.setattr(resume, "atomic_write_bytes", disk_full)
    out = tmp_path / "m.pt"
    assert aecore_cli.main(["--threads", "1", *train_args(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: cannot write") == 1 and "No space left on device" in err   # once, not per epoch
    assert out.exists() and not resume.state_path(out).exists()
