"""The Train page's Ray back end (issue 14, item 4) on a real Ray cluster, in a network
namespace of its own with only loopback (tests/ray_netns.py); the scenarios are in
tests/ray_train_netns.py and check themselves:

- launcher: a head (the server's node, no CPU for training) and a second node with one
  CPU. A RayLauncher job trains a tiny model there and every kind of message arrives
  (previews as arrays, checkpoint bytes that load into a model); through the Scheduler, a
  long job is stopped and keeps its model; another is running when its node is killed
  (SIGKILL of its raylet, workers and daemons): it fails saying the node was lost, keeps
  its last epoch's model and frees its slot.
- browser: a Ray head with two CPUs, `streamlit run app.py` started with RAY_ADDRESS, and
  real Chromium on the Train page: a short training finishes with its reconstructions and
  the page says it ran on the cluster, on the head's node."""
import sys

import pytest

from tests.ray_netns import netns_available, ray_env, run_in_netns

needs_netns = pytest.mark.skipif(bool(netns_available()), reason=netns_available() or "")


def scenario(name: str, tmp_path, timeout: float, **env) -> str:
    run = run_in_netns([sys.executable, "-m", "tests.ray_train_netns", name, str(tmp_path)], timeout=timeout,
                       env=ray_env(HOME=str(tmp_path / "home"), **env))
    assert run.returncode == 0 and "PASSED" in run.stdout, f"{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    assert not (tmp_path / "home" / ".ray").exists()   # no token file written for later `ray start`s
    return run.stderr


@needs_netns
def test_ray_launcher_streams_stops_and_survives_a_lost_node(tmp_path):
    print(scenario("launcher", tmp_path, timeout=400))


@needs_netns
@pytest.mark.browser
def test_train_page_runs_a_job_on_the_cluster(tmp_path):
    print(scenario("browser", tmp_path, timeout=400))


def test_no_cluster_at_the_address_means_local_processes_and_one_line(monkeypatch):
    """Started with a RAY_ADDRESS where nothing answers: the app trains in its own processes
    and the Train page says why in one line (no Ray is started, no traceback)."""
    from aecore import jobs
    from aecore.launcher import ProcessLauncher
    from bench.server import free_port
    address = f"127.0.0.1:{free_port()}"   # nothing listens there
    monkeypatch.setenv("RAY_ADDRESS", address)
    launcher = jobs.default_launcher()
    assert isinstance(launcher, ProcessLauncher)
    assert launcher.note.startswith(f"No Ray cluster could be used at {address}") and "\n" not in launcher.note
    assert launcher.note.endswith("trainings run on this server instead.")
    monkeypatch.delenv("RAY_ADDRESS")
    assert jobs.default_launcher().note is None

    from streamlit.testing.v1 import AppTest
    from tests.conftest import ROOT
    monkeypatch.setattr(jobs.SCHEDULER, "launcher", launcher)
    at = AppTest.from_file(str(ROOT / "pages/3_Train.py"), default_timeout=60).run()
    assert not at.exception
    assert [w.value for w in at.warning] == [launcher.note]
    assert any("in a process of its own on this server" in c.value for c in at.caption)
