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


def test_a_kind_seen_first_shows_its_digits_before_its_chart(streamlit_server, page):
    """Switching to a noise kind whose PSNR curves the server has not computed (seconds of
    work) shows that kind's digits at once and adds the chart when it is ready, instead of
    holding the digits back until then. The plain autoencoder picked here is one no other
    test charts with erasing, so the curves are new to this server."""
    page.goto(f"{streamlit_server}/Denoise")
    wait_for_app(page)
    page.locator(CHART).wait_for()
    page.locator('[data-testid=stSelectbox]').filter(has_text="Plain autoencoder").click()
    page.get_by_role("option", name="simple-32").click()
    wait_for_app(page)
    page.evaluate("""() => {   // when each first appears, for the erasing rows and a chart of erasing levels
        window.seen = {};
        new MutationObserver(() => {
            const now = performance.now();
            const rows = [...document.querySelectorAll('.digit-rows small')]
                .some(e => e.textContent.includes('inpainting'));
            const chart = document.querySelector('.svg-chart img');
            if (rows && !window.seen.rows) window.seen.rows = now;
            if (rows && chart && !window.seen.chart) window.seen.chart = now;
        }).observe(document.body, {childList: true, subtree: true, characterData: true});
    }""")
    page.locator("[data-testid=stSelectbox]").filter(has_text="Noise").first.click()   # not "Denoiser"
    page.get_by_role("option", name="random erasing").click()
    page.wait_for_function("() => window.seen.chart", timeout=60_000)
    seen = page.evaluate("() => window.seen")
    assert seen["chart"] - seen["rows"] > 300, seen   # the digits came first, not with the chart
    wait_for_app(page)
    assert page.locator('[data-testid=stException]').count() == 0
    assert page.locator(DIGITS).count() == 5 * 3 and page.locator(CHART).count() == 1
