"""Browser test of the Denoise page: the arrow keys on the focused noise slider change the figures."""
from tests.browser.browser_helpers import screenshot, wait_for_app

ROWS = "[data-testid=stMain] [data-testid=stHtml] .digit-rows"   # one st.html: ui.digit_rows_html
SCORES = f'{ROWS} small:has-text("PSNR")'
DIGITS = f"{ROWS} img"
CHART = "[data-testid=stMain] [data-testid=stHtml] .svg-chart img"


def state(page):
    """The score captions and the noisy column's first image."""
    noisy = page.locator(DIGITS).nth(3).get_attribute("src")
    return page.locator(SCORES).all_inner_texts(), noisy


def test_noise_slider_changes_the_figures(streamlit_server, page):
    page.goto(f"{streamlit_server}/Denoise")
    wait_for_app(page)
    page.locator(SCORES).first.wait_for()
    page.locator(CHART).wait_for()
    slider = page.locator('[data-testid=stSlider]').filter(has_text="Noise level").get_by_role("slider")
    before_level = float(slider.input_value())  # an <input type=range>
    before = state(page)
    assert len(before[0]) == 4  # noisy, denoiser, plain autoencoder, filter

    slider.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("([sel, src]) => document.querySelectorAll(sel)[3].src !== src",
                           arg=[DIGITS, before[1]], timeout=30_000)
    wait_for_app(page)
    after = state(page)
    level = float(slider.input_value())
    assert level == round(before_level + 4 * 0.05, 2)
    assert after[0][0] != before[0][0] and after[1] != before[1]
    assert page.locator(CHART).get_attribute("alt").endswith(f"level {level:g} marked")   # the chart follows
    assert page.locator('[data-testid=stException]').count() == 0
    page.set_viewport_size({"width": 1280, "height": 1500})  # controls, digits and chart in one shot
    wait_for_app(page)
    screenshot(page, "denoise")
