"""Fixtures for end-to-end browser tests: a real Streamlit server + Chromium.

Every test in this folder is marked ``browser`` (deselect with ``-m "not browser"``).

Fixtures
--------
streamlit_server  (session)  -> str: base URL, e.g. "http://127.0.0.1:40123",
                                of one ``streamlit run app.py`` shared by all tests.
fresh_server      (function) -> callable ``fresh_server(app=None) -> StreamlitServer``
                                starting a brand-new server (``.url``, ``.port``,
                                ``.log_path``, ``.stop()``); also usable as
                                ``with fresh_server() as srv:``. Everything it
                                started is stopped after the test.
browser           (session)  -> playwright.sync_api.Browser (Debian chromium).
page              (function) -> playwright.sync_api.Page in a fresh context,
                                viewport 1280x900; closed after the test.

Helpers (``from tests.browser.browser_helpers import wait_for_app, screenshot``):
wait_for_app(page, timeout=60_000, *, quiet_ms=400, need_content=True)
screenshot(page, name, *, full_page=False) -> Path  # docs/screenshots/{name}.png

Environment: AELAB_APP (script to serve, default app.py), AELAB_CHROMIUM
(browser binary, default `chromium` on PATH). Missing Chromium is a test
error telling you to run scripts/install-browser.sh, never a silent skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.browser_helpers import (
    CHROMIUM_ARGS,
    REPO_ROOT,
    StreamlitServer,
    app_path,
    chromium_path,
)

_HERE = Path(__file__).resolve().parent

BROWSER_TEST_TIMEOUT_S = 180  # server start (first test) + page work


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: end-to-end test driving Chromium against a real Streamlit server"
    )


def pytest_collection_modifyitems(config, items):
    has_timeout = config.pluginmanager.hasplugin("timeout")
    for item in items:
        if _HERE not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.browser)
        # The first test also pays for starting the server: give it room, unless
        # the test sets its own timeout.
        if has_timeout and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(BROWSER_TEST_TIMEOUT_S))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)  # lets `page` see if the test failed
    return rep


# --------------------------------------------------------------------------- #
# Servers
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="session")
def streamlit_server(tmp_path_factory):
    """Base URL of one real Streamlit server shared by the whole session."""
    server = StreamlitServer(
        app=app_path(), log_path=tmp_path_factory.mktemp("streamlit") / "server.log"
    )
    with server.start():
        print(f"\n[streamlit_server] {server.url} ready in {server.startup_s:.1f}s "
              f"(log: {server.log_path})")  # fmt: skip
        yield server.url


@pytest.fixture
def fresh_server(tmp_path):
    """Factory: ``fresh_server(app=None)`` starts a new server and returns it."""
    started: list[StreamlitServer] = []

    def start(app: str | Path | None = None) -> StreamlitServer:
        # None: $AELAB_APP / app.py; relative paths are relative to the repo root.
        path = app_path() if app is None else REPO_ROOT / app
        server = StreamlitServer(
            app=path, log_path=tmp_path / f"server-{len(started)}.log"
        )
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


# --------------------------------------------------------------------------- #
# Browser
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()  # fails with install instructions if missing
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser, request, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            shot = tmp_path / "failure.png"
            try:
                pg.screenshot(path=str(shot))
                print(f"\n[page] failure screenshot: {shot}")
            except Exception as exc:  # page may be dead
                print(f"\n[page] no failure screenshot: {exc}")
            if errors:
                print("[page] JS errors:\n  " + "\n  ".join(errors))
        context.close()
