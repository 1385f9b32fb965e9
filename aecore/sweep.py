"""`aecore sweep SPEC`: every trial of a sweep spec (aecore.sweep_spec), each one a Ray task
on one core that runs aecore.trial.run_trial and sends back the checkpoint as bytes; this
process (the driver) writes each checkpoint, its manifest entry when the trial names one,
and the results table (aecore.sweep_results) as each result lands, so a finished trial is
never lost. A rerun of the same spec resumes: a trial whose row says done, for the same
training, and whose checkpoint still has the recorded sha256, is not run again.

Failures: a trial the model or trainer refuses (a bad config, a diverged loss) fails the
same way every time and is reported at once; a lost worker or node, or any other error, is
retried up to the spec's `retries`. Ray's own task retries are off so that every attempt
is counted and reported here. Plain Ray tasks fit better than Ray Tune: a trial is one
function call with no intermediate reports, no early stopping and no search algorithm.

Where it runs: a local Ray started in this process on all cores (default), a cluster
(`--address` or RAY_ADDRESS), or no Ray at all (`--serial`: one trial after another here).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path

from .manifest import file_sha256, read_manifest_file
from .sweep_results import ResultsError, read_results, write_results
from .sweep_spec import Spec, Trial, load_spec


class SweepError(ValueError):
    """The sweep cannot run (no Ray, no cluster at the address); one line for the user."""


class TrialFailed(Exception):
    """A trial's attempt failed; `retry` says whether another attempt could succeed."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


def add_commands(subparsers) -> None:
    from .cli import positive_int
    s = subparsers.add_parser("sweep", help="train every trial of a sweep spec (TOML) on Ray and tabulate them",
                              description=__doc__.split("\n\n")[0])
    s.add_argument("spec", help="the sweep spec (TOML; see sweeps/small.toml)")
    s.add_argument("--address", default=None,
                   help="a Ray cluster to run on, HOST:PORT of its head (default: $RAY_ADDRESS, "
                        "else a local Ray on this machine's cores)")
    s.add_argument("--cpus", type=positive_int, help="cores of the local Ray (default: all)")
    s.add_argument("--serial", action="store_true", help="no Ray: run the trials one after another here")
    s.add_argument("--only", metavar="PATTERN", help="only the trials whose name matches PATTERN "
                   "(shell-style: 'checkerboard-*'); the table keeps the others' rows")
    s.add_argument("--dry-run", action="store_true",
                   help="list the trials and the aecore train command each one is; train nothing")
    s.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    spec = load_spec(args.spec)
    if args.only:
        chosen = [t for t in spec.trials if fnmatch.fnmatchcase(t.name, args.only)]
        if not chosen:
            raise ValueError(f"{spec.path}: no trial matches {args.only!r}; its trials: "
                             + ", ".join(t.name for t in spec.trials))
        spec = dataclasses.replace(spec, trials=chosen)
    rows = read_previous(spec)
    todo = [t for t in spec.trials if not finished(t, rows.get(t.name))]
    for manifest in dict.fromkeys(t.manifest for t in todo if t.manifest):
        read_manifest_file(Path(manifest))   # a broken manifest stops the sweep before any training
    if args.dry_run:
        for t in spec.trials:
            state = "done, skipped" if t not in todo else "to run"
            print(f"{t.name} ({state})\n    {t.command()}")
        print(f"{len(spec.trials)} trials, {len(todo)} to run; results in {spec.results}/results.json")
        return 0
    log(f"sweep {spec.name}: {len(spec.trials)} trials, {len(spec.trials) - len(todo)} already done "
        f"(results in {spec.results}/)")
    runner = Runner(spec, rows)
    runner.save()
    if todo:
        if args.serial:
            runner.run_serial(todo, threads=args.threads or 1)
        else:
            runner.run_ray(todo, address=args.address or os.environ.get("RAY_ADDRESS"), cpus=args.cpus)
    print(format_results([rows[t.name] for t in spec.trials if t.name in rows]))
    failed = [t.name for t in spec.trials if rows.get(t.name, {}).get("status") != "done"]
    log(f"{len(spec.trials) - len(failed)} of {len(spec.trials)} trials done"
        + (f"; failed: {', '.join(failed)} (rerun the same command to retry them)" if failed else "")
        + f"; table in {spec.results}/results.csv and results.json")
    return 1 if failed else 0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def read_previous(spec: Spec) -> dict[str, dict]:
    """The rows of an earlier run of this spec, by trial name ({} when there is none). An
    unreadable table stops the sweep: it is the user's data, never overwritten."""
    path = spec.results / "results.json"
    if not path.exists():
        return {}
    try:
        rows = read_results(path)["rows"]
    except ResultsError as e:
        raise ResultsError(f"{e}; move it away to start this sweep afresh") from e
    return {r["trial"]: r for r in rows}


def finished(trial: Trial, row: dict | None) -> bool:
    """Whether `row` is this very training's result and its checkpoint is intact."""
    if not row or row.get("status") != "done" or row.get("key") != trial.key or not row.get("sha256"):
        return False
    try:
        return file_sha256(Path(trial.out)) == row["sha256"]
    except OSError:
        return False


