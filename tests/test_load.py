"""bench/load.py --quick: two browser sessions draw and move the Denoise slider while a
third trains, against a real server. Asserts zero errors and well-formed output (the
figures themselves depend on the machine and are not checked)."""
import pytest

from tests.conftest import run_quick_bench

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return run_quick_bench("bench.load", tmp_path_factory.mktemp("load") / "load.json", timeout=200)


def test_quick_load_run_has_no_errors(quick):
    r, result = quick
    assert result is not None, r.stderr[-3000:]
    assert r.returncode == 0 and result["errors"] == 0, r.stdout + r.stderr[-3000:]
    [round_] = result["rounds"]
    assert round_["errors"] == []
    assert round_["training"].get("started") is True   # the drawing happened while it trained
    assert round_["training"].get("running_at_end") is True


def test_quick_load_output_is_well_formed(quick):
    r, result = quick
    assert result is not None, r.stderr[-3000:]
    [round_] = result["rounds"]
    assert round_["sessions"] == 2 and result["args"]["strokes"] == 3 and result["args"]["moves"] == 2
    assert len(round_["draw_ms"]) == 2 * 3 and len(round_["denoise_ms"]) == 2 * 2
    assert all(ms > 0 for ms in round_["draw_ms"] + round_["denoise_ms"])
    draw = round_["draw"]
    assert draw["count"] == 6 and draw["p50_ms"] <= draw["p95_ms"] <= draw["max_ms"]
    assert draw["p50_ms"] in round_["draw_ms"]   # nearest-rank: an observed value
    rss = round_["rss_mb"]
    assert 50 < rss["start"] <= rss["peak"] and rss["end"] <= rss["peak"]
    table = r.stdout.splitlines()
    assert table[0].startswith("| sessions (+1 training) | Draw p50 ms | Draw p95 ms")
    assert table[2].startswith("| 2 | ")
    assert any(line.startswith("Sessions served with Draw p95 under 1 s") for line in table)


def test_percentiles_are_nearest_rank():
    from bench.load import percentile
    values = [float(v) for v in range(1, 21)]   # 1..20
    assert percentile(values, 50) == 10 and percentile(values, 95) == 19 and percentile(values, 100) == 20
    assert percentile([5.0], 95) == 5 and percentile([], 50) is None
