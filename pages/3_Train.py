"""Train: train an autoencoder live. The run happens in a process of its own, or on a Ray
cluster when the app is started with RAY_ADDRESS (aecore.jobs), so it survives page
switches and never slows the server; a fragment polls it while it runs.
The expected time is measured on this machine (aecore.calibrate), not read from a table."""
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

import aecore
import ui
from aecore import calibrate, jobs
from aecore.models import default_run_lr, describe_model, model_spec
from aecore.noise import BLIND, NOISE_LABELS, TRAINING_NOISES, describe_noise
from aecore.precision import PRECISION_HELP, PRECISIONS, bf16_units
from aecore.trainer import LIMITS, ConfigError, TrainConfig, pick_device

JOB, UPLOADED, D = "train_job", "train_uploaded", ui.TRAIN_DEFAULTS
SAVED = "train_saved_settings"   # the form's values, kept while the user is on other pages
NOISE_NAMES = {"none": "none", **NOISE_LABELS, BLIND: "blind (every kind, random levels)"}


def state_keys(model: str) -> dict:
    """Session-state keys of the settings; code size and learning rate are kept per architecture."""
    return {name: f"train_{name}" for name in D} | {"code_size": f"train_code_size_{model}", "lr": f"train_lr_{model}"}


def restore_settings() -> None:
    """Streamlit forgets a widget's value once a run does not draw it (the user went to
    another page); put back what the user last chose."""
    ss = st.session_state
    for key, value in ss.get(SAVED, {}).items():
        if key not in ss:
            ss[key] = value


def save_settings() -> None:
    ss = st.session_state
    ss[SAVED] = {k: ss[k] for k in list(ss) if isinstance(k, str) and k.startswith("train_")
                 and k not in (JOB, UPLOADED, SAVED, "train_upload")}


def arch_changed() -> None:
    """A new architecture starts from its own default run (ui.train_defaults: epochs, batch size);
    one that trains only on noise (a U-Net) starts with its default noise where none was chosen."""
    d = ui.train_defaults(st.session_state["train_model"])
    st.session_state["train_epochs"], st.session_state["train_batch_size"] = d["epochs"], d["batch_size"]
    if d["noise"] and st.session_state.get("train_noise", "none") == "none":
        st.session_state["train_noise"] = d["noise"]


def drop_invalid_settings() -> None:
    """Values put into st.session_state by hand get the same checks as the trainer's."""
    ss = st.session_state
    keys = state_keys(ss.get("train_model", D["model"]))
    given = {name: ss[key] for name, key in keys.items() if key in ss}
    if given.get("noise") == "none":
        given["noise"] = None
    for name, message in ui.train_setting_errors(given).items():
        st.error(f"Invalid training setting, reset to its default: {message}")
        del ss[keys[name]]


def settings_ui() -> tuple[str, int, TrainConfig]:
    c1, c2, c3 = st.columns(3)
    name = c1.selectbox("Architecture", aecore.list_models(), key="train_model", help="See the captions",
                        format_func=lambda n: f"{n}: {describe_model(n)}", on_change=arch_changed)
    spec = model_spec(name)
    code = c1.select_slider("Code size", spec.code_sizes, value=spec.train_code_size,
                            key=state_keys(name)["code_size"])
    epochs = c2.number_input("Epochs", *LIMITS["epochs"], value=spec.epochs, key="train_epochs")
    batch = c2.number_input("Batch size", *LIMITS["batch_size"], value=spec.batch_size, key="train_batch_size")
    lr = c2.number_input("Learning rate (Adam)", *LIMITS["lr"], value=default_run_lr(name), step=5e-4,
                         format="%g", key=state_keys(name)["lr"], help="Starts at the rate this architecture "
                         "trains well with; warmed up over the first steps, then decayed to 0 on a cosine.")
    # a model that trains only on noise (a U-Net) is offered no "none"
    noise = c3.selectbox("Noise on the inputs (denoising)", ["none"] * spec.autoencoder + list(TRAINING_NOISES),
                         key="train_noise",
                         format_func=lambda k: NOISE_NAMES.get(k, k),
                         help="A denoiser sees noisy digits and learns to give back the clean ones. Blind: "
                              "every kind, each digit at a random level, so it never needs to be told which.")
    level = c3.slider("Noise level", 0.0, 1.0, D["noise_level"], key="train_noise_level",
                      disabled=noise in ("none", BLIND))
    native = bf16_units(pick_device())
    auto = f"auto ({'bf16' if native and spec.bf16 else 'fp32'} here)"
    precision = c3.selectbox("Precision", PRECISIONS, key="train_precision", format_func=lambda p: auto
                             if p == "auto" else p, help=" · ".join(f"**{k}**: {v}" for k, v in PRECISION_HELP.items()))
    c3.caption("bfloat16 keeps fp32's range with fewer digits: convolutions run several times faster on "
               "CPUs with bf16 units, to nearly the same quality per step. "
               + ("This machine has them." if native else "This machine has none: auto trains in fp32."))
    with st.expander("Advanced"):
        train_size = st.number_input("Training images (first N of 60,000)", 1, None, D["train_size"],
                                     key="train_train_size")
        test_size = st.number_input("Test images for the test loss", 1, None, D["test_size"],
                                    key="train_test_size")
    return name, code, TrainConfig(epochs=epochs, batch_size=batch, lr=lr, noise=None if noise == "none"
                                   else noise, noise_level=level, train_size=train_size, test_size=test_size,
                                   precision=precision)


