"""Browser tests of the Latent space and Checkerboard pages: deep links, the WebGL
scatter of the test codes, picking a digit by clicking its point, the checkerboard table."""
import re

from tests.browser.browser_helpers import no_exception, screenshot, wait_for_app

CHART = '[data-testid="stPlotlyChart"]'

# The isolated point at the far right of the map: its page coordinates and test index.
RIGHTMOST_POINT_JS = """
() => {
  const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  const fl = gd._fullLayout, box = gd.getBoundingClientRect();
  let best = null;
  for (const tr of gd._fullData) {
    for (let i = 0; i < tr.x.length; i++) {
      if (!best || tr.x[i] > best.x) best = {x: tr.x[i], y: tr.y[i], index: tr.customdata[i]};
    }
  }
  return {px: box.left + fl._size.l + fl.xaxis.l2p(best.x),
          py: box.top + fl._size.t + fl.yaxis.l2p(best.y), index: best.index};
}
"""


def test_latent_map_shows_the_codes_and_picks_a_clicked_digit(streamlit_server, page):
    page.goto(streamlit_server + "/Latent_space")
    wait_for_app(page, timeout=90_000)
    page.get_by_text("Latent space", exact=True).first.wait_for()
    chart = page.locator(CHART).first
    chart.wait_for(state="visible")
    chart.locator(".js-plotly-plot").wait_for()
    no_exception(page)
    assert chart.locator("canvas").count() >= 1          # Scattergl draws on WebGL canvases
    legend = chart.locator(".legend .traces")
    assert legend.count() == 10, f"expected one legend entry per digit, got {legend.count()}"
    screenshot(page, "latent")

    target = page.evaluate(RIGHTMOST_POINT_JS)
    page.mouse.move(target["px"], target["py"])
    page.mouse.click(target["px"], target["py"])
    wait_for_app(page)
    no_exception(page)
    index_input = page.locator('input[aria-label="Test digit #"]')
    assert index_input.input_value() == str(target["index"])
    caption = page.get_by_text(re.compile(rf"^test #{target['index']}: a \d$"))
    assert caption.count() == 1


def test_checkerboard_page_compares_both_decoders(streamlit_server, page):
    page.goto(streamlit_server + "/Checkerboard")
    wait_for_app(page, timeout=120_000)
    page.get_by_text("Checkerboard artifacts", exact=True).first.wait_for()
    no_exception(page)
    table = page.locator('[data-testid="stMain"] table').first
    table.wait_for()
    text = table.inner_text()
    assert "conv-196" in text and "conv_upsample-32" in text
    assert page.locator('[data-testid="stMain"] [data-testid="stImage"]').count() >= 4
    # docs/screenshots/checkerboard.png is taken by test_checkerboard_browser.py, at its size
