"""AppTest helpers: run one page script headless, as Streamlit would."""
import pytest
from streamlit.testing.v1 import AppTest

from aecore import jobs

from tests.conftest import ROOT


@pytest.fixture
def run_page():
    """run_page("pages/1_Draw.py", key=value, ...) -> AppTest after its first run, with
    the given session_state entries set before the run."""
    def run(path: str, timeout: float = 60, **state) -> AppTest:
        at = AppTest.from_file(str(ROOT / path), default_timeout=timeout)
        for key, value in state.items():
            at.session_state[key] = value
        return at.run()
    return run


@pytest.fixture
def idle_scheduler():
    """The test ends with no training left in this process (queued or running)."""
    yield
    for job in [*jobs.SCHEDULER.waiting, *jobs.SCHEDULER.running]:
        job.stop()
        job.wait(15)
