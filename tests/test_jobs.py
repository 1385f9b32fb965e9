"""Background training jobs and the one-at-a-time scheduler, without Streamlit."""
import threading
import time

import pytest
import torch

import aecore
from aecore import jobs
from aecore.jobs import DONE, FAILED, QUEUED, RUNNING, STOPPED, Scheduler, TrainingJob
from aecore.models import UnknownModelError
from aecore.trainer import ConfigError, TrainConfig

TINY = dict(batch_size=64, train_size=512, test_size=100)
FOREVER = dict(epochs=1000, batch_size=32, train_size=2048, test_size=64)  # 64k steps: until stopped


@pytest.fixture(scope="module")
def data():
    train_images = aecore.load_mnist("train")[0][:2048]
    test_images, test_labels = aecore.load_mnist("test")
    return train_images, test_images[:200], test_images[jobs.preview_indices(test_labels)]


@pytest.fixture(autouse=True)
def no_job_outlives_its_test():
    """Stop whatever a (failed) test left running, so no thread trains on."""
    made.clear()
    yield
    for job in made:
        job.stop()
        if job.thread is not None:
            job.thread.join(10)


made = []


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def make(data, finished=None, **kw):
    train_images, test_images, preview = data
    options = {k: kw.pop(k) for k in ("alive", "abandon_after_s", "code_size", "on_finish") if k in kw}
    if finished is not None:
        options["on_finish"] = finished.append
    job = TrainingJob("simple", TrainConfig(**kw), data=(train_images.clone(), test_images), preview=preview,
                      **options)
    made.append(job)
    return job


def test_runs_to_completion_and_keeps_a_usable_model(data):
    finished, scheduler = [], Scheduler()
    job = make(data, finished, epochs=2, **TINY)
    fresh_mse = ((job._model.reconstruct(data[1]) - data[1]) ** 2).mean().item()
    assert job.model is None and scheduler.submit(job) == 0
    assert job.wait(30) and job.state == DONE and finished == [job]
    job.thread.join(5)
    v = job.view()
    assert v.history["epoch"] == [1, 2] and len(v.history["test_loss"]) == 2
    assert v.curve["x"][-1] == 2 and len(v.curve["x"]) == len(v.curve["loss"]) >= 2
    assert v.preview_epoch == 2 and v.preview_recon.shape == (10, 1, 28, 28)
    assert v.position is None and scheduler.running is None
    test = data[1][:TINY["test_size"]]
    trained_mse = ((job.model.reconstruct(test) - test) ** 2).mean().item()
    assert trained_mse == pytest.approx(v.history["test_mse"][-1], rel=1e-4) and trained_mse < fresh_mse
    reloaded = aecore.load_checkpoint(job.checkpoint(), name="job.pt")
    assert torch.equal(reloaded.reconstruct(data[2]), job.model.reconstruct(data[2]))
    assert reloaded.history["epoch"] == [1, 2]


def test_a_finished_model_is_added_under_a_unique_label(data):
    models = {"simple-32, 1 ep": "an older model"}
    job = make(data, epochs=1, on_finish=jobs.add_to(models), **TINY)
    Scheduler().submit(job)
    assert job.wait(30) and models == {"simple-32, 1 ep": "an older model", "simple-32, 1 ep (2)": job.model}
    failed = make(data, epochs=1, on_finish=jobs.add_to(models), **TINY)
    failed._data[0][:] = float("nan")
    Scheduler().submit(failed)
    assert failed.wait(30) and failed.state == FAILED and len(models) == 2  # no model, nothing added


def test_preview_digits_are_the_first_of_each_class():
    labels = torch.tensor([3, 1, 0, 1, 2, 3, 9, 4, 5, 6, 7, 8, 0])
    assert jobs.preview_indices(labels) == [2, 1, 4, 0, 7, 8, 9, 10, 11, 6]


def test_denoising_preview_shows_the_noisy_inputs(data):
    job = make(data, epochs=1, noise="gaussian", noise_level=0.5, **TINY)
    assert not torch.equal(job.preview_inputs, data[2]) and "gaussian 0.5" in job.label


def test_stop_keeps_the_model_trained_so_far(data):
    scheduler = Scheduler()
    job = make(data, **FOREVER)
    before = {k: v.clone() for k, v in job._model.state_dict().items()}
    scheduler.submit(job)
    wait_until(lambda: job.view().history["epoch"])
    job.stop()
    assert job.wait(10) and job.state == STOPPED and job.message == "stopped by the user"
    job.thread.join(5)
    assert not job.thread.is_alive() and scheduler.running is None
    after = job.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(t).all() for t in after.values())


def test_nan_fails_with_a_message_and_keeps_the_last_good_epoch(data):
    job = make(data, **FOREVER)
    poisoned = job._data[0]
    Scheduler().submit(job)
    wait_until(lambda: len(job.view().history["epoch"]) >= 2)
    poisoned[:] = float("nan")  # the next batch's loss is NaN
    assert job.wait(10) and job.state == FAILED
    assert "diverged" in job.message and "nan" in job.message and "lower learning rate" in job.message
    params = job.model.state_dict()
    assert all(torch.isfinite(t).all() for t in params.values())
    assert torch.isfinite(job.model.reconstruct(data[2])).all()