class Runner:
    """Collects results as they land; `rows` (by trial name) is written whole after each."""

    def __init__(self, spec: Spec, rows: dict[str, dict]):
        self.spec, self.rows = spec, rows
        self.started = time.perf_counter()
        self.landed = 0          # results of this run (for the ETA)

    def save(self) -> None:
        order = [t.name for t in self.spec.trials]
        rows = [self.rows[n] for n in order if n in self.rows] + [r for n, r in self.rows.items() if n not in order]
        write_results(self.spec.results, self.spec.name, rows)

    def status(self, in_flight: int, capacity: int) -> str:
        done = sum(1 for t in self.spec.trials if self.rows.get(t.name, {}).get("status") == "done")
        failed = sum(1 for t in self.spec.trials if self.rows.get(t.name, {}).get("status") == "failed")
        running = min(in_flight, capacity)
        left = len(self.spec.trials) - done - failed
        elapsed = time.perf_counter() - self.started
        eta = f"{elapsed / self.landed * left:.0f} s" if self.landed and left else ("0 s" if not left else "?")
        return (f"[{done}/{len(self.spec.trials)} done, {running} running, {in_flight - running} queued, "
                f"{failed} failed, ETA {eta}]")

    def land(self, trial: Trial, out: dict, attempts: int) -> None:
        """Write the checkpoint (and manifest entry), then the row: a row never points at a
        checkpoint that is not there."""
        from .atomic import atomic_write_bytes
        data = out["checkpoint"]
        atomic_write_bytes(trial.out, data)
        if trial.manifest:
            from .checkpoint import load_checkpoint
            from .manifest import record_in_manifest
            record_in_manifest(Path(trial.manifest), Path(trial.out), trial.command(), out["metrics"],
                               load_checkpoint(data, trial.out), out["example"], extra={"sweep": self.spec.name})
        clean = out["clean"]
        self.rows[trial.name] = {
            **self.config_row(trial), "status": "done", **clean, "nelbo": out["metrics"].get("nelbo"),
            "denoise_psnr": out["denoise_psnr"], "rate_bits": trial.rate_bits,
            "bytes_per_digit": out.get("bytes_per_digit"), "rate_psnr": out.get("rate_psnr"),
            "seconds": out["seconds"], "node": out["node"],
            "attempts": attempts, "sha256": hashlib.sha256(data).hexdigest()}
        self.landed += 1
        self.save()

    def fail(self, trial: Trial, message: str, attempts: int) -> None:
        self.rows[trial.name] = {**self.config_row(trial), "status": "failed", "attempts": attempts,
                                 "error": message}
        self.landed += 1
        self.save()

    def config_row(self, trial: Trial) -> dict:
        t = trial.train
        return {"trial": trial.name, "model": trial.model, "code_size": trial.options.get("code_size"),
                "options": json.dumps(trial.options, sort_keys=True), "epochs": t.get("epochs", 5),
                "seed": t.get("seed", 0), "noise": t.get("noise"), "noise_level": t.get("noise_level"),
                "train_size": t.get("train_size"), "test_size": t.get("test_size"), "checkpoint": trial.out,
                "command": trial.command(), "key": trial.key}

    def after_failure(self, trial: Trial, error: TrialFailed, attempts: int, in_flight: int, capacity: int) -> bool:
        """Report a failed attempt; True when the trial should be tried again."""
        again = error.retry and attempts <= self.spec.retries
        if again:
            log(f"{self.status(in_flight, capacity)} {trial.name}: attempt {attempts} failed ({error}); "
                f"retrying ({attempts} of {self.spec.retries} retries)")
        else:
            self.fail(trial, str(error), attempts)
            log(f"{self.status(in_flight, capacity)} {trial.name}: FAILED after {attempts} attempt(s): {error}")
        return again

    def report(self, trial: Trial, in_flight: int, capacity: int) -> None:
        r = self.rows[trial.name]
        denoised = "" if r.get("denoise_psnr") is None else f", denoising {r['denoise_psnr']:.2f} dB"
        log(f"{self.status(in_flight, capacity)} {trial.name}: PSNR {r['psnr']:.2f} dB (clean inputs{denoised}) "
            f"in {r['seconds']:.1f} s on {r['node']}")

    def run_serial(self, trials: list[Trial], threads: int = 1) -> None:
        from .precision import torch_threads
        from .trial import run_trial
        with torch_threads(threads):
            self._run_serial(trials, run_trial)

    def _run_serial(self, trials: list[Trial], run_trial) -> None:
        for i, trial in enumerate(trials):
            attempts = 0
            while True:
                attempts += 1
                try:
                    out = run_trial(trial.config, trial.command())
                except Exception as e:   # classified: a refusal fails now, anything else is retried
                    if self.after_failure(trial, classify(e), attempts, len(trials) - i - 1, 1):
                        continue
                    break
                self.land(trial, out, attempts)
                self.report(trial, len(trials) - i - 1, 1)
                break

    def run_ray(self, trials: list[Trial], address: str | None, cpus: int | None) -> None:
        os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
        if not address and not os.environ.get("RAY_AUTH_MODE") and not os.environ.get("RAY_AUTH_TOKEN"):
            # a private cluster: its own random token (Ray's token authentication) in this process's
            # environment, read when ray is imported and inherited by the nodes and workers it
            # starts, instead of the ~/.ray/auth_token file Ray would write (later `ray start`s
            # on this machine would pick that up)
            os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        try:
            import ray
        except ImportError as e:
            raise SweepError("Ray is not installed (pip install -r requirements.txt), or run with --serial") from e
        if address:
            check_reachable(address)
            try:
                ray.init(address=address, logging_level="warning", log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise SweepError(f"no Ray cluster at {address}: {first_line(e)}") from e
        else:
            # one machine: Ray's addresses on loopback (no probe of the network for its own address)
            ray.init(address="local", num_cpus=cpus or os.cpu_count(), include_dashboard=False,
                     logging_level="warning", log_to_driver=False, _node_ip_address="127.0.0.1")
        try:
            self._run_ray(ray, trials)
        finally:
            ray.shutdown()

    def _run_ray(self, ray, trials: list[Trial]) -> None:
        task = remote_trial(ray)
        attempts = {t.name: 0 for t in trials}
        in_flight: dict = {}

        def submit(trial):
            attempts[trial.name] += 1
            in_flight[task.remote(trial.config, trial.command())] = trial

        for trial in trials:
            submit(trial)
        log(f"{self.status(len(in_flight), capacity(ray))} submitted to Ray "
            f"({capacity(ray)} cores in {len(ray.nodes())} node(s))")
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=30)
            if not ready:
                log(self.status(len(in_flight), capacity(ray)))
                continue
            trial = in_flight.pop(ready[0])
            try:
                out = ray.get(ready[0])
            except Exception as e:
                if self.after_failure(trial, classify(e), attempts[trial.name], len(in_flight), capacity(ray)):
                    submit(trial)
                continue
            self.land(trial, out, attempts[trial.name])
            self.report(trial, len(in_flight), capacity(ray))


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT that answers nothing fails here, at once (ray.init would retry for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "/" in address:
        return   # "auto", "ray://...": Ray's own forms
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise SweepError(f"no Ray cluster answers at {address} ({e.strerror or e}); start one with "
                         "`ray start --head` (README: Sweeps and a Ray cluster)") from e


def capacity(ray) -> int:
    try:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    except Exception:   # the state API is best effort (a node just died)
        return 1


def remote_trial(ray):
    """The Ray task: one core, one torch thread, aecore.trial.run_trial, tagged with its node."""
    @ray.remote(num_cpus=1, max_retries=0)
    def sweep_trial(config: dict, command: str) -> dict:
        import torch
        from aecore.trial import run_trial
        torch.set_num_threads(1)
        out = run_trial(config, command)
        out["node"] = f"{out['node']}/{ray.get_runtime_context().get_node_id()[:8]}"
        return out
    return sweep_trial


def classify(error: BaseException) -> TrialFailed:
    """A refusal by the model or trainer (ValueError, TrainingDiverged) fails the same way every
    time: not retried. A lost worker or node, or anything else, may pass on another attempt."""
    from .trainer import TrainingDiverged
    cause = getattr(error, "cause", None) or error   # ray.exceptions.RayTaskError wraps the trial's error
    if isinstance(cause, (ValueError, TrainingDiverged)):
        return TrialFailed(f"{type(cause).__name__}: {first_line(cause)}", retry=False)
    name = type(error).__name__
    if name in ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError",
                "ObjectFetchTimedOutError", "LocalRayletDiedError", "RaySystemError"):
        return TrialFailed(f"{name}: its worker or node was lost", retry=True)
    return TrialFailed(f"{type(cause).__name__}: {first_line(cause)}", retry=True)


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else ""