def session_alive():  # Streamlit internals, so here rather than in aecore
    """A probe 'is this browser session still connected?' for the worker (no server
    runtime under AppTest: always alive there)."""
    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return lambda: True
    runtime, session_id = Runtime.instance(), ctx.session_id
    return lambda: runtime.is_active_session(session_id)


def start(name: str, code: int, config: TrainConfig) -> None:
    images, labels = ui.test_set()
    try:
        estimate = throughput(name, code, config.batch_size, config.precision, config.noise).seconds(config)
        job = jobs.TrainingJob(name, config, code_size=code, preview=images[jobs.preview_indices(labels)],
                               alive=session_alive(), on_finish=jobs.add_to(ui.session_models()),
                               estimate_s=estimate)
        jobs.SCHEDULER.submit(job)
    except (ConfigError, jobs.QueueFull) as e:
        st.error(str(e))
        return
    st.session_state[JOB] = job
    st.rerun()


def clock(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


@st.cache_resource(show_spinner="Measuring this machine's training speed…", max_entries=64)
def throughput(name: str, code: int, batch_size: int, precision: str, noise: str | None) -> calibrate.Throughput:
    config = TrainConfig(batch_size=batch_size, precision=precision, noise=noise, noise_level=0.5)
    return calibrate.measure(name, code, config, ui.test_set()[0][:2048], threads=jobs.TORCH_THREADS)


def expected_time(name: str, code: int, config: TrainConfig) -> None:
    rate = throughput(name, code, config.batch_size, config.precision, config.noise)
    here = ("on this server (the cluster's nodes may be faster or slower)"
            if not isinstance(jobs.SCHEDULER.launcher, jobs.ProcessLauncher) else "on this machine")
    st.caption(f"Expected time: about {clock(rate.seconds(config))} {here}: "
               f"{rate.train_images_per_s:,.0f} training images/s measured here for this architecture, "
               f"batch size and precision ({rate.precision}), on the one core a training gets. The ETA "
               "below follows the live run.")


def under_a_minute() -> None:
    """Each architecture's default run, timed on this machine: measured only when asked (a few
    seconds the first time), since every measurement trains a few batches."""
    if not st.toggle("Which models train in under a minute here?", key="train_compare_all"):
        return
    rows = []
    for n in aecore.list_models():
        d = ui.train_defaults(n)
        config = TrainConfig(epochs=d["epochs"], batch_size=d["batch_size"], lr=d["lr"], test_size=d["test_size"],
                             noise=d["noise"])
        seconds = throughput(n, d["code_size"], config.batch_size, config.precision, config.noise).seconds(config)
        rows.append({"architecture": f"{n}-{d['code_size']}", "default run": f"{d['epochs']} ep, batch {d['batch_size']}",
                     "expected here": clock(seconds), "under a minute": "yes" if seconds < 60 else "no"})
    st.dataframe(rows, hide_index=True)
    st.caption("Each architecture's default run (60,000 images per epoch), measured on this machine on the "
               "one core a training gets. docs/PRECISION.md has how soon each reaches a 32-component PCA's "
               "quality.")


def loss_figure(v: jobs.JobView) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=v.curve["x"], y=v.curve["loss"], name="training loss (batches)", mode="lines",
                    line={"width": 1}, opacity=0.5)
    fig.add_scatter(x=[e - 0.5 for e in v.history["epoch"]], y=v.history["train_loss"],  # mid-epoch
                    name="training loss (epoch mean)",
                    mode="lines+markers")
    fig.add_scatter(x=v.history["epoch"], y=v.history["test_loss"], name="test loss", mode="lines+markers")
    fig.update_layout(height=280, margin={"t": 10, "b": 40, "l": 50, "r": 10}, xaxis_title="epoch",
                      yaxis_title=f"loss: {v.objective}", legend={"orientation": "h", "y": 1.12})
    return fig


def strip(images) -> np.ndarray:
    """Digits side by side with gray gaps, as one picture (cheap to refresh)."""
    return np.hstack([np.pad(ui.to_pixels(x, 3), ((0, 0), (0, 4)), constant_values=96) for x in images])


def waiting_words(v: jobs.JobView) -> str:
    slots = jobs.SCHEDULER.slots
    busy = "another session is training" if slots == 1 else f"all {slots} training slots are taken"
    wait = (f" Expected start: in about {clock(v.wait_s)} (the running trainings' ETA and the estimated "
            f"length of those ahead of yours, each plus about {clock(jobs.SCHEDULER.startup_s)} to start its "
            "process)." if v.wait_s is not None else "")
    return f"**{v.label}** is waiting in the training queue (position {v.position}): {busy}.{wait}"


