from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent   # the repository (tests find files there, not aecore)


def run_quick_bench(module: str, out: Path, timeout: int):
    """`python -m MODULE --quick --json OUT` in the repository: (the finished process, the
    JSON it wrote or None)."""
    import json
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", module, "--quick", "--json", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout)
    return r, json.loads(out.read_text()) if out.exists() else None

torch.set_num_threads(2)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: full-test-set checks (run by default; -m 'not slow' skips)")
    config.addinivalue_line("markers", "browser: real Streamlit server + Chromium")


@pytest.fixture(scope="session")
def mnist_test():
    import aecore
    return aecore.load_mnist("test")
