"""Scenarios of the Train page's Ray back end (aecore.ray_launcher), each run as a script
inside a network namespace with only loopback (tests/ray_netns.py) by
tests/test_ray_launcher.py:

    python -m tests.ray_train_netns launcher WORKDIR   # RayLauncher + Scheduler on a head and a node
    python -m tests.ray_train_netns browser WORKDIR    # the app on a Ray head, driven by Chromium

Each checks what it must and exits non-zero with the reason; the cluster (and the app's
server) is stopped whatever happens. The cluster's nodes are found and killed by process
id (tests/ray_netns.py), never by name."""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.ray_netns import free_port, kill_tree, node_tree, start_node, wait_for_head

# a lost node is declared dead after about 5 s (Ray's default: 15 s or more); tighter than
# this, a node busy training on a loaded machine can miss its checks and be declared dead
HEALTH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "5",
          "RAY_health_check_initial_delay_ms": "0", "RAY_health_check_timeout_ms": "3000"}
TINY = {"epochs": 1, "train_size": 512, "test_size": 200, "batch_size": 128}


@contextlib.contextmanager
def cluster(workdir: Path, head_cpus: int = 1):
    """A Ray head on loopback; yields (address, {name: Popen}) once it answers, `add_node`
    starts more, each on an address of its own in 127.0.0.0/8 (as on machines of their own:
    a driver on 127.0.0.1 attaches to the head; were they all on 127.0.0.1, the GCS could
    take a driver for one on the node a test kills, and end its job); stops every one of
    them at the end."""
    port, temp = free_port(), Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    procs = {"head": start_node(workdir, temp, "head", "--head", "--port", str(port),
                                "--include-dashboard=false", cpus=head_cpus, health=HEALTH)}
    address = f"127.0.0.1:{port}"
    try:
        wait_for_head(port, procs["head"], workdir)
        procs["add_node"] = lambda name: procs.setdefault(name, start_node(
            workdir, temp, name, "--address", address, ip=f"127.0.0.{len(procs) + 1}", health=HEALTH))
        yield address, procs
    finally:
        procs.pop("add_node")
        for p in reversed(list(procs.values())):
            kill_tree(node_tree(p.pid))
        keep_logs(temp, workdir / "ray-logs")
        shutil.rmtree(temp, ignore_errors=True)


