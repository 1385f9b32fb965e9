"""`aecore sweep --serial` end to end on real MNIST (no Ray: tests/test_sweep_cluster.py runs
it on Ray): the results table as each trial lands, a refused trial reported and not
retried, the manifest entry a trial records, and a rerun that resumes. Plus the results
reader the app uses."""
import json

import pytest
import torch

from aecore import cli
from aecore.checkpoint import load_checkpoint
from aecore.sweep_results import (MAX_BYTES, ResultsError, quality_by_code_size, read_results,
                                  write_results)
from aecore.sweep_spec import load_spec

SPEC = """
name = "tiny"
results = "{results}"
retries = 1
rate_bits = 6
[train]
epochs = 1
train_size = 256
test_size = 100
[grid]
model = ["simple", "conv"]
code_size = [8, 49]
[[trial]]
name = "denoiser"
model = "simple"
code_size = 16
noise = "gaussian"
noise_level = 0.5
out = "{results}/shipped/denoiser.pt"
manifest = "{results}/shipped/manifest.json"
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC.format(results=tmp_path / "results"))
    return path


def rows_of(results_dir):
    return {r["trial"]: r for r in read_results(results_dir / "results.json")["rows"]}


def test_serial_sweep_tabulates_reports_failures_and_resumes(spec, tmp_path, capsys):
    results = tmp_path / "results"
    assert cli.main(["sweep", str(spec), "--serial"]) == 1     # one trial is refused
    out, err = capsys.readouterr()
    rows = rows_of(results)
    assert set(rows) == {"simple-8-e1", "simple-49-e1", "conv-8-e1", "conv-49-e1", "denoiser"}
    refused = rows.pop("conv-8-e1")
    assert refused["status"] == "failed" and refused["attempts"] == 1     # a refusal is not retried
    assert "multiple of 49" in refused["error"] and "conv-8-e1: FAILED after 1 attempt(s)" in err
    assert "failed: conv-8-e1" in err and "Traceback" not in err
    csv_rows = {r["trial"]: r for r in read_results(results / "results.csv")["rows"]}
    assert csv_rows == {**rows, "conv-8-e1": refused}           # the CSV is the same table
    trials = {t.name: t for t in load_spec(spec).trials}
    for name, row in rows.items():
        assert row["status"] == "done" and row["attempts"] == 1 and name in out
        model = load_checkpoint(trials[name].out)                # the checkpoint the row describes
        assert model.training_info["command"] == trials[name].command() == row["command"]
        assert row["mse"] == pytest.approx(model.metrics["mse"] if name != "denoiser" else row["mse"])
        assert 5 < row["psnr"] < 40 and row["seconds"] > 0 and row["node"]
        # a rate-distortion point: the 100 test digits compressed at 6 bits per code number
        assert row["rate_bits"] == 6 and 0 < row["bytes_per_digit"] < 784 and 5 < row["rate_psnr"] < row["psnr"] + 1
    # the denoiser: clean and denoising scores, and its manifest entry names the sweep
    assert rows["denoiser"]["denoise_psnr"] == pytest.approx(load_checkpoint(trials["denoiser"].out).metrics["psnr"])
    assert rows["simple-8-e1"]["denoise_psnr"] is None
    # its progress line gives both: the clean figure alone would overstate what it does to noise
    assert f"denoiser: PSNR {rows['denoiser']['psnr']:.2f} dB (clean inputs, denoising " \
           f"{rows['denoiser']['denoise_psnr']:.2f} dB)" in err
    assert f"simple-8-e1: PSNR {rows['simple-8-e1']['psnr']:.2f} dB (clean inputs) in" in err
    entry = json.loads((results / "shipped/manifest.json").read_text())["models"][0]
    assert entry["command"] == trials["denoiser"].command() and entry["sweep"] == "tiny"
    assert entry["file"] == "denoiser.pt" and entry["metrics"]["noise"] == "gaussian"

    # a rerun trains only what is not done; a damaged checkpoint is retrained
    stamps = {n: (results / f"{n}.pt").stat().st_mtime_ns for n in ("simple-8-e1", "conv-49-e1")}
    (results / "simple-49-e1.pt").write_bytes(b"damaged")
    assert cli.main(["sweep", str(spec), "--serial"]) == 1
    err = capsys.readouterr().err
    assert "5 trials, 3 already done" in err
    assert "simple-49-e1: PSNR" in err and "conv-8-e1: FAILED" in err and "simple-8-e1: PSNR" not in err
    assert {n: (results / f"{n}.pt").stat().st_mtime_ns for n in stamps} == stamps
    again = rows_of(results)
    assert again["simple-49-e1"]["sha256"] != "damaged" and load_checkpoint(trials["simple-49-e1"].out)
    assert {k: again[k] for k in ("simple-8-e1", "denoiser")} == {k: rows[k] for k in ("simple-8-e1", "denoiser")}
    # and a dry run says what a rerun would do
    assert cli.main(["sweep", str(spec), "--dry-run"]) == 0
    assert "5 trials, 1 to run" in capsys.readouterr().out


def test_an_unreadable_results_table_stops_the_sweep_and_is_kept(spec, tmp_path, capsys):
    table = tmp_path / "results" / "results.json"
    table.parent.mkdir()
    table.write_text("{not json")
    assert cli.main(["sweep", str(spec), "--serial"]) == 2
    err = capsys.readouterr().err
    assert "results.json: not valid JSON" in err and "move it away" in err
    assert table.read_text() == "{not json"


def good_rows():
    return [{"trial": f"simple-{c}-s{s}", "status": "done", "model": "simple", "code_size": c,
             "options": json.dumps({"code_size": c}), "seed": s, "mse": 0.1 / c, "psnr": 10 + c + s}
            for c in (8, 16) for s in (0, 1)] + [
        {"trial": "conv-8", "status": "failed", "model": "conv", "code_size": 8, "error": "ValueError: no"},
        {"trial": "dn-16", "status": "done", "model": "simple", "code_size": 16, "noise": "gaussian",
         "options": "{}", "mse": 0.05, "psnr": 13, "denoise_psnr": 12}]


def test_results_tables_round_trip_and_group_by_architecture(tmp_path):
    write_results(tmp_path, "demo", good_rows())
    for name in ("results.json", "results.csv"):
        table = read_results(tmp_path / name)
        assert [r["trial"] for r in table["rows"]] == [r["trial"] for r in good_rows()]
    series = quality_by_code_size(read_results(tmp_path / "results.csv")["rows"], "psnr")
    assert series == {"simple": [{"code_size": 8, "psnr": 18.5, "trials": "simple-8-s0, simple-8-s1", "n": 2},
                                 {"code_size": 16, "psnr": 26.5, "trials": "simple-16-s0, simple-16-s1", "n": 2}],
                      "simple · denoising gaussian": [{"code_size": 16, "psnr": 13, "trials": "dn-16", "n": 1}]}


@pytest.mark.parametrize("data, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file"),
    (b'{"rows": []}', "not a sweep results table"),
    (b'{"format": "aecore-sweep-results", "rows": 3}', "'rows' are missing or not a list"),
    (b"a,b\n1,2\n", "no column trial, status, model, code_size, mse, psnr"),
    (b"trial,status,model,code_size,mse,psnr\nx,done,simple,eight,0.1,10\n", "row 1: code_size is not a number"),
    (b"trial,status,model,code_size,mse,psnr\nx,maybe,simple,8,0.1,10\n", "row 1: status must be one of"),
    (b"trial,status,model,code_size,mse,psnr\nx,done,simple,8,,10\n", "row 1 has no mse"),
    (b" " * (MAX_BYTES + 1), "over the 4 MB limit"),
], ids=lambda v: repr(v[:30]))
def test_a_bad_results_table_is_one_clear_message(data, message):
    with pytest.raises(ResultsError) as e:
        read_results(data, "upload.csv")
    assert str(e.value).startswith("upload.csv: ") and message in str(e.value)


def test_a_broken_manifest_stops_the_sweep_before_training(spec, tmp_path, capsys):
    manifest = tmp_path / "results" / "shipped" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"models": [')
    assert cli.main(["sweep", str(spec), "--serial"]) == 2
    assert "manifest.json: not a usable manifest" in capsys.readouterr().err
    assert not list((tmp_path / "results").glob("*.pt"))


def test_a_trial_trains_exactly_what_its_command_trains(tmp_path, capsys):
    """The same weights, bit for bit, from `aecore sweep` and from the trial's `aecore train`
    command (both on one thread): a sweep retrains what the manifest's command would."""
    spec = tmp_path / "one.toml"
    spec.write_text(f'results = "{tmp_path}/sweep"\n[[trial]]\nname = "one"\nmodel = "conv_upsample"\n'
                    'code_size = 8\noptions = { width = 4 }\nepochs = 1\ntrain_size = 256\ntest_size = 50\n'
                    'noise = "gaussian"\nnoise_level = 0.3\nseed = 3\n')
    assert cli.main(["sweep", str(spec), "--serial"]) == 0
    trial = load_spec(spec).trials[0]
    argv = trial.argv()
    argv[argv.index("--out") + 1] = str(tmp_path / "cli.pt")
    threads = torch.get_num_threads()
    try:
        assert cli.main(["--threads", "1", *argv]) == 0
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    swept, trained = load_checkpoint(trial.out), load_checkpoint(tmp_path / "cli.pt")
    assert swept.config == trained.config
    for (name, a), (_, b) in zip(swept.state_dict().items(), trained.state_dict().items()):
        assert torch.equal(a, b), name
    assert swept.metrics == trained.metrics
