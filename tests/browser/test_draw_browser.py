"""Browser test of the Draw page: mouse strokes on the real canvas give reconstructions."""
from tests.browser.browser_helpers import screenshot, wait_for_app

CANVAS = "[data-testid=stBidiComponentIsolated] canvas.upper-canvas"
SEVEN = [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]  # a "7" as fractions of the canvas
GRID = "[data-testid=stMain] [data-testid=stHtml] .digit-grid"   # ui.digit_grid_html: the input, the models
DIGITS = f"{GRID} img"


def stroke(page, box, points, steps=12):
    def at(fx, fy):
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]
    page.mouse.move(*at(*points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*at(*point), steps=steps)
    page.mouse.up()


def test_drawing_a_digit_shows_reconstructions(streamlit_server, page):
    page.goto(f"{streamlit_server}/Draw")
    wait_for_app(page)
    assert page.get_by_text("Draw a digit on the black canvas").is_visible()  # the empty-canvas hint
    canvas = page.locator(CANVAS)
    canvas.wait_for()
    stroke(page, canvas.bounding_box(), SEVEN)
    page.get_by_text("Reconstructions").wait_for(timeout=30_000)
    wait_for_app(page)

    images = page.locator(DIGITS)
    assert images.count() >= 2  # the 28x28 input and at least one reconstruction
    captions = page.locator(f"{GRID} figcaption").all_inner_texts()
    assert any("PSNR" in c and "MSE" in c for c in captions), captions
    page.locator("[data-testid=stMain] [data-testid=stHtml] .svg-chart img").wait_for()  # the code chart
    assert page.locator('[data-testid=stException]').count() == 0
    timing = page.get_by_text("models took").inner_text()
    print(f"\n[draw] first stroke: {timing}")

    # A second stroke (a cross bar) reruns the page with the new drawing.
    before = images.nth(0).get_attribute("src")
    stroke(page, canvas.bounding_box(), [(0.35, 0.5), (0.65, 0.5)])
    page.wait_for_function("([sel, src]) => document.querySelector(sel).src !== src",
                           arg=[DIGITS, before], timeout=30_000)
    wait_for_app(page)
    assert page.locator('[data-testid=stException]').count() == 0
    print(f"[draw] second stroke: {page.get_by_text('models took').inner_text()}")
    page.mouse.move(5, 5)  # off the canvas: hides its hover toolbar
    screenshot(page, "draw")