def format_results(rows: list[dict]) -> str:
    head = (f"{'trial':34s} {'status':6s} {'model':13s} {'code':>4s} {'noise':>12s} {'MSE':>8s} {'PSNR':>6s} "
            f"{'SSIM':>5s} {'dn.PSNR':>7s} {'B/dig':>6s} {'s':>6s} {'try':>3s} node")
    lines = [head, "-" * len(head)]
    num = lambda v, f, w: f"{v:{w}{f}}" if v is not None else f"{'-':>{w}s}"
    for r in rows:
        noise = f"{r['noise']} {r['noise_level'] or 0:g}" if r.get("noise") else "-"
        lines.append(f"{r['trial'][:34]:34s} {r['status']:6s} {r['model'][:13]:13s} {int(r['code_size'] or 0):4d} "
                     f"{noise[:12]:>12s} {num(r.get('mse'), '.5f', 8)} {num(r.get('psnr'), '.2f', 6)} "
                     f"{num(r.get('ssim'), '.3f', 5)} {num(r.get('denoise_psnr'), '.2f', 7)} "
                     f"{num(r.get('bytes_per_digit'), '.1f', 6)} "
                     f"{num(r.get('seconds'), '.1f', 6)} {int(r.get('attempts') or 0):3d} "
                     f"{r.get('node') or (r.get('error') or '')[:60]}")
    return "\n".join(lines)
