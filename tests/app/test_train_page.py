"""AppTest of pages/3_Train.py: settings, a short background training polled to the end,
stop, the shared queue, invalid injected settings, checkpoint download and upload."""
import io
import json
import os
import signal
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

import aecore
from aecore import jobs
from aecore.checkpoint import checkpoint_bytes
from aecore.models import model_spec
from aecore.trainer import TrainConfig
import ui
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("idle_scheduler")   # every test ends with no training left

PAGE = "pages/3_Train.py"
TINY = {"train_train_size": 256, "train_test_size": 64, "train_epochs": 1}
LABEL = "simple-32, 1 ep"


def run_until(at: AppTest, condition, timeout: float = 60) -> AppTest:
    """Rerun the page (as the fragment's timer would) until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the training did not get there in time"
        time.sleep(0.2)
        at.run()
    return at


def start(at: AppTest) -> AppTest:
    [button] = [b for b in at.button if b.label == "Start training"]
    return button.click().run()


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_page_renders_the_settings(run_page):
    at = run_page(PAGE)
    assert not at.exception and not at.error
    assert [o.split(":")[0] for o in at.selectbox(key="train_model").options] == aecore.list_models()
    assert at.number_input(key="train_epochs").value == model_spec("simple").epochs
    assert at.number_input(key="train_train_size").value == 60_000
    assert any(c.startswith("Expected time: about") for c in texts(at.caption))
    assert [b.label for b in at.button] == ["Start training"]


def test_a_short_training_finishes_and_its_model_is_usable_elsewhere(run_page):
    at = start(run_page(PAGE, **TINY))
    assert not at.exception and not at.error
    job = at.session_state["train_job"]
    run_until(at, lambda: job.finished).run()
    assert job.state == jobs.DONE and not at.exception
    assert any(f"{LABEL} (this session)" in s for s in texts(at.success))
    assert len(at.get("plotly_chart")) == 1 and len(at.get("progress")) == 2
    assert len(at.image) == 2  # ten fixed test digits and their reconstructions, as strips
    models = at.session_state["session_models"]
    assert models == {LABEL: job.model}
    assert [d.proto.label for d in at.get("download_button")] == ["Download the checkpoint"]
    reloaded = aecore.load_checkpoint(job.checkpoint(), name="download.pt")
    x = aecore.load_mnist("test")[0][:4]
    assert torch.equal(reloaded.reconstruct(x), job.model.reconstruct(x))

    def listed():
        import streamlit as st

        import ui
        st.markdown(" | ".join(ui.available_models()))

    other = AppTest.from_function(listed, default_timeout=60)
    other.session_state["session_models"] = models
    assert f"{LABEL} (this session)" in other.run().markdown[0].value.split(" | ")
    if (ROOT / "pages/1_Draw.py").exists():  # the Draw page offers it next to the shipped ones
        from tests.app.test_draw_page import CANVAS_KEY, canvas_value, seven
        draw = AppTest.from_file(str(ROOT / "pages/1_Draw.py"), default_timeout=60)
        draw.session_state["session_models"] = models
        draw.session_state[CANVAS_KEY] = canvas_value(seven())
        assert f"{LABEL} (this session)" in draw.run().selectbox[0].options and not draw.exception


def test_a_denoiser_in_training_shows_the_noise_it_trains_on(run_page):
    at = run_page(PAGE, **TINY)
    at.selectbox(key="train_noise").set_value("gaussian").run()
    at = start(at)
    job = at.session_state["train_job"]
    run_until(at, lambda: job.finished).run()
    assert job.state == jobs.DONE and job.config.noise_level == 0.5 and not at.exception
    captions = [image.caption for element in at.image for image in element.proto.imgs]
    assert captions == ["fixed test digits", "input with the noise it trains on: Gaussian noise 0.5",
                        "reconstruction after epoch 1"]


def test_a_unet_trains_only_on_noise_and_is_offered_only_among_the_denoisers(run_page):
    """Picking the U-Net switches the noise from none to Gaussian and offers no "none"; a state
    with no noise for it is reset with the reason; its model is a denoiser on the Denoise page
    only (no code to draw through or decode on the other pages)."""
    at = run_page(PAGE, **TINY)
    assert at.selectbox(key="train_noise").value == "none"
    at.selectbox(key="train_model").set_value("unet").run()
    assert at.selectbox(key="train_noise").value == "gaussian" and "none" not in at.selectbox(key="train_noise").options
    at = start(at)
    job = at.session_state["train_job"]
    run_until(at, lambda: job.finished).run()
    assert job.state == jobs.DONE and not at.exception
    assert any("(this session)** on the Denoise page." in s for s in texts(at.success))

    def listed():
        import streamlit as st

        import ui
        for denoisers in (None, True, False):
            st.markdown(" | ".join(ui.available_models(denoisers)))

    other = AppTest.from_function(listed, default_timeout=60)
    other.session_state["session_models"] = at.session_state["session_models"]
    every, denoisers, plain = (m.value.split(" | ") for m in other.run().markdown)
    label = f"{job.label} (this session)"
    assert label in denoisers and label not in every and label not in plain

    injected = run_page(PAGE, train_model="unet", train_noise="none")
    assert any("unet is a denoiser, not an autoencoder" in e for e in texts(injected.error))
    assert injected.selectbox(key="train_noise").value == "gaussian" and not injected.exception


def test_stop_keeps_the_model_trained_so_far(run_page):
    at = start(run_page(PAGE, **TINY | {"train_epochs": 1000, "train_train_size": 4096}))  # minutes
    job = at.session_state["train_job"]
    run_until(at, lambda: job.view().history["epoch"])
    [stop] = [b for b in at.button if b.label.startswith("Stop")]
    run_until(stop.click().run(), lambda: job.finished).run()
    assert job.state == jobs.STOPPED and not at.exception
    assert any("stopped by the user" in w for w in texts(at.warning))
    [(label, model)] = at.session_state["session_models"].items()
    assert model is job.model
    # named by what it got (issue 15.5), never "1000 ep"
    done = len(job.view().history["epoch"])
    assert label in (f"simple-32, {done} of 1000 ep", f"simple-32, stopped at epoch {done + 1} of 1000"), label
    assert [b.label for b in at.button] == ["Start training"]


def test_a_killed_training_process_fails_with_a_message_and_keeps_its_last_epoch(run_page):
    """SIGKILL of the job's process mid-epoch (what the system does when memory runs out):
    the page says so, keeps the last epoch's model, and the next training runs."""
    at = start(run_page(PAGE, **TINY | {"train_epochs": 1000, "train_train_size": 4096}))
    job = at.session_state["train_job"]
    run_until(at, lambda: job.view().history["epoch"])
    assert job.pid != os.getpid()
    os.kill(job.pid, signal.SIGKILL)
    run_until(at, lambda: job.finished).run()
    assert job.state == jobs.FAILED and not at.exception
    [error] = texts(at.error)
    assert error.startswith("Failed: The training process ended unexpectedly (killed by signal 9, SIGKILL")
    assert "is kept" in error and "(this session)" in error
    [(label, model)] = at.session_state["session_models"].items()
    assert model is job.model and label.endswith("of 1000 ep") and label in error
    at.number_input(key="train_epochs").set_value(1).run()
    again = start(at).session_state["train_job"]
    run_until(at, lambda: again.finished)
    assert again.state == jobs.DONE and len(at.session_state["session_models"]) == 2


