from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent   # the repository (tests find files there, not aecore)

torch.set_num_threads(2)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: full-test-set checks (run by default; -m 'not slow' skips)")
    config.addinivalue_line("markers", "browser: real Streamlit server + Chromium")


@pytest.fixture(scope="session")
def mnist_test():
    import aecore
    return aecore.load_mnist("test")
