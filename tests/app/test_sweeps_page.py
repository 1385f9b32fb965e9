"""The Sweeps page, headless: the shipped results table (docs/sweep-results.json, written
by a real `aecore sweep`) plotted per architecture, an uploaded table, and bad uploads
refused with one message."""
import json

import pytest

from aecore import sweep_results

PAGE = "pages/7_Sweeps.py"


def traces(at) -> dict:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return {t["name"]: (t["x"], t["y"]) for t in spec["data"]}, spec["layout"]["yaxis"]["title"]["text"]


def expected(rows, y):
    return {label: ([p["code_size"] for p in pts], [p[y] for p in pts])
            for label, pts in sweep_results.quality_by_code_size(rows, y).items()}


def test_the_shipped_sweep_is_plotted_per_architecture(run_page):
    at = run_page(PAGE)
    assert not at.exception
    rows = sweep_results.read_results(sweep_results.shipped_results_path())["rows"]
    got, title = traces(at)
    assert got == expected(rows, "psnr") and title == sweep_results.QUALITY["psnr"]
    assert {r["model"] for r in rows} <= {label.split(" · ")[0] for label in got}
    at.radio[1].set_value("mse").run()
    got, title = traces(at)
    assert not at.exception and got == expected(rows, "mse") and title.startswith("MSE")
    table = at.dataframe[0].value
    assert list(table["trial"]) == [r["trial"] for r in rows]


def upload(run_page, name, data):
    at = run_page(PAGE)
    at.radio[0].set_value("Upload a table").run()
    at.file_uploader[0].set_value((name, data, "text/csv")).run()
    return at


def test_an_uploaded_table_is_plotted_and_its_failures_listed(run_page, tmp_path):
    rows = [{"trial": f"deep-{c}", "status": "done", "model": "deep", "code_size": c, "mse": 0.1 / c,
             "psnr": 10 + c / 4, "ssim": 0.5, "options": "{}"} for c in (4, 16, 64)]
    rows.append({"trial": "conv-8", "status": "failed", "model": "conv", "code_size": 8,
                 "error": "ValueError: conv code_size must be a multiple of 49"})
    sweep_results.write_results(tmp_path, "mine", rows)
    at = upload(run_page, "results.csv", (tmp_path / "results.csv").read_bytes())
    assert not at.exception
    got, _ = traces(at)
    assert got == {"deep": ([4, 16, 64], [11.0, 14.0, 26.0])}
    assert "conv-8" in at.warning[0].value and "multiple of 49" in at.warning[0].value


@pytest.mark.parametrize("name, data, message", [
    ("results.csv", b"a,b\n1,2\n", "results.csv: not a sweep results table: no column trial"),
    ("results.json", b'{"format": "aecore-sweep-results", "rows": [{"trial": "x"}]}', "row 1 has no status"),
    ("results.csv", b"\x00\xff" * 100, "not a text file"),
    ("big.csv", b"x" * (sweep_results.MAX_BYTES + 1), "over the 4 MB limit"),
], ids=lambda v: v[:20] if isinstance(v, str) else repr(v[:12]))
def test_a_bad_upload_is_one_message(run_page, name, data, message):
    at = upload(run_page, name, data)
    assert not at.exception
    assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
    assert not at.get("plotly_chart")
