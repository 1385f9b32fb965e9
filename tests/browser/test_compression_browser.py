"""The Compression page in a real browser: the deep link works and Plotly draws the chart."""
from tests.browser.browser_helpers import screenshot, wait_for_app

from aecore import compress


def test_compression_page_draws_the_rate_distortion_chart(streamlit_server, page):
    page.goto(f"{streamlit_server}/Compression")
    wait_for_app(page)
    assert page.locator('[data-testid="stMain"] h1').first.inner_text().strip() == "Compression"

    chart = page.locator('[data-testid="stPlotlyChart"]')
    chart.wait_for(state="visible")
    traces = chart.locator(".scatterlayer .trace")
    traces.first.wait_for(state="attached")
    methods = {r["method"] for r in compress.read_rate_distortion()["rows"] if r["family"] != "lossless"}
    assert traces.count() == len(methods)
    assert chart.locator(".xtitle").text_content().startswith("bytes per image")

    # the live demo below ran too
    assert page.get_by_text("Bytes per image").first.is_visible()
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, "\n---\n".join(exceptions.all_inner_texts())

    chart.scroll_into_view_if_needed()
    screenshot(page, "compression")
