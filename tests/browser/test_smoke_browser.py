"""Smoke test: the real app starts, renders its title and navigation, no exception."""

from tests.browser.browser_helpers import screenshot, wait_for_app


def test_home_renders_without_exception(streamlit_server, page):
    page.goto(streamlit_server)
    wait_for_app(page)

    # Title area: the landing page shows an <h1> (st.title / st.header markdown).
    title = page.locator('[data-testid="stMain"] h1').first
    assert title.is_visible(), "no <h1> title in the main area"
    assert title.inner_text().strip(), "the <h1> title is empty"

    # Multipage navigation in the sidebar with at least two pages.
    nav = page.locator('[data-testid="stSidebarNav"]')
    assert nav.is_visible(), "sidebar navigation is not rendered"
    links = nav.locator('[data-testid="stSidebarNavLink"]')
    assert links.count() >= 2, f"expected >= 2 pages in the sidebar, got {links.count()}"

    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, "app shows an exception:\n" + "\n---\n".join(
        exceptions.all_inner_texts()
    )

    page.locator("[data-testid=stDataFrame] canvas").first.wait_for(timeout=30_000)  # the table drawn
    screenshot(page, "home")
