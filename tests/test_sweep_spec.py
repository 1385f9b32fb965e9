"""Sweep specs without Ray or training: a bad spec is one line naming the file and the
problem (exit 2, no traceback), and sweeps/shipped.toml is, trial for trial, the commands
weights/ records, read back by the CLI's own parser into the same settings."""
import json

import pytest

from aecore import cli
from aecore.sweep_spec import SpecError, load_spec
from tests.conftest import ROOT

GOOD = """
[train]
epochs = 1
[grid]
model = ["simple"]
code_size = [8, 16]
"""


@pytest.mark.parametrize("text, message", [
    ("[grid\nmodel = 1", "not valid TOML"),
    ("colour = 'red'\n" + GOOD, "unknown setting 'colour'"),
    ("name = 'x'", "no trials"),
    ("[grid]\ncode_size = [8]", "[grid] needs 'model'"),
    ("[grid]\nmodel = ['resnet']", "unknown model 'resnet'; choose one of: simple"),
    ("[grid]\nmodel = ['simple']\ncode_size = []", "'code_size' is an empty list"),
    ("[grid]\nmodel = ['simple']\nepochs = [0]", "epochs must be an integer from 1 to 1000, got 0"),
    ("[grid]\nmodel = ['simple']\nnoise = ['fog']", "noise must be one of"),
    ("[grid]\nmodel = ['unet']\nnoise = ['gaussian', 'none']", "unet is a denoiser, not an autoencoder: without noise"),
    ("[grid]\nmodel = ['simple']\n[grid.options]\ncolour = [1]", "model 'simple' has no option colour"),
    ("[grid]\nmodel = ['simple']\ncode_size = ['big']", "code_size must be a whole number"),
    ("[train]\nepoch = 3\n[grid]\nmodel = ['simple']", "[train]: unknown setting 'epoch'"),
    ("retries = -1\n" + GOOD, "'retries' must be a whole number from 0 to 10"),
    ("[grid]\nmodel = ['simple']\ncode_size = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nseed = " + str(list(range(1001))),
     "the grid makes 10,010 trials; at most 10,000"),
    ("[[trial]]\nmodel = 'simple'\nname = 'a'\n[[trial]]\nmodel = 'deep'\nname = 'a'", "two trials are named 'a'"),
    ("[[trial]]\nmodel = 'simple'\nout = 'x.pt'\n[[trial]]\nmodel = 'deep'\nout = 'x.pt'",
     "two trials write the same checkpoint 'x.pt'"),
    ("[[trial]]\nmodel = 'simple'\nname = '../up'", "a trial's name must be a plain file name"),
], ids=lambda v: v[:40])
def test_a_bad_spec_is_one_line_naming_the_file_and_the_problem(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value), str(e.value)
    assert cli.main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {e.value}\n", err


def test_unreadable_specs(tmp_path, capsys):
    assert cli.main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml: cannot read it" in capsys.readouterr().err
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert cli.main(["sweep", str(binary), "--dry-run"]) == 2
    assert "binary.toml: not a text file" in capsys.readouterr().err


def test_a_grid_is_every_combination_once(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(GOOD + "noise = ['none', 'gaussian']\nnoise_level = [0.25, 0.5]\nseed = [0, 1]\n")
    trials = load_spec(path).trials
    # noise 'none' at two levels is one training: 2 code sizes x 2 seeds x (1 clean + 2 noisy)
    assert len(trials) == 12 and len({t.key for t in trials}) == 12 and len({t.out for t in trials}) == 12
    assert all(t.out.startswith("runs/g/") for t in trials)


def manifest_entries():
    for manifest in ("weights/manifest.json", "weights/checkerboard/manifest.json"):
        for entry in json.loads((ROOT / manifest).read_text())["models"]:
            yield manifest, entry


def assert_the_cli_reads_it_back(trial):
    """The CLI reads a trial's command into the trial's settings."""
    args = cli.build_parser().parse_args(trial.argv())
    assert cli.train_config_from_args(args) == cli.TrainConfig(**trial.train)
    assert cli.model_options_from_args(args) == trial.options and args.model == trial.model


def test_the_shipped_spec_is_the_recorded_commands():
    trials = {t.out: t for t in load_spec(ROOT / "sweeps/shipped.toml").trials}
    entries = list(manifest_entries())
    assert len(trials) == len(entries)
    for manifest, entry in entries:
        out = f"{manifest.rsplit('/', 1)[0]}/{entry['file']}"
        assert out in trials, f"{out} is shipped but sweeps/shipped.toml does not train it"
        trial = trials[out]
        assert trial.command() == entry["command"]
        assert trial.manifest == manifest
        assert_the_cli_reads_it_back(trial)


@pytest.mark.parametrize("spec", sorted((ROOT / "sweeps").glob("*.toml")), ids=lambda p: p.name)
def test_every_committed_spec_loads_and_its_commands_parse(spec):
    trials = load_spec(spec).trials
    assert trials
    for trial in trials:
        assert_the_cli_reads_it_back(trial)


def probe_rows(name: str) -> dict[str, dict]:
    """The rows of docs/NAME-results.json, checked to be a finished run of sweeps/NAME.toml as
    it stands: every trial done, by the command the spec writes for it today."""
    trials = {t.name: t for t in load_spec(ROOT / f"sweeps/{name}.toml").trials}
    rows = {r["trial"]: r for r in json.loads((ROOT / f"docs/{name}-results.json").read_text())["rows"]}
    assert rows.keys() == trials.keys()
    for trial, row in rows.items():
        assert row["status"] == "done" and row["command"] == trials[trial].command()
    return rows


def test_the_gaussian_probe_results_are_a_run_of_its_spec():
    """docs/gaussian-probe-results.json (issue 10's open Gaussian target: what was tried) is a
    finished run of sweeps/gaussian-probe.toml as it stands, and none of its changes beat the recipe."""
    rows = probe_rows("gaussian-probe")
    for row in rows.values():
        assert row["test_size"] == 2000 and row["denoise_psnr"] <= rows["recipe"]["denoise_psnr"]


def test_the_unet_probe_results_are_a_run_of_its_spec():
    """docs/unet-probe-results.json is a finished run of sweeps/unet-probe.toml as it stands, on
    the full test set, and says what the spec's comment says: two levers beat the recipe, MSE does not."""
    rows = probe_rows("unet-probe")
    assert all(row["test_size"] is None for row in rows.values())
    psnr = {name: row["denoise_psnr"] for name, row in rows.items()}
    assert psnr["outer-convs-3"] > psnr["recipe"] and psnr["lr-2e-3"] > psnr["recipe"] > psnr["mse-loss"]


def test_dry_run_lists_every_trial_and_its_command(capsys):
    assert cli.main(["sweep", str(ROOT / "sweeps/shipped.toml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for _, entry in manifest_entries():
        assert entry["command"] in out


def test_an_address_where_no_cluster_answers_is_one_line(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(f'results = "{tmp_path}/r"\n' + GOOD)
    assert cli.main(["sweep", str(path), "--address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "error: no Ray cluster answers at 127.0.0.1:1" in err and "Traceback" not in err