def test_a_second_training_waits_in_a_visible_queue(run_page, monkeypatch):
    monkeypatch.setattr(jobs.SCHEDULER, "slots", 1)   # one slot, whatever this machine's cores
    images = aecore.load_mnist("test")[0][:4096]
    others = jobs.TrainingJob("simple", TrainConfig(epochs=1000, batch_size=32), data=(images, None),
                              estimate_s=600)
    jobs.SCHEDULER.submit(others)  # another session's training
    at = run_page(PAGE, **TINY)
    assert any("Another session is training **simple-32, 1000 ep**" in i for i in texts(at.info))
    assert any("A training you start now waits in the queue" in i for i in texts(at.info))
    at = start(at)
    job = at.session_state["train_job"]
    assert job.state == jobs.QUEUED
    [waiting] = [i for i in texts(at.info) if "waiting in the training queue (position 1)" in i]
    assert "another session is training" in waiting and "Expected start: in about" in waiting
    assert others.pid is None or others.pid != os.getpid()   # it trains in a process of its own
    others.stop()
    run_until(at, lambda: job.finished)
    assert job.state == jobs.DONE and others.state == jobs.STOPPED


def test_with_a_free_slot_a_second_training_starts_at_once(run_page, monkeypatch):
    monkeypatch.setattr(jobs.SCHEDULER, "slots", 2)
    images = aecore.load_mnist("test")[0][:4096]
    others = jobs.TrainingJob("simple", TrainConfig(epochs=1000, batch_size=32), data=(images, None))
    jobs.SCHEDULER.submit(others)
    at = run_page(PAGE, **TINY)
    assert any("A training you start now starts at once (a slot is free)" in i for i in texts(at.info))
    job = start(at).session_state["train_job"]
    assert job.state == jobs.RUNNING and jobs.SCHEDULER.running == [others, job]
    run_until(at, lambda: job.finished)
    assert job.state == jobs.DONE and others.state == jobs.RUNNING and job.pid != others.pid
    others.stop()


@pytest.mark.parametrize("key, value, message, default", [
    ("train_epochs", 0, "epochs must be an integer from 1 to 1000, got 0", model_spec("simple").epochs),
    ("train_lr_simple", 5.0, "lr must be a number from 1e-06 to 1, got 5.0", 1e-2),
    ("train_batch_size", "many", "batch_size must be an integer from 1 to 4096, got 'many'", 128),
    ("train_train_size", -5, "train_size must be a positive integer, got -5", 60_000),
    ("train_model", "resnet", "architecture must be one of simple, deep", "simple"),
    ("train_noise", "fog", "noise must be one of gaussian", "none"),
    ("train_code_size_conv", 32, "code size must be one of 49, 98, 196, 392, got 32", 196),
])
def test_invalid_settings_in_session_state_give_a_clear_message(run_page, key, value, message, default):
    state = {"train_model": "conv"} if key == "train_code_size_conv" else {}
    at = run_page(PAGE, **state, **{key: value})
    assert not at.exception
    assert [e for e in texts(at.error) if message in e], texts(at.error)
    assert at.session_state[key] == default  # the widget is back at its default


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    return at.file_uploader(key="train_upload").upload(name, data).run()


