"""The Train page's Ray back end (issue 14, item 4) on a real Ray cluster, in a network
namespace of its own with only loopback (tests/ray_netns.py); the scenarios are in
tests/ray_train_netns.py and check themselves:

- launcher: a head and a second node with one CPU each. A RayLauncher job trains a tiny
  model and every kind of message arrives (previews as arrays, checkpoint bytes that load
  into a model); through the Scheduler, two long jobs run one per node, the second node is
  killed (SIGKILL of its raylet, workers and daemons): its job fails saying the node was
  lost and frees its slot, the other is stopped and keeps its model.
- browser: a Ray head with two CPUs, `streamlit run app.py` started with RAY_ADDRESS, and
  real Chromium on the Train page: a short training finishes with its reconstructions and
  the page says it ran on the cluster, on the head's node."""
import sys

import pytest

from tests.ray_netns import netns_available, ray_env, run_in_netns

pytestmark = pytest.mark.skipif(bool(netns_available()), reason=netns_available() or "")


def scenario(name: str, tmp_path, timeout: float, **env) -> str:
    run = run_in_netns([sys.executable, "-m", "tests.ray_train_netns", name, str(tmp_path)], timeout=timeout,
                       env=ray_env(HOME=str(tmp_path / "home"), **env))
    assert run.returncode == 0 and "PASSED" in run.stdout, f"{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    assert not (tmp_path / "home" / ".ray").exists()   # no token file written for later `ray start`s
    return run.stderr


def test_ray_launcher_streams_stops_and_survives_a_lost_node(tmp_path):
    print(scenario("launcher", tmp_path, timeout=240))


@pytest.mark.browser
def test_train_page_runs_a_job_on_the_cluster(tmp_path):
    print(scenario("browser", tmp_path, timeout=240))
