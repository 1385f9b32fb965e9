"""Helpers for the browser (Playwright + real Streamlit server) tests.

Import from tests in this folder with::

    from tests.browser.browser_helpers import wait_for_app, screenshot
The module is deliberately not called ``helpers`` so it cannot clash with
another ``helpers`` module elsewhere in the test tree.

The server itself is bench/server.py's (the load bench starts the same one);
``StreamlitServer.start`` here turns a server that won't start into ``pytest.fail``
with its log.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from bench import server
from bench.server import APP_ENV, CHROMIUM_ARGS, REPO_ROOT, SERVER_START_TIMEOUT_S, app_path  # noqa: F401 (re-exported)

SCREENSHOT_DIR = REPO_ROOT / "docs" / "screenshots"

#: Optional env var with the Chromium binary to use (default: ``chromium`` on PATH).
CHROMIUM_ENV = "AELAB_CHROMIUM"

# --------------------------------------------------------------------------- #
# Chromium
# --------------------------------------------------------------------------- #
def chromium_path() -> str:
    """Path of the Chromium binary, or ``pytest.fail`` with how to install it."""
    override = os.environ.get(CHROMIUM_ENV)
    if override:
        if shutil.which(override):
            return shutil.which(override)  # type: ignore[return-value]
        pytest.fail(f"{CHROMIUM_ENV}={override!r} is not an executable", pytrace=False)
    path = shutil.which("chromium")
    if not path:
        pytest.fail(
            "Browser tests need Chromium, but `chromium` is not on PATH.\n"
            "Install it with:  scripts/install-browser.sh\n"
            "(`playwright install` cannot download browsers here; the tests use "
            "the distribution's chromium package.)",
            pytrace=False,
        )
    return path


class StreamlitServer(server.StreamlitServer):
    """bench.server's server; one that will not start fails the test with its log."""

    def start(self, timeout: float = SERVER_START_TIMEOUT_S) -> "StreamlitServer":
        try:
            return super().start(timeout)
        except server.ServerError as e:
            pytest.fail(str(e), pytrace=False)


# --------------------------------------------------------------------------- #
# Page helpers
# --------------------------------------------------------------------------- #
_SETTLED_JS = """
([quietMs, needContent]) => {
  const app = document.querySelector('[data-testid="stApp"]');
  const ok = app
    && app.getAttribute('data-test-connection-state') === 'CONNECTED'
    && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid="stElementContainer"][data-stale="true"]')
    && (!needContent || document.querySelector(
          '[data-testid="stMain"] [data-testid="stElementContainer"]'));
  const now = performance.now();
  if (!ok) { window.__aelabSettledSince = null; return false; }
  if (window.__aelabSettledSince == null) window.__aelabSettledSince = now;
  return now - window.__aelabSettledSince >= quietMs;
}
"""


def wait_for_app(
    page, timeout: float = 60_000, *, quiet_ms: int = 400, need_content: bool = True
) -> None:
    """Wait until the Streamlit app in ``page`` has finished its script run.

    Use after ``page.goto(...)`` and after every interaction that triggers a
    rerun. Waits (``timeout`` in ms, in total) for:

    1. the ``stApp`` element,
    2. some content in the main area (skip with ``need_content=False``),
    3. websocket CONNECTED, script state ``notRunning`` and no stale elements,
       continuously for ``quiet_ms`` — Streamlit reports ``notRunning`` for a
       moment before a (re)run starts, so a single check is not enough.
    """
    deadline = time.monotonic() + timeout / 1000

    def left() -> float:
        return max(1.0, (deadline - time.monotonic()) * 1000)

    page.wait_for_selector('[data-testid="stApp"]', state="attached", timeout=left())
    if need_content:
        page.wait_for_selector(
            '[data-testid="stMain"] [data-testid="stElementContainer"]',
            state="attached",
            timeout=left(),
        )
    page.evaluate("window.__aelabSettledSince = null")
    page.wait_for_function(
        _SETTLED_JS, arg=[quiet_ms, need_content], polling=100, timeout=left()
    )


def screenshot(page, name: str, *, full_page: bool = False) -> Path:
    """Save a PNG of ``page`` to ``docs/screenshots/{name}.png`` (repo root)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


def no_exception(page) -> None:
    """The page shows no Streamlit exception box."""
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, "\n---\n".join(exceptions.all_inner_texts())