def test_an_uploaded_checkpoint_becomes_a_session_model(run_page):
    model = aecore.create_model("conv_upsample", code_size=8, width=4)
    at = upload(run_page(PAGE), "mine.pt", checkpoint_bytes(model))
    assert not at.exception and not at.error
    assert any("mine (this session)" in s for s in texts(at.success))
    loaded = at.session_state["session_models"]["mine"]
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))


def nan_checkpoint() -> bytes:
    model = aecore.create_model("simple", code_size=4)
    with torch.no_grad():
        model.encoder[1].weight[0, 0] = float("nan")
    return checkpoint_bytes(model)


def whole_module_pickle() -> bytes:
    buffer = io.BytesIO()
    torch.save(aecore.create_model("simple"), buffer)  # unpickling it would run code
    return buffer.getvalue()


BAD_CHECKPOINTS = {  # name: (bytes, the reason the message must give)
    "pickled module": (whole_module_pickle, "refused"),
    "truncated": (lambda: checkpoint_bytes(aecore.create_model("simple"))[:5000], "truncated"),
    "text": (lambda: b"hello, not a checkpoint", "not a checkpoint"),
    "nan weights": (nan_checkpoint, "NaN"),
    "too large": (lambda: bytes(64 * 2**20 + 1), "over the 64 MB limit"),
}


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_a_bad_checkpoint_upload_gives_a_clear_error(run_page, case):
    make_bytes, reason = BAD_CHECKPOINTS[case]
    at = upload(run_page(PAGE), "bad.pt", make_bytes())
    assert not at.exception
    [error] = texts(at.error)
    assert error.startswith("Cannot use this checkpoint. bad.pt:") and reason in error
    assert "session_models" not in at.session_state or not at.session_state["session_models"]


def test_the_chart_says_which_loss_it_shows(run_page):
    at = start(run_page(PAGE, **TINY))
    job = at.session_state["train_job"]
    run_until(at, lambda: job.finished).run()
    [chart] = at.get("plotly_chart")
    spec = json.loads(chart.proto.spec)
    assert spec["layout"]["yaxis"]["title"]["text"] == "loss: binary cross-entropy per pixel"
    vae = jobs.TrainingJob("vae", TrainConfig(epochs=1))
    assert vae.view().objective.startswith("negative ELBO")


def test_settings_survive_a_visit_to_another_page(run_page):
    """Streamlit drops a widget's state once a run does not draw it; the page puts back
    what the user chose (issue 15.7)."""
    at = run_page(PAGE)
    at.selectbox(key="train_model").set_value("conv_upsample").run()
    assert at.number_input(key="train_epochs").value == model_spec("conv_upsample").epochs  # its own default run
    at.number_input(key="train_epochs").set_value(7).run()
    at.selectbox(key="train_noise").set_value("erasing").run()
    saved = at.session_state["train_saved_settings"]
    # another page: none of the train_* widgets is drawn, so Streamlit forgets their values
    other = AppTest.from_file(str(ROOT / PAGE), default_timeout=60)
    other.session_state["train_saved_settings"] = saved
    other.run()
    assert other.selectbox(key="train_model").value == "conv_upsample"
    assert other.number_input(key="train_epochs").value == 7
    assert other.selectbox(key="train_noise").value == "erasing"


def test_the_expected_time_is_measured_here(run_page):
    at = run_page(PAGE)
    [caption] = [c for c in texts(at.caption) if c.startswith("Expected time")]
    assert "measured here" in caption and "training images/s" in caption
    at.selectbox(key="train_precision").set_value("fp32").run()
    assert any("precision (fp32)" in c for c in texts(at.caption))


def test_which_models_train_in_under_a_minute_is_measured_on_request(run_page):
    at = run_page(PAGE)
    assert not at.dataframe   # nothing measured until asked: each measurement trains a few batches
    at.toggle(key="train_compare_all").set_value(True).run()
    [table] = at.dataframe
    rows = table.value
    assert list(rows["architecture"]) == [f"{n}-{ui.train_defaults(n)['code_size']}" for n in aecore.list_models()]
    assert set(rows["under a minute"]) <= {"yes", "no"}


def test_bad_settings_are_named_with_a_message():
    errors = ui.train_setting_errors({"lr": 5.0, "noise": "fog", "model": "conv", "code_size": 32, "epochs": 3})
    assert set(errors) == {"lr", "noise", "code_size"} and "49, 98, 196, 392" in errors["code_size"]


def test_the_default_settings_are_valid_for_every_architecture():
    for name in aecore.list_models():
        d = ui.train_defaults(name)
        assert not ui.train_setting_errors(d), name
        assert d["code_size"] in model_spec(name).code_sizes and d["epochs"] >= 1
