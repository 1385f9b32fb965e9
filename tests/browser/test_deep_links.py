"""A deep link as the very first request of a freshly started server shows the right
page and the full navigation (the known trap of st.navigation + a pages/ folder)."""
import pytest
from browser_helpers import wait_for_app

PAGES = {  # URL path -> the page's <h1>
    "Draw": "Draw a digit",
    "Denoise": "Denoise",
    "Train": "Train an autoencoder",
    "Latent_space": "Latent space",
    "Checkerboard": "Checkerboard",
    "Compression": "Compression",
}
NAV = ["app", "Draw", "Denoise", "Train", "Latent space", "Checkerboard", "Compression"]


@pytest.mark.parametrize("path", PAGES)
def test_deep_link_on_a_fresh_server(fresh_server, page, path):
    server = fresh_server()
    page.goto(f"{server.url}/{path}")
    wait_for_app(page)
    title = page.locator('[data-testid="stMain"] h1').first.inner_text()
    assert PAGES[path].lower() in title.lower(), title
    nav = page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
    assert [t.strip() for t in nav.all_inner_texts()] == NAV
    active = page.locator('[data-testid="stSidebarNav"] a[aria-current="page"]')
    assert active.count() == 1 and PAGES[path].split()[0].lower() in active.inner_text().lower()
    assert page.locator('[data-testid="stException"]').count() == 0
