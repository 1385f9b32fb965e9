"""Browser tests of the Checkerboard page: on a phone (390x844) it stays compact and
nothing overflows sideways; at desktop width the four decoders' strips render (and the
README's screenshot is taken)."""
import pytest

from tests.browser.browser_helpers import no_exception, screenshot, wait_for_app

PHONE = {"width": 390, "height": 844}
MAX_PHONE_HEIGHT = 4000
MAIN_IMAGES = '[data-testid="stMain"] [data-testid="stImage"] img'

SIZES_JS = """
() => {
  const describe = e => {
    const r = e.getBoundingClientRect();
    return `${e.tagName}.${e.getAttribute('data-testid') || e.className} ${Math.round(r.left)}-${Math.round(r.right)}`;
  };
  return {
    scrollWidth: document.documentElement.scrollWidth,
    // Streamlit scrolls inside its own container: the page's height is the tallest scrollHeight
    height: Math.max(...[document.documentElement, ...document.querySelectorAll('[data-testid="stApp"] *')]
      .map(e => e.scrollHeight)),
    scrollers: [...document.querySelectorAll('[data-testid="stMain"], [data-testid="stMain"] *')]
      .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'hidden')
      .slice(0, 5).map(describe),
    wide: [...document.querySelectorAll('[data-testid="stMain"] *')]
      .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map(describe),
  };
}
"""


def open_checkerboard(page, url):
    page.goto(url + "/Checkerboard")
    wait_for_app(page, timeout=150_000)
    page.get_by_text("Checkerboard artifacts", exact=True).first.wait_for()
    page.locator('[data-testid="stMain"] table').first.wait_for()   # the last element
    no_exception(page)


@pytest.fixture
def phone_page(browser):
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def test_checkerboard_page_fits_a_phone(streamlit_server, phone_page):
    open_checkerboard(phone_page, streamlit_server)
    sizes = phone_page.evaluate(SIZES_JS)
    print(f"phone: {sizes}")
    assert sizes["scrollWidth"] <= PHONE["width"], f"overflows sideways: {sizes}"
    assert not sizes["wide"], f"elements wider than the screen: {sizes['wide']}"
    assert not sizes["scrollers"], f"something scrolls sideways: {sizes['scrollers']}"
    assert sizes["height"] < MAX_PHONE_HEIGHT, f"page is {sizes['height']} px tall on a phone"
    # each decoder is one strip of digits, not a stack of single images
    strips = phone_page.locator(MAIN_IMAGES)
    assert 8 <= strips.count() <= 12
    box = strips.first.bounding_box()
    assert box["width"] > 3 * box["height"]


def test_checkerboard_page_desktop_screenshot(streamlit_server, page):
    open_checkerboard(page, streamlit_server)
    images = page.locator(MAIN_IMAGES)
    assert images.count() >= 8
    page.set_viewport_size({"width": 1280, "height": 1350})   # the lesson and the fresh decoders
    wait_for_app(page)
    screenshot(page, "checkerboard")