def keep_logs(temp: Path, to: Path) -> None:
    """The nodes' log files (not their sockets), for a failed test's reader."""
    for path in temp.rglob("*"):
        if path.suffix in (".out", ".err", ".log") and path.is_file():
            target = to / path.relative_to(temp)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def wait_for(what: str, condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def launcher_scenario(workdir: Path) -> None:
    import ray
    import torch

    from aecore.checkpoint import read_checkpoint
    from aecore.data import load_mnist
    from aecore.jobs import DONE, FAILED, STOPPED, Scheduler, TrainingJob, preview_indices
    from aecore.models import create_model
    from aecore.ray_launcher import RayLauncher
    from aecore.trainer import TrainConfig
    from aecore.worker import make_spec

    images, labels = load_mnist("test")
    preview = images[preview_indices(labels)]
    # the head runs the server (this driver) and its mailbox, no training (0 CPUs); node1 trains
    with cluster(workdir, head_cpus=0) as (address, procs):
        launcher = RayLauncher(address)   # the driver (the app's server) on the head
        procs["add_node"]("node1")
        wait_for("the second node to join", lambda: len([n for n in ray.nodes() if n["Alive"]]) == 2, 60)
        assert launcher.cpus == 1, launcher.cpus
        head_node = ray.get_runtime_context().get_node_id()[:8]   # the driver runs on the head
        print(f"cluster up at {address}", file=sys.stderr, flush=True)

        # 1. the launcher alone: every kind of message arrives, the weights decode to a model
        handle = launcher.launch(make_spec("simple", 16, TrainConfig(**TINY), preview=preview))
        messages, deadline = [], time.monotonic() + 180   # the first task on a node imports torch: slow when busy
        while not messages or messages[-1]["kind"] != "end":
            assert time.monotonic() < deadline, [m["kind"] for m in messages]
            if (m := handle.receive(0.5)) is not None:
                messages.append(m)
        handle.close()
        kinds = [m["kind"] for m in messages]
        assert kinds[:2] == ["started", "preview"] and "progress" in kinds and "epoch" in kinds, kinds
        end = messages[-1]
        assert end["state"] == DONE and end["weights"], end.get("message")
        assert handle.pid == messages[0]["pid"] and handle.node == messages[0]["node"] != head_node, handle.node
        assert messages[1]["preview"].shape == (10, 28, 28)
        model = create_model("simple", code_size=16)
        model.load_state_dict(read_checkpoint(end["weights"], name="ray")["state_dict"])
        with torch.no_grad():
            mse = float(((model.eval().reconstruct(preview) - preview) ** 2).mean())
        assert mse < 0.2, mse
        print(f"launcher: {len(messages)} messages {sorted(set(kinds))}, node {handle.node}, "
              f"preview MSE after 1 epoch {mse:.4f}", file=sys.stderr, flush=True)

        # 2. through the scheduler: Stop keeps the model so far
        scheduler = Scheduler(slots=launcher.cpus, launcher=launcher)
        long = TrainConfig(**{**TINY, "epochs": 500})
        job = TrainingJob("simple", long, code_size=16, preview=preview)
        scheduler.submit(job)
        wait_for("the job to finish an epoch", lambda: job.history["epoch"], 120)
        job.stop()
        assert job.wait(30), "the stopped job did not end"
        assert job.state == STOPPED and job.model is not None, (job.state, job.message)
        print(f"stopped: {job.label}", file=sys.stderr, flush=True)

        # 3. losing the node (SIGKILL of its raylet, workers and daemons) fails the job with a
        # message, keeps its last epoch's model and frees its slot
        lost = TrainingJob("simple", long, code_size=16, preview=preview)
        scheduler.submit(lost)
        wait_for("a weights snapshot of the job", lambda: lost._weights is not None or lost.finished, 120)
        kill_tree(node_tree(procs["node1"].pid))
        assert lost.wait(60), "the lost node's job did not end"
        assert lost.state == FAILED and "was lost" in lost.message and lost.model is not None, (lost.state, lost.message)
        assert not scheduler.running and not scheduler.full(), scheduler.running
        print(f"node lost: {lost.message}", file=sys.stderr, flush=True)
        ray.shutdown()
    print("PASSED", flush=True)


def browser_scenario(workdir: Path) -> None:
    from playwright.sync_api import sync_playwright

    from bench.server import CHROMIUM_ARGS, REPO_ROOT, ServerError, StreamlitServer
    from tests.browser.browser_helpers import wait_for_app

    with cluster(workdir, head_cpus=2) as (address, procs):
        os.environ["RAY_ADDRESS"] = address   # inherited by the server: `RAY_ADDRESS=HEAD:6379 make app`
        server = StreamlitServer(app=REPO_ROOT / "app.py", log_path=workdir / "server.log")
        try:
            server.start(timeout=90)
        except ServerError as e:
            raise AssertionError(str(e)) from e
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                             args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 1400})
                page.set_default_timeout(60_000)
                page.goto(f"{server.url}/Train")
                wait_for_app(page, timeout=120_000)
                page.get_by_text(f"on the Ray cluster at {address}").first.wait_for()
                for label, value in (("Epochs", 2),):
                    field = page.get_by_label(label, exact=True)
                    field.fill(str(value))
                    field.press("Enter")
                    wait_for_app(page)
                page.get_by_text("Advanced").click()
                for label, value in (("Training images (first N of 60,000)", 1024),
                                     ("Test images for the test loss", 200)):
                    field = page.get_by_label(label, exact=True)
                    field.fill(str(value))
                    field.press("Enter")
                    wait_for_app(page)
                page.get_by_role("button", name="Start training").click()
                page.get_by_text("Done: training finished").wait_for(timeout=180_000)
                wait_for_app(page)
                assert page.get_by_text("reconstruction after epoch 2").is_visible()
                chart = page.locator("[data-testid=stPlotlyChart]")
                chart.first.wait_for()   # Plotly mounts after the run's other elements on a busy machine
                assert chart.count() == 1
                where = page.get_by_text(f"Ran on the Ray cluster at {address}, node").inner_text()
                assert page.get_by_role("button", name="Download the checkpoint").is_visible()
                assert page.locator("[data-testid=stException]").count() == 0
                import ray   # the node the page names is the cluster's
                ray.init(address=address, logging_level="warning", log_to_driver=False)
                head = ray.nodes()[0]["NodeID"][:8]
                ray.shutdown()
                assert f"node {head}" in where, (where, head)
                print(f"page: {where}", file=sys.stderr, flush=True)
                page.get_by_text("Advanced").click()   # folded again for the picture
                page.set_viewport_size({"width": 1280, "height": 1700})   # down to the reconstructions
                wait_for_app(page)
                page.screenshot(path=str(REPO_ROOT / "docs" / "screenshots" / "train-ray.png"), animations="disabled")
                browser.close()
        finally:
            server.stop()
    print("PASSED", flush=True)


if __name__ == "__main__":
    scenario, workdir = sys.argv[1], Path(sys.argv[2])
    try:
        {"launcher": launcher_scenario, "browser": browser_scenario}[scenario](workdir)
    except BaseException:   # the reason on stdout; no exit handlers (Ray's would wait for the stopped cluster)
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        os._exit(1)
