"""The benchmarks: `python -m bench --quick` runs end to end and writes well-formed tables
(no timing is asserted), never touches docs/BENCHMARKS.md, and the helpers they share
agree with reference implementations."""
import hashlib
import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import torch

from bench.common import Table, line_chart
from tests.conftest import ROOT

DOCS = ROOT / "docs" / "BENCHMARKS.md"
SECTIONS = ["quality", "denoise", "train_speed", "latency", "scaling", "rate_distortion", "precision", "cli",
            "floor", "capacity", "ceiling", "levers", "coded"]
# floor and capacity start servers (and Chromium) of their own; their quick modes have tests of their own
# (tests/browser/test_floor_bench.py, tests/test_capacity.py), so the shared quick run leaves them out
OWN_TESTS = ["floor", "capacity"]
QUICK = [s for s in SECTIONS if s not in OWN_TESTS]
ENV_KEYS = {"date", "torch", "threads", "cores"}


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One `python -m bench --quick` run into a temporary folder: (process, markdown, json)."""
    out = tmp_path_factory.mktemp("bench") / "BENCHMARKS.md"
    before = _digest(DOCS)
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", ",".join(QUICK), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _digest(DOCS) == before, "quick mode changed docs/BENCHMARKS.md"
    return proc, out.read_text(), json.loads(out.with_suffix(".json").read_text()), out.parent


def test_every_section_is_registered():
    from bench.run import SECTIONS as registered
    assert list(registered) == SECTIONS


def test_every_section_has_tables_with_an_environment(quick):
    _, _, data, _ = quick
    assert list(data) == QUICK
    for section, tables in data.items():
        assert tables, section
        for t in tables:
            assert ENV_KEYS <= set(t["env"]), t["title"]
            assert t["env"]["cores"] >= 1 and t["env"]["threads"] >= 1


def test_tables_are_rectangular_with_finite_numbers(quick):
    _, _, data, _ = quick
    for tables in data.values():
        for t in tables:
            assert t["rows"], t["title"]
            for row in t["rows"]:
                assert len(row) == len(t["columns"]), (t["title"], row)
                numbers = [c for c in row if isinstance(c, (int, float))]
                assert all(math.isfinite(c) for c in numbers), (t["title"], row)
                assert numbers or "n/a" in row, (t["title"], row)   # measured, or says why not


def test_markdown_tables_are_well_formed_and_printed(quick):
    proc, text, data, folder = quick
    titles = [t["title"] for tables in data.values() for t in tables]
    for title in titles:
        assert f"### {title}" in text and f"### {title}" in proc.stdout
    for block in re.findall(r"(?m)(?:^\|.*\|\n)+", text):
        lines = block.strip().splitlines()
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) == 1, block                       # same number of cells in every line
        assert re.fullmatch(r"\|(:?-{3}:?\|)+", lines[1]), lines[1]
    assert text.count("torch 2.") >= len(titles)           # an environment line under each table
    for figure in re.findall(r"!\[[^]]*\]\(([^)]+\.svg)\)", text):
        ET.parse(folder / figure)                            # linked figures exist and are valid SVG


def test_quality_has_every_autoencoder_pca_and_the_published_figure(quick):
    _, _, data, _ = quick
    table = data["quality"][0]
    rows = {r[0]: dict(zip(table["columns"], r)) for r in table["rows"]}
    from aecore.shipped import shipped_models
    ready = [s for s in shipped_models() if s.model is not None]
    assert ready and all((s.name in rows) == s.is_autoencoder for s in ready)   # a U-Net's would be a copy
    assert any(not s.is_autoencoder and f"Left out: {s.name}" in " ".join(table["notes"]) for s in ready)
    published = rows["Hinton & Salakhutdinov 2006"]
    assert published["code size"] == 30 and published["squared error per image"] == pytest.approx(3.0)
    assert published["MSE per pixel"] == pytest.approx(0.0038, abs=5e-5)
    for s in [s for s in ready if s.is_autoencoder]:
        pca = rows[f"PCA {s.model.code_size}"]
        assert pca["MSE / PCA MSE"] == pytest.approx(1.0)
        assert 0 < pca["MSE per pixel"] < 0.1


def test_quick_mode_refuses_to_overwrite_the_docs(capsys):
    from bench.run import parse_args
    with pytest.raises(SystemExit) as exit:
        parse_args(["--quick", "--out", str(DOCS)])
    assert exit.value.code == 2 and "must not overwrite" in capsys.readouterr().err
    assert parse_args(["--quick"]).out != DOCS and parse_args([]).out == DOCS


def test_the_docs_are_a_document_update_can_read():
    """docs/BENCHMARKS.md splits into its head, summary lines (each linked to its section) and
    sections, and an update that replaces nothing gives it back byte for byte."""
    from bench.run import SECTIONS as registered, split_document, updated
    text = DOCS.read_text()
    _, lines, sections = split_document(text)
    assert lines and set(key for key, _ in lines) <= set(sections) <= set(registered)
    assert updated(text, {}, "unused", {}) == text


def test_update_replaces_only_the_sections_it_runs(tmp_path):
    """`--update` on a copy of the docs: the section run is replaced under a line naming the
    command, and its summary line with it; every other section, summary line and JSON entry is
    kept as it was, in section order. A document it cannot read is left untouched."""
    import datetime
    from bench.run import SECTIONS as registered, split_document
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(DOCS.read_text())
    out.with_suffix(".json").write_text(DOCS.with_suffix(".json").read_text())
    head, lines, sections = split_document(out.read_text())
    before = json.loads(out.with_suffix(".json").read_text())
    section = "cli"
    command = ["--quick", "--only", section, "--update", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "bench", *command], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    new_head, new_lines, new_sections = split_document(out.read_text())
    after = json.loads(out.with_suffix(".json").read_text())
    assert new_head == head
    assert {k: v for k, v in new_sections.items() if k != section} == {k: v for k, v in sections.items()
                                                                       if k != section}
    assert new_sections[section].startswith(f"\nGenerated by `python -m bench {' '.join(command)}` on "
                                            f"{datetime.date.today()} in ")
    assert after[section] and all(f"### {t['title']}" in new_sections[section] for t in after[section])
    assert {k: v for k, v in after.items() if k != section} == {k: v for k, v in before.items() if k != section}
    assert list(after) == [k for k in registered if k in after]
    assert [line for line in new_lines if line[0] != section] == [line for line in lines if line[0] != section]
    assert [text for key, text in new_lines if key == section] == [t["headline"] for t in after[section]
                                                                     if t["headline"]]
    spoiled = out.read_text().replace("## 1. Reconstruction quality", "## 1. Something else")
    out.write_text(spoiled)
    proc = subprocess.run([sys.executable, "-m", "bench", *command], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1 and "was not updated" in proc.stderr and "## 1. Something else" in proc.stderr
    assert out.read_text() == spoiled


def test_table_formats_cells_and_refuses_ragged_rows():
    t = Table("t", ["name", "value", "count"], formats={"value": ".2f"})
    t.add("a|b", 1.234, 12345)
    t.add("c", float("nan"), None)
    with pytest.raises(ValueError, match="2 cells"):
        t.add("d", 1.0)
    md = t.markdown()
    assert "| a\\|b | 1.23 | 12,345 |" in md and "| c | — | — |" in md
    assert "|:---|---:|---:|" in md


def test_line_chart_draws_one_line_per_series_and_one_dot_per_point():
    svg = line_chart({"a": [(1, 1.0), (10, 0.1), (100, 0.01)], "b": [(2, 0.5)]}, title="t", x_label="x",
                     y_label="y", log_x=True, log_y=True, markers_only={"b"})
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 1
    assert len(root.findall(f"{ns}circle")) == 3 + 1 + 2     # points + legend dots
    with pytest.raises(ValueError, match="no plottable"):
        line_chart({"a": [(0, 1.0)]}, title="t", x_label="x", y_label="y", log_x=True)


def test_ceiling_scores_the_shipped_denoiser_and_a_unet_on_the_evaluate_noise(quick):
    """Section 11: the shipped Gaussian denoiser's row is what `evaluate` gives it on the same
    digits and seeded noise; the U-Net is scored after each quick epoch, better than its input."""
    import aecore
    from aecore.evaluation import evaluate
    from aecore.shipped import shipped_models
    from bench.ceiling import LEVEL, TARGET, UNetDenoiser, trained_epochs
    _, _, data, _ = quick
    [table] = data["ceiling"]
    rows = {(r[0], r[3]): dict(zip(table["columns"], r)) for r in table["rows"]}
    psnr = f"PSNR dB, Gaussian σ={LEVEL:g}"
    test = aecore.load_mnist("test")[0][:200]
    noisy = rows["noisy input", None][psnr]
    assert noisy == pytest.approx(evaluate(lambda x: x, test, noise="gaussian", level=LEVEL)["psnr"])
    shipped = [s for s in shipped_models() if s.is_autoencoder and s.entry["metrics"]["noise"] == "gaussian"]
    assert shipped
    for s in shipped:
        row = rows[f"{s.name} (shipped autoencoder)", trained_epochs(s.entry["command"])]
        assert row[psnr] == pytest.approx(evaluate(s.model, test, noise="gaussian", level=LEVEL)["psnr"], abs=1e-3)
        assert row["parameters"] == sum(p.numel() for p in s.model.parameters())
    unet = [r for (name, _), r in rows.items() if name.startswith("U-Net")]
    assert [r["epochs"] for r in unet] == [1, 2] and all(r["code"] == "none" for r in unet)
    assert all(r[psnr] > noisy for r in unet)
    assert rows["issue 10's target", None][psnr] == TARGET
    assert trained_epochs("python -m aecore train --model simple --epochs 7 --out x.pt") == 7
    assert UNetDenoiser(4)(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)


def test_levers_score_the_shipped_denoiser_and_its_variants_on_the_evaluate_noise(quick):
    """Section 12: every row is measured against the shipped Gaussian denoiser's own figure
    on the same digits and seeded noise; the trainings ran; the target row says the gap."""
    import aecore
    from aecore.evaluation import evaluate
    from aecore.shipped import shipped_models
    from bench.levers import LEVEL, TARGET
    _, _, data, _ = quick
    [table] = data["levers"]
    rows = [dict(zip(table["columns"], r)) for r in table["rows"]]
    psnr = f"PSNR dB, Gaussian σ={LEVEL:g}"
    [shipped] = [s for s in shipped_models() if s.is_autoencoder and s.entry["metrics"]["noise"] == "gaussian"]
    base = evaluate(shipped.model, aecore.load_mnist("test")[0][:200], noise="gaussian", level=LEVEL)["psnr"]
    assert rows[0]["method"] == f"{shipped.name}, as shipped"
    assert rows[0][psnr] == pytest.approx(base, abs=1e-3)
    for r in rows:
        assert r["change dB"] == pytest.approx(r[psnr] - rows[0][psnr])
    trained = [r for r in rows if r["training minutes (this run)"] is not None]
    assert len(trained) == 2 and all(r[psnr] > 15 for r in trained)   # tuned, not broken
    assert [r["passes per image"] for r in rows if "shifts" in r["method"]] == [4, 9]
    assert rows[-1]["method"] == "issue 10's target" and rows[-1][psnr] == TARGET


def test_coded_scores_a_unet_with_a_code_alone_and_blended_with_the_shipped_denoiser(quick):
    """Section 13: the shipped Gaussian denoiser's row is its `evaluate` figure; the U-Net with a
    code is scored after each quick epoch and beats the noisy input; there is a blend for each
    weight, none far below both networks (image by image, a weighted mean's squared error is at
    most the larger of the two); the target row closes the table."""
    import aecore
    from aecore.evaluation import evaluate
    from aecore.shipped import shipped_models
    from bench.coded import LEVEL, TARGET, WEIGHTS
    from bench.ceiling import UNetDenoiser
    _, _, data, _ = quick
    [table] = data["coded"]
    rows = [dict(zip(table["columns"], r)) for r in table["rows"]]
    psnr = f"PSNR dB, Gaussian σ={LEVEL:g}"
    test = aecore.load_mnist("test")[0][:200]
    [shipped] = [s for s in shipped_models() if s.is_autoencoder and s.entry["metrics"]["noise"] == "gaussian"]
    assert rows[0]["method"] == f"{shipped.name} (shipped autoencoder)"
    assert rows[0][psnr] == pytest.approx(evaluate(shipped.model, test, noise="gaussian", level=LEVEL)["psnr"], abs=1e-3)
    unet = [r for r in rows if r["method"].startswith("U-Net")]
    noisy = evaluate(lambda x: x, test, noise="gaussian", level=LEVEL)["psnr"]
    assert [r["epochs"] for r in unet] == [1, 2] and all(r[psnr] > noisy for r in unet)
    blends = [r for r in rows if " × the U-Net + " in r["method"]]
    assert [float(r["method"].split(" ×")[0]) for r in blends] == list(WEIGHTS)
    assert all(r[psnr] > min(unet[-1][psnr], rows[0][psnr]) - 0.5 for r in blends)
    assert rows[-1]["method"] == "issue 10's target" and rows[-1][psnr] == TARGET
    net = UNetDenoiser(4, code=8)
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28) and hasattr(net.decoder, "code")
    assert not hasattr(UNetDenoiser(4).decoder, "code")


def test_self_ensemble_puts_every_shifted_and_mirrored_output_back_in_place():
    """Each copy's output is shifted and mirrored back, so an identity 'denoiser' gives back
    its input, and a shift- and mirror-equivariant blur its own output, for any shifts."""
    from bench.levers import SHIFTS_9, SelfEnsemble

    class Identity:
        def reconstruct(self, x):
            return x.clone()

    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(SelfEnsemble(Identity(), SHIFTS_9, mirror=True).reconstruct(x), x, atol=1e-6, rtol=0)

    class Blur:   # shift- and mirror-equivariant, yet not the identity: a copy put back wrongly would show
        def reconstruct(self, x):
            return sum(torch.roll(x, (dy, dx), (2, 3)) * w for (dy, dx), w in (((0, 0), 0.5), ((0, 1), 0.25),
                                                                                ((0, -1), 0.25)))

    for shifts, mirror in (([(0, 0)], False), (SHIFTS_9, False), (SHIFTS_9, True), ([(2, -1)], True)):
        assert torch.allclose(SelfEnsemble(Blur(), shifts, mirror).reconstruct(x), Blur().reconstruct(x),
                              atol=1e-6, rtol=0)
    assert not torch.allclose(Blur().reconstruct(x), x, atol=1e-2)


def test_psnr_objective_is_minus_the_mean_psnr_and_trains_the_model_it_wraps():
    from aecore.metrics import psnr
    from aecore.models import create_model
    from bench.levers import PSNR_EPS, PSNRObjective
    torch.manual_seed(0)
    model = create_model("conv_upsample", code_size=8, width=8)
    learner = PSNRObjective(model)
    x, target = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    loss, recon = learner.loss(x, target)
    assert torch.equal(recon, model.decode(model.encode(x)))
    mse = (recon - target).pow(2).flatten(1).mean(1)
    assert loss.item() == pytest.approx(-psnr(recon, target).mean().item(), abs=0.05)
    assert loss.item() == pytest.approx((10 * torch.log10(mse + PSNR_EPS)).mean().item())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