def show_job(job: jobs.TrainingJob) -> None:
    v = job.view()
    p = v.progress
    if v.state == jobs.QUEUED:
        st.info(waiting_words(v))
    elif v.state == jobs.RUNNING and p is None:
        st.info(f"Starting **{v.label}** {jobs.SCHEDULER.launcher.where}…")
    if job.worker.get("node"):   # a Ray back end says on which node
        st.caption(f"{'Ran' if v.state in jobs.FINISHED else 'Running'} {jobs.SCHEDULER.launcher.where}, "
                   f"node {job.worker['node']} (host {job.worker['host']}, process {job.worker['pid']}).")
    shown = {jobs.DONE: st.success, jobs.STOPPED: st.warning, jobs.FAILED: st.error}.get(v.state)
    if shown:
        kept = (f" The model is selectable as **{v.label} (this session)** on {ui.offered_on(v.model)}."
                if v.model is not None else "")
        shown(f"{v.state.capitalize()}: {v.message or 'training finished'}.{kept}")
    if p is not None:
        st.progress(p.batch / p.batches, text=f"Epoch {p.epoch} of {p.epochs}: batch {p.batch}/{p.batches}")
        st.progress(p.fraction, text=f"**{v.label}**: {p.fraction:.0%} of the run · "
                    f"{p.images_per_s:,.0f} images/s · elapsed {clock(p.elapsed_s)} · ETA {clock(p.eta_s)}")
        st.plotly_chart(loss_figure(v), width="stretch")
    if v.preview_recon is not None:
        if job.config.noise:
            st.image(strip(job.preview), caption="fixed test digits")
        trains_on = describe_noise(job.config.noise, job.config.noise_level)
        st.image(strip(job.preview_inputs), caption="input" + (
            f" with the noise it trains on: {trains_on}" if trains_on else ": fixed test digits"))
        st.image(strip(v.preview_recon), caption=f"reconstruction after epoch {v.preview_epoch}")


def upload_ui() -> None:
    st.subheader("Use a checkpoint")
    upload = st.file_uploader("A checkpoint saved here or by `python -m aecore train`", key="train_upload")
    if upload is None:
        return
    done = st.session_state.setdefault(UPLOADED, {})  # file id -> label, so each file loads once
    name = re.sub(r"[^\w.\- ]", "_", upload.name)[:100]  # a user's file name: no Markdown in it
    if upload.file_id not in done:
        try:
            model = aecore.load_checkpoint(upload.getvalue(), name=name)
        except aecore.CheckpointError as e:
            st.error(f"Cannot use this checkpoint. {e}")
            return
        done[upload.file_id] = ui.add_session_model(Path(name).stem, model)
    label = done[upload.file_id]
    model = ui.session_models().get(label)   # None once newer models pushed it out
    st.success(f"Loaded: **{label} (this session)**" + (f" is selectable on {ui.offered_on(model)}." if model is not None else "."))


st.set_page_config(page_title="Train · MNIST Autoencoder Lab", page_icon="🧠", layout="wide")
st.title("Train an autoencoder")
slots, launcher = jobs.SCHEDULER.slots, jobs.SCHEDULER.launcher
if launcher.note:   # started with a Ray address that could not be used
    st.warning(launcher.note)
st.caption(f"Training runs in the background, {launcher.where}, on one CPU core (this server runs "
           + ("one at a time" if slots == 1 else f"up to {slots} at once") + "; more wait in a queue): switch "
           "pages and come back, it keeps going.")
restore_settings()
drop_invalid_settings()
name, code, config = settings_ui()
expected_time(name, code, config)
under_a_minute()
save_settings()
job = st.session_state.get(JOB)
active = job is not None and not job.finished
busy = not active and bool(jobs.SCHEDULER.others(job))  # someone else's training
if active:
    if st.button("Stop (keep the model so far)"):
        job.stop()
        st.rerun()
elif st.button("Start training", type="primary"):
    start(name, code, config)


def others_words(others: list) -> str:
    def one(j):
        p = j.view().progress
        return f"**{j.label}**" + (f": {p.fraction:.0%} done, about {clock(p.eta_s)} left" if p else "")
    s = jobs.SCHEDULER
    head = "Another session is training " if len(others) == 1 else f"Other sessions are training {len(others)} models: "
    queue = (f"A training you start now waits in the queue ({len(s.waiting)} waiting)." if s.full()
             else "A training you start now starts at once (a slot is free).")
    return head + "; ".join(one(j) for j in others) + ". " + queue


# polled even when nobody trains, so a training another session starts shows up by itself
@st.fragment(run_every=0.5 if active else 1.0 if busy else 2.0)
def live() -> None:
    others = jobs.SCHEDULER.others(job)
    if not active and others:
        st.info(others_words(others))
    if job is not None:
        show_job(job)
    if (active and job.finished) or (not active and busy != bool(others)):
        st.rerun()  # the whole page: buttons, download, the timer off


live()
if job is not None and job.model is not None:
    st.download_button("Download the checkpoint", job.checkpoint(), mime="application/octet-stream",
                       file_name=f"{job.label.replace(', ', '_').replace(' ', '-')}.pt")
upload_ui()
