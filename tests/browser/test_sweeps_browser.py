"""The Sweeps page in a real browser: Plotly draws a line per architecture from the shipped
table, and the rate-distortion chart below it."""
from tests.browser.browser_helpers import screenshot, wait_for_app

from aecore import sweep_results


def test_sweeps_page_draws_the_shipped_sweep(streamlit_server, page):
    page.goto(f"{streamlit_server}/Sweeps")
    wait_for_app(page)
    assert page.locator('[data-testid="stMain"] h1').first.inner_text().strip() == "Sweeps"
    rows = sweep_results.read_results(sweep_results.shipped_results_path())["rows"]
    charts = page.locator('[data-testid="stPlotlyChart"]')
    charts.first.wait_for(state="visible")
    assert charts.count() == 2            # quality against code size, and rate-distortion
    traces = charts.first.locator(".scatterlayer .trace")
    traces.first.wait_for(state="attached")
    assert traces.count() == len(sweep_results.quality_by_code_size(rows, "psnr"))
    assert charts.first.locator(".xtitle").text_content().startswith("code size")
    legend = set(charts.first.locator(".legendtext").all_text_contents())
    assert {"simple", "deep", "conv_upsample"} <= legend, legend
    assert charts.nth(1).locator(".xtitle").text_content().startswith("bytes per digit")
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, "\n---\n".join(exceptions.all_inner_texts())
    screenshot(page, "sweeps")
