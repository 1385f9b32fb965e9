"""CLI errors not covered by tests/test_cli.py: every bad argument or file gives one
`error: ...` line on stderr and a non-zero exit, never a traceback. Run in-process through
`aecore.cli.main` (what `python -m aecore` calls; an uncaught exception there is exactly
the traceback a user would see), plus one real subprocess for the whole path."""
import subprocess
import sys

import pytest

import aecore
from aecore.cli import main
from tests.conftest import ROOT

CLI_FIXES = "lead: aecore/cli.py must refuse this with an error line (see the helper's report)"


def run(capsys, *args) -> tuple[int, str]:
    """(exit status, stderr) of `python -m aecore ARGS`; argparse errors exit via SystemExit."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    return code, err


def assert_one_error(code, err, message):
    assert code not in (0, None), err
    assert message in err, err
    assert "Traceback" not in err


@pytest.fixture
def broken_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text('{"models": [')
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["train", "--model", "simple", "--out", "x.pt", "--epochs", "abc"], "invalid int value: 'abc'"),
    (["train", "--model", "simple", "--out", "x.pt", "--noise", "fog"], "invalid choice: 'fog'"),
    (["train", "--model", "simple", "--out", "x.pt", "--noise", "gaussian", "--noise-level", "5"],
     "noise_level must be a number from 0 to 1"),
    (["train", "--model", "simple", "--out", "x.pt", "--train-size", "0"],
     "argument --train-size: must be a whole number of at least 1, got '0'"),
    (["train", "--model", "simple", "--out", "x.pt", "--batch-size", "0"], "batch_size must be an integer"),
    (["train", "--model", "unet", "--out", "{tmp}/x.pt"], "unet is a denoiser, not an autoencoder: without noise"),
    (["train", "--model", "simple", "--out", "x.pt", "--option", "code_size=abc"], "code_size must be"),
    (["train", "--model", "simple", "--out", "x.pt", "--option", "code_size=-3"], "code_size must be"),
    (["train", "--out", "x.pt"], "the following arguments are required: --model"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: command"),
    (["evaluate", "--checkpoint", "{tmp}"], "cannot read the file (Is a directory)"),
    (["evaluate", "--weights", "{broken}"], "manifest.json: unreadable manifest"),
    (["compress", "--model", "no-such-model", "--out", "{tmp}/x.aecz"], "no shipped model 'no-such-model'"),
    (["compress", "--checkpoint", "{tmp}/missing.pt", "--out", "{tmp}/x.aecz"], "missing.pt: cannot read"),
    (["decompress", "{tmp}/missing.aecz", "--out", "{tmp}/x.npy"], "cannot read"),
    (["decompress", "{broken}/manifest.json", "--out", "{tmp}/x.npy"], "not an aecore compressed file"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_arguments_and_files_give_one_error_line(capsys, tmp_path, broken_manifest, args, message):
    args = [a.format(tmp=tmp_path, broken=broken_manifest) for a in args]
    assert_one_error(*run(capsys, *args), message)


def test_negative_threads(capsys):
    assert_one_error(*run(capsys, "--threads", "-1", "list"), "--threads")


def test_zero_threads(capsys):
    assert_one_error(*run(capsys, "--threads", "0", "list"), "--threads")


def test_threads_hold_for_the_command_only(capsys):
    """An in-process caller (a test, a notebook) keeps its own torch thread count."""
    import torch
    before = torch.get_num_threads()
    code, err = run(capsys, "--threads", before + 1, "list")
    assert code == 0, err
    assert torch.get_num_threads() == before
    assert_one_error(*run(capsys, "--threads", before + 1, "evaluate", "--checkpoint", "missing.pt"), "missing.pt")
    assert torch.get_num_threads() == before


@pytest.fixture
def small_checkpoint(tmp_path):
    return aecore.save_checkpoint(aecore.create_model("simple", code_size=4), tmp_path / "small.pt")


def test_evaluate_on_zero_images(capsys, small_checkpoint):
    assert_one_error(*run(capsys, "evaluate", "--checkpoint", small_checkpoint, "--test-size", "0"),
                     "--test-size")


def test_evaluate_on_a_negative_number_of_images(capsys, small_checkpoint):
    assert_one_error(*run(capsys, "evaluate", "--checkpoint", small_checkpoint, "--test-size", "-5"),
                     "--test-size")


def test_evaluate_a_weights_folder_without_a_manifest(capsys, tmp_path):
    assert_one_error(*run(capsys, "evaluate", "--weights", tmp_path / "nowhere"), "manifest.json")


def test_training_into_an_unwritable_place_names_it_and_leaves_no_file(capsys, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    code, err = run(capsys, "--threads", "1", "train", "--model", "simple", "--code-size", "4",
                    "--epochs", "1", "--train-size", "64", "--test-size", "32", "--quiet",
                    "--out", blocker / "m.pt")
    assert_one_error(code, err, f"cannot write {blocker / 'm.pt'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]


def test_a_corrupt_manifest_is_refused_before_training(capsys, tmp_path):
    """--manifest pointing at a broken file: an error naming it before any training, and the
    broken file is kept for a human to look at (not replaced by one with only the new entry)."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"models": [')
    code, err = run(capsys, "--threads", "1", "train", "--model", "simple", "--code-size", "4",
                    "--epochs", "1", "--train-size", "64", "--test-size", "32", "--quiet",
                    "--out", tmp_path / "m.pt", "--manifest", manifest)
    assert manifest.read_text() == '{"models": ['
    assert_one_error(code, err, f"{manifest}: ")
    assert not (tmp_path / "m.pt").exists()


def test_a_unet_cannot_compress_and_is_not_offered_to(capsys, tmp_path):
    """A U-Net's code alone rebuilds nothing: its checkpoint is refused with the reason, and
    `--model` does not offer a shipped one, so no file is written either way."""
    from aecore.checkpoint import save_checkpoint
    unet = save_checkpoint(aecore.create_model("unet", width=4, code_size=8), tmp_path / "unet.pt")
    out = tmp_path / "x.aecz"
    assert_one_error(*run(capsys, "compress", "--checkpoint", unet, "--out", out),
                     "unet.pt is a unet, not an autoencoder: its code alone cannot rebuild a digit")
    code, err = run(capsys, "compress", "--model", "denoiser-gaussian-unet", "--out", out)
    assert_one_error(code, err, "no shipped model 'denoiser-gaussian-unet'; choose one of: ")
    assert "conv_upsample-32" in err and not out.exists()


def test_the_real_command_prints_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "aecore", "evaluate", "--checkpoint", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {tmp_path}: cannot read the file (Is a directory)"]
    assert r.stdout == ""
