"""Running Ray in tests: always inside a network namespace of its own with only loopback
(`unshare -n`, then `ip link set lo up`; root), so no test traffic leaves 127.0.0.1 and
Ray cannot reach or be reached from the machine's network.

`run_in_netns(argv)` runs a command there; `node_tree`/`kill_tree` stop what a test
started by process id (Ray's daemons put themselves into process groups of their own, so a
process group kill would miss them), never by name.

Run as a script inside the namespace (`python -m tests.ray_netns two-node SPEC WORKDIR`),
it is the two-node scenario of tests/test_sweep_cluster.py: a head and a second node with
one CPU each, a sweep sent to the head, the second node killed while a trial runs there
after it has finished one, and a JSON report on stdout."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).with_name("ray"))
# a lost node is declared dead after about 1.5 s instead of Ray's default 15 s or more
FAST_HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3",
               "RAY_health_check_initial_delay_ms": "0"}


def netns_available() -> str | None:
    """Why Ray tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root for `unshare -n`"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs unshare and ip (util-linux, iproute2)"
    return None


# every process of a test's cluster (nodes, drivers) shares one random token (Ray's token
# authentication), so no token file is read from or written to ~/.ray
TOKEN = secrets.token_hex(32)


def ray_env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_DISABLE_USAGE_STATS="1", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=os.environ.get("RAY_AUTH_TOKEN") or TOKEN, **extra)
    env.pop("RAY_ADDRESS", None)
    return env


def node_tree(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_tree(processes: list[psutil.Process]) -> None:
    """SIGKILL each of these processes (found beforehand, while the tree was intact)."""
    for p in processes:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=10)


def run_in_netns(argv: list[str], timeout: float, env: dict | None = None, cwd: Path = ROOT,
                 watch=None) -> subprocess.CompletedProcess:
    """Run `argv` in a fresh network namespace with loopback up; kill all it started on
    timeout. `watch(popen)`, if given, is called every 0.2 s while it runs."""
    command = ["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "bash", *argv]
    proc = subprocess.Popen(command, cwd=cwd, env=env or ray_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    tree = []
    try:
        while proc.poll() is None:
            tree = node_tree(proc.pid) or tree
            if watch:
                watch(proc)
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(command, timeout)
            time.sleep(0.2)
        out, err = proc.communicate()
        return subprocess.CompletedProcess(command, proc.returncode, out, err)
    finally:
        kill_tree([p for p in tree if p.is_running()] + node_tree(proc.pid))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(workdir: Path, temp: Path, name: str, *args: str, cpus: int = 1, ip: str = "127.0.0.1",
               health: dict = FAST_HEALTH) -> subprocess.Popen:
    """`ray start --block` for one node, with its own temp dir (two nodes share this machine;
    a short path: Ray's sockets live there and a socket path has at most 107 bytes)."""
    log = open(workdir / f"{name}.log", "w")
    return subprocess.Popen([RAY, "start", "--block", "--num-cpus", str(cpus), "--node-ip-address", ip,
                             "--temp-dir", str(temp / name), "--disable-usage-stats", *args],
                            stdout=log, stderr=subprocess.STDOUT, env=ray_env(**health))


def wait_for_head(port: int, head: subprocess.Popen, workdir: Path, timeout_s: float = 60) -> None:
    """Until the head answers on `port` (a node can join it only then); TimeoutError with its log."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or head.poll() is not None:
                raise TimeoutError(f"the head did not start:\n{(workdir / 'head.log').read_text()[-2000:]}")
            time.sleep(0.2)


def two_node(spec: str, workdir: Path) -> dict:
    """The scenario (module docstring); returns what the test checks."""
    import ray
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    head = start_node(workdir, temp, "head", "--head", "--port", str(port), "--include-dashboard=false")
    worker = None
    report = {"killed": None, "killed_trial": None}
    try:
        address = f"127.0.0.1:{port}"
        wait_for_head(port, head, workdir)
        ray.init(address=address, logging_level="warning", log_to_driver=False)
        head_id = ray.get_runtime_context().get_node_id()
        worker = start_node(workdir, temp, "worker", "--address", address)
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the second node did not join within 60 s")
            time.sleep(0.2)
        worker_id = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != head_id)
        report.update(head=head_id[:8], worker=worker_id[:8], cluster_s=None)
        ray.shutdown()
        sweep = subprocess.Popen([sys.executable, "-m", "aecore", "sweep", spec, "--address", address],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ray_env())
        results = Path(workdir / "results" / "results.json")
        while sweep.poll() is None and report["killed"] is None:
            done_there = results.exists() and worker_id[:8] in results.read_text()
            running = [p for p in node_tree(worker.pid) if _title(p).startswith("ray::sweep_trial")]
            if done_there and running:    # a trial finished on the worker node and another runs there
                kill_tree(node_tree(worker.pid))
                report["killed"] = time.time()
            time.sleep(0.1)
        out, _ = sweep.communicate(timeout=240)
        report.update(returncode=sweep.returncode, log=out)
        return report
    finally:
        ray.shutdown()
        for node in (worker, head):
            if node is not None:
                kill_tree(node_tree(node.pid))
        shutil.rmtree(temp, ignore_errors=True)


def _title(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


if __name__ == "__main__":
    if sys.argv[1] == "two-node":
        print(json.dumps(two_node(sys.argv[2], Path(sys.argv[3]))))