def test_nan_before_the_first_epoch_leaves_no_model(data):
    job = make(data, epochs=1, **TINY)
    job._data[0][:] = float("nan")
    Scheduler().submit(job)
    assert job.wait(10) and job.state == FAILED and job.model is None


def test_an_exception_fails_the_job_and_frees_the_scheduler(data):
    scheduler = Scheduler()
    bad = TrainingJob("simple", TrainConfig(epochs=1), data=(torch.rand(64, 3, 28, 28), None))
    nxt = make(data, epochs=1, **TINY)
    scheduler.submit(bad)
    scheduler.submit(nxt)
    assert bad.wait(10) and bad.state == FAILED and bad.model is None
    assert bad.message.startswith("Training failed (RuntimeError") and "no model to keep" in bad.message
    assert nxt.wait(30) and nxt.state == DONE


def test_one_job_at_a_time_in_submission_order(data):
    finished, scheduler = [], Scheduler(max_waiting=2)
    a, b, c = (make(data, finished, **FOREVER) for _ in range(3))
    assert [scheduler.submit(j) for j in (a, b, c)] == [0, 1, 2]
    with pytest.raises(jobs.QueueFull, match="queue is full"):
        scheduler.submit(make(data, **FOREVER))
    wait_until(lambda: a.view().progress is not None)
    assert (a.state, b.state, c.state) == (RUNNING, QUEUED, QUEUED) and b.thread is None
    assert (b.view().position, c.view().position) == (1, 2)
    c.stop()  # leaves the queue at once, never trained
    assert c.state == STOPPED and c.model is None and c.thread is None and b.view().position == 1
    a.stop()
    wait_until(lambda: b.state == RUNNING)
    a.thread.join(5)  # a's thread starts b on its way out
    assert a.state == STOPPED and scheduler.running is b and not a.thread.is_alive()
    b.stop()
    assert b.wait(10) and finished == [c, a, b] and scheduler.running is None


def threads_of_a_new_thread() -> int:
    """torch's thread count as a thread started now sees it (Streamlit runs every script
    run in a new thread)."""
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_training_sets_one_torch_thread_and_restores_the_default(data):
    torch.set_num_threads(2)  # as tests/conftest.py has it
    job = make(data, **FOREVER)
    Scheduler().submit(job)
    wait_until(lambda: job.view().progress is not None)
    assert threads_of_a_new_thread() == jobs.TORCH_THREADS == 1
    job.stop()
    job.thread.join(10)
    assert threads_of_a_new_thread() == 2


def test_a_job_whose_session_is_gone_stops_itself(data):
    connected = threading.Event()
    connected.set()
    job = make(data, alive=connected.is_set, abandon_after_s=0.3, **FOREVER)
    Scheduler().submit(job)
    wait_until(lambda: job.view().history["epoch"])
    assert job.state == RUNNING
    connected.clear()  # the browser went away
    assert job.wait(10) and job.state == STOPPED and "session has been gone" in job.message
    job.thread.join(5)
    assert not job.thread.is_alive() and job.model is not None


def test_a_queued_job_whose_session_is_gone_is_dropped(data):
    scheduler = Scheduler()
    running, orphan = make(data, **FOREVER), make(data, alive=lambda: False, abandon_after_s=0.0, **FOREVER)
    scheduler.submit(running)
    scheduler.submit(orphan)
    running.stop()
    assert orphan.wait(10) and orphan.state == STOPPED and "session is gone" in orphan.message
    assert orphan.thread is None and scheduler.running is None


def test_bad_settings_are_refused_with_a_message(data):
    with pytest.raises(ConfigError, match="epochs must be an integer from 1 to 1000, got 0"):
        make(data, epochs=0)
    with pytest.raises(ConfigError, match="multiple of 49"):
        TrainingJob("conv", TrainConfig(), code_size=32)


def test_the_expected_time_comes_from_a_measured_run(data):
    """aecore.calibrate times real training steps of the architecture (same trainer path)
    and scales them to the run; the bench compares it with whole runs."""
    from aecore import calibrate
    images = data[0]
    rate = calibrate.measure("simple", 32, TrainConfig(batch_size=64), images)
    assert rate.train_images_per_s > 0 and rate.eval_images_per_s > 0
    assert rate.precision in ("fp32", "bf16")
    one, three = (rate.seconds(TrainConfig(epochs=e, train_size=6400, test_size=100)) for e in (1, 3))
    assert three - calibrate.SETUP_S == pytest.approx(3 * (one - calibrate.SETUP_S))
    with pytest.raises(UnknownModelError, match="choose one of"):
        calibrate.measure("resnet", 32, TrainConfig(), images)


def test_a_finished_training_respects_the_per_session_limit(data):
    """A session keeps at most MAX_SESSION_MODELS models, however they arrive (a model
    trained on the Train page used to skip the limit: a leak for a long session)."""
    models = {f"old {i}": object() for i in range(jobs.MAX_SESSION_MODELS)}
    job = make(data, on_finish=jobs.add_to(models), epochs=1, **TINY)
    Scheduler().submit(job)
    assert job.wait(60) and job.state == DONE
    assert len(models) == jobs.MAX_SESSION_MODELS
    assert "old 0" not in models and models[job.label] is job.model
    assert jobs.keep_model(models, job.label, job.model) == f"{job.label} (2)"
