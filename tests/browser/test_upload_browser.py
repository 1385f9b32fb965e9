"""Uploads through the real browser (Draw page): Streamlit's own checks in the frontend
(size, type) and ours on the server, the page staying usable after each bad file."""
import io

from PIL import Image, ImageDraw

from tests.browser.browser_helpers import wait_for_app

UPLOAD_INPUT = "[data-testid=stFileUploaderDropzoneInput]"
ALERT = "[data-testid=stAlertContainer]"


def seven_png(background=(0, 0, 0, 0), ink=(20, 20, 20, 255)) -> bytes:
    img = Image.new("RGBA", (280, 280), background)
    ImageDraw.Draw(img).line([(80, 60), (200, 60), (120, 230)], fill=ink, width=20, joint="curve")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def upload(page, name: str, data: bytes, mime: str = "image/png") -> None:
    page.locator(UPLOAD_INPUT).set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])
    wait_for_app(page)


def alerts(page) -> list[str]:
    return page.locator(f"[data-testid=stMain] {ALERT}").all_inner_texts()


def test_bad_files_get_messages_and_a_good_one_still_works(streamlit_server, page):
    page.goto(f"{streamlit_server}/Draw")
    wait_for_app(page)
    page.get_by_text("Upload a picture").click()
    wait_for_app(page)

    # A type the uploader does not take.
    upload(page, "anim.gif", b"GIF89a" + bytes(100), "image/gif")
    page.get_by_text("not allowed").first.wait_for()

    # Not an image, with Markdown in its name: our error, the name shown as typed.
    name = "my_[notes](http://example.com)_*7*.png"
    upload(page, name, b"these are notes, not a picture")
    error = page.locator(ALERT, has_text="Cannot use").first
    error.wait_for()
    assert name in error.inner_text() and "not a PNG, JPEG" in error.inner_text()
    assert error.locator("a, em, img").count() == 0   # no link, italics or image from the name

    # Over 5 MB right after (issue 15.11: the uploader refused it in the browser, the script
    # never ran, and the error about the notes stayed on screen): only the new message shows.
    upload(page, "huge.png", b"\x89PNG" + bytes(6 * 2**20))
    page.locator(ALERT, has_text="huge.png").wait_for()
    messages = alerts(page)
    assert not [a for a in messages if "notes" in a], messages
    assert any("the limit is 5 MB" in a for a in messages), messages
    assert page.locator("[data-testid=stException]").count() == 0

    # A good transparent PNG right after: reconstructions.
    upload(page, "cutout.png", seven_png())
    page.get_by_text("what the models see").wait_for()
    page.get_by_text("Reconstructions").wait_for()
    captions = page.locator("[data-testid=stHtml] .digit-grid figcaption").all_inner_texts()   # ui.digit_grid_html
    assert sum("PSNR" in c for c in captions) >= 1, captions
    assert not [a for a in alerts(page) if "Cannot use" in a]
    assert page.locator("[data-testid=stException]").count() == 0
