"""A deep link as the very first request of a freshly started server shows the right
page and the full navigation (the known trap of st.navigation + a pages/ folder), and
the first entry of the navigation reads "Home" (issue 15.15), not the entry script's
file name."""
import pytest
from tests.browser.browser_helpers import wait_for_app

PAGES = {  # URL path -> the page's <h1>
    "": "MNIST Autoencoder Lab",
    "Draw": "Draw a digit",
    "Denoise": "Denoise",
    "Train": "Train an autoencoder",
    "Latent_space": "Latent space",
    "Checkerboard": "Checkerboard",
    "Compression": "Compression",
    "Sweeps": "Sweeps",
}
NAV = ["Home", "Draw", "Denoise", "Train", "Latent space", "Checkerboard", "Compression", "Sweeps"]
ACTIVE = dict(zip(PAGES, NAV))   # URL path -> the sidebar entry marked as the current page


def nav_texts(page) -> list[str]:
    nav = page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
    return [t.strip() for t in nav.all_inner_texts()]


@pytest.mark.parametrize("path", PAGES)
def test_deep_link_on_a_fresh_server(fresh_server, page, path):
    server = fresh_server()
    page.goto(f"{server.url}/{path}")
    wait_for_app(page)
    title = page.locator('[data-testid="stMain"] h1').first.inner_text()
    assert PAGES[path].lower() in title.lower(), title
    assert nav_texts(page) == NAV
    active = page.locator('[data-testid="stSidebarNav"] a[aria-current="page"]')
    assert active.count() == 1 and active.inner_text().strip() == ACTIVE[path]
    assert page.locator('[data-testid="stException"]').count() == 0


def test_home_entry_leads_home_and_keeps_its_url(streamlit_server, page):
    """From a page, the "Home" entry opens the home page at the server's root URL."""
    page.goto(f"{streamlit_server}/Compression")
    wait_for_app(page)
    page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]').first.click()
    page.get_by_role("heading", name="MNIST Autoencoder Lab").wait_for()
    wait_for_app(page)
    assert page.url.rstrip("/") == streamlit_server.rstrip("/")
    assert nav_texts(page)[0] == "Home"
    assert page.locator('[data-testid="stSidebarNav"] a[aria-current="page"]').inner_text().strip() == "Home"
