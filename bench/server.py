"""A real `python -m streamlit run <app>` on 127.0.0.1 for the load bench (bench/load.py)
and the browser tests (tests/browser, through browser_helpers): spawned in its own
process group, ready once /_stcore/health answers, stopped with everything it started.
pytest-free: a server that will not start raises ServerError with the tail of its log."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent   # where app.py and .streamlit/ are

#: Env var naming the Streamlit script to serve (relative to the repo root, or
#: absolute). Default ``app.py``. Handy to try the fixtures on a scratch app.
APP_ENV = "AELAB_APP"
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



class ServerError(RuntimeError):
    """The server exited or never answered its health check."""


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
    """preexec_fn: on Linux, SIGTERM the server if its parent (pytest, the bench) dies hard
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
        """Spawn the server and wait for its health check; ServerError (with the log's
        tail) when it exits or does not answer within `timeout` seconds."""
        if not self.app.is_file():
            raise ServerError(f"Streamlit app not found: {self.app} (set {APP_ENV} to serve another script)")
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
            raise ServerError(f"Streamlit server for {self.app} {why}.\nLog {self.log_path} (tail):\n{log}")
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


class ServerLogs:
    """A bench's temporary folder for its servers' logs: `with ServerLogs("aecore-load-") as logs:`,
    then `logs.path / "server.log"`. Removed when the block ends with `logs.keep` false; kept
    (and named on stderr, to be read) when the run set `keep` because it found errors, or when
    the block raised."""

    def __init__(self, prefix: str):
        self.path, self.keep = Path(tempfile.mkdtemp(prefix=prefix)), False

    def __enter__(self) -> "ServerLogs":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.keep or exc_type is not None:
            print(f"[server logs kept in {self.path}]", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.stop(timeout=3)
