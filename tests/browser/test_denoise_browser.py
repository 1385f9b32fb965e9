"""Browser test of the Denoise page: the arrow keys on the focused noise slider change the figures."""
from tests.browser.browser_helpers import screenshot, wait_for_app

SCORES = '[data-testid=stMain] [data-testid=stCaptionContainer]:has-text("PSNR")'


def state(page):
    """The score captions and the noisy column's first image."""
    noisy = page.locator('[data-testid=stMain] [data-testid=stImage] img').nth(3).get_attribute("src")
    return page.locator(SCORES).all_inner_texts(), noisy


def test_noise_slider_changes_the_figures(streamlit_server, page):
    page.goto(f"{streamlit_server}/Denoise")
    wait_for_app(page)
    page.locator(SCORES).first.wait_for()
    page.locator('[data-testid=stPlotlyChart]').wait_for()  # its JS bundle loads lazily
    slider = page.locator('[data-testid=stSlider]').filter(has_text="Noise level").get_by_role("slider")
    before_level = float(slider.input_value())  # an <input type=range>
    before = state(page)
    assert len(before[0]) == 4  # noisy, denoiser, plain autoencoder, filter

    slider.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "src => document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img')[3].src !== src",
        arg=before[1], timeout=30_000)
    wait_for_app(page)
    after = state(page)
    level = float(slider.input_value())
    assert level == round(before_level + 4 * 0.05, 2)
    assert after[0][0] != before[0][0] and after[1] != before[1]
    page.get_by_text(f"level {level:g}").first.wait_for()  # marked on the chart (Plotly redraws async)
    assert page.locator('[data-testid=stException]').count() == 0
    page.set_viewport_size({"width": 1280, "height": 1500})  # controls, digits and chart in one shot
    wait_for_app(page)
    screenshot(page, "denoise")
