"""Helpers for the browser (Playwright + real Streamlit server) tests.

Import from tests in this folder with::

    from browser_helpers import wait_for_app, screenshot

(conftest.py puts this folder on sys.path, whatever pytest's import mode.)
The module is deliberately not called ``helpers`` so it cannot clash with
another ``helpers`` module elsewhere in the test tree.

Everything here is independent of pytest except ``StreamlitServer.start``,
which calls ``pytest.fail`` with the server log when the server won't start.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# tests/browser/browser_helpers.py -> repo root
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "docs" / "screenshots"

#: Env var naming the Streamlit script to serve (relative to the repo root, or
#: absolute). Default ``app.py``. Handy to try the fixtures on a scratch app.
APP_ENV = "AELAB_APP"
#: Optional env var with the Chromium binary to use (default: ``chromium`` on PATH).
CHROMIUM_ENV = "AELAB_CHROMIUM"

SERVER_START_TIMEOUT_S = 60.0

CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",  # no network access here: don't try
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",  # small /dev/shm in some containers
]

# Servers still running; killed at interpreter exit if a teardown never ran.
_LIVE: set["StreamlitServer"] = set()


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


# --------------------------------------------------------------------------- #
# Streamlit server
# --------------------------------------------------------------------------- #
def app_path() -> Path:
    """The Streamlit script to serve: $AELAB_APP or app.py, relative to repo root."""
    p = Path(os.environ.get(APP_ENV, "app.py"))
    return p if p.is_absolute() else REPO_ROOT / p


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health_ok(url: str) -> bool:
    # No proxies for loopback, whatever the environment says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url + "/_stcore/health", timeout=2) as r:
            return r.status == 200 and r.read().strip() == b"ok"
    except (urllib.error.URLError, OSError):
        return False


def _die_with_parent():
    """preexec_fn: on Linux, SIGTERM the server if pytest itself dies hard
    (SIGKILL/SIGTERM/os._exit), when no fixture teardown or atexit runs."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    PR_SET_PDEATHSIG = 1
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


_PREEXEC = _die_with_parent() if sys.platform.startswith("linux") else None


def _tail(path: Path, n: int = 60) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "<no log>"
    return "\n".join(lines[-n:]) or "<empty log>"


@dataclass(eq=False)
class StreamlitServer:
    """One real ``python -m streamlit run <app>`` process on 127.0.0.1."""

    app: Path
    log_path: Path
    port: int = 0
    proc: subprocess.Popen | None = field(default=None, repr=False)
    startup_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> None:
        self.port = free_port()
        cmd = [
            sys.executable, "-m", "streamlit", "run", str(self.app),
            "--server.headless", "true",
            "--server.port", str(self.port),
            "--server.address", "127.0.0.1",
            "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
            "--server.runOnSave", "false",
        ]  # fmt: skip
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            # cwd = repo root so .streamlit/config.toml is picked up; own
            # process group so teardown can kill everything it spawned.
            self.proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_PREEXEC,
            )  # fmt: skip
        _LIVE.add(self)

    def start(self, timeout: float = SERVER_START_TIMEOUT_S) -> "StreamlitServer":
        if not self.app.is_file():
            pytest.fail(
                f"Streamlit app not found: {self.app} "
                f"(set {APP_ENV} to serve another script)",
                pytrace=False,
            )
        t0 = time.monotonic()
        for attempt in range(3):  # retry only if the free port got taken meanwhile
            self._spawn()
            deadline = t0 + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if _health_ok(self.url):
                    self.startup_s = time.monotonic() - t0
                    return self
                time.sleep(0.2)
            code = self.proc.poll()
            self.stop()
            log = _tail(self.log_path)
            if code is not None and "already in use" in log and attempt < 2:
                continue
            why = (
                f"exited with code {code}"
                if code is not None
                else f"did not answer /_stcore/health within {timeout:.0f}s"
            )
            pytest.fail(
                f"Streamlit server for {self.app} {why}.\n"
                f"Log {self.log_path} (tail):\n{log}",
                pytrace=False,
            )
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server's whole process group (idempotent)."""
        _LIVE.discard(self)
        proc = self.proc
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break  # group already gone
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # Leader is gone; make sure no child of it survives either.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        if proc.poll() is None:
            proc.wait(timeout=5)

    def __enter__(self) -> "StreamlitServer":
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.stop(timeout=3)


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
