"""Train: train an autoencoder live. The run happens in a background thread
(aecore.jobs), so it survives page switches; a fragment polls it while it runs."""
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

import aecore
import ui
from aecore import jobs
from aecore.models import describe_model, recommended_lr
from aecore.noise import NOISE_KINDS
from aecore.trainer import LIMITS, ConfigError, TrainConfig

JOB, UPLOADED, D = "train_job", "train_uploaded", jobs.DEFAULTS


def state_keys(model: str) -> dict:
    """Session-state keys of the settings; code size and learning rate are kept per architecture."""
    return {name: f"train_{name}" for name in D} | {"code_size": f"train_code_size_{model}", "lr": f"train_lr_{model}"}


def drop_invalid_settings() -> None:
    """Values put into st.session_state by hand get the same checks as the trainer's."""
    ss = st.session_state
    keys = state_keys(ss.get("train_model", D["model"]))
    given = {name: ss[key] for name, key in keys.items() if key in ss}
    if given.get("noise") == "none":
        given["noise"] = None
    for name, message in jobs.setting_errors(given).items():
        st.error(f"Invalid training setting, reset to its default: {message}")
        del ss[keys[name]]


def settings_ui() -> tuple[str, int, TrainConfig]:
    c1, c2, c3 = st.columns(3)
    name = c1.selectbox("Architecture", aecore.list_models(), key="train_model", help="See the captions",
                        format_func=lambda n: f"{n}: {describe_model(n)}")
    sizes = jobs.code_sizes(name)
    code = c1.select_slider("Code size", sizes, value=D["code_size"] if D["code_size"] in sizes
                            else sizes[len(sizes) // 2], key=state_keys(name)["code_size"])
    epochs = c2.number_input("Epochs", *LIMITS["epochs"], value=D["epochs"], key="train_epochs")
    batch = c2.number_input("Batch size", *LIMITS["batch_size"], value=D["batch_size"], key="train_batch_size")
    lr = c2.number_input("Learning rate (Adam)", *LIMITS["lr"], value=recommended_lr(name), step=5e-4,
                         format="%g", key=state_keys(name)["lr"], help="Starts at the rate this architecture "
                         "trains well with; warmed up over the first steps, then decayed to 0 on a cosine.")
    noise = c3.selectbox("Noise on the inputs (denoising)", ["none", *NOISE_KINDS], key="train_noise")
    level = c3.slider("Noise level", 0.0, 1.0, D["noise_level"], key="train_noise_level",
                      disabled=noise == "none")
    with st.expander("Advanced"):
        train_size = st.number_input("Training images (first N of 60,000)", 1, None, D["train_size"],
                                     key="train_train_size")
        test_size = st.number_input("Test images for the test loss", 1, None, D["test_size"],
                                    key="train_test_size")
    return name, code, TrainConfig(epochs=epochs, batch_size=batch, lr=lr, noise=None if noise == "none"
                                   else noise, noise_level=level, train_size=train_size, test_size=test_size)


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
        job = jobs.TrainingJob(name, config, code_size=code, preview=images[jobs.preview_indices(labels)],
                               alive=session_alive(), on_finish=jobs.add_to(ui.session_models()))
        jobs.SCHEDULER.submit(job)
    except (ConfigError, jobs.QueueFull) as e:
        st.error(str(e))
        return
    st.session_state[JOB] = job
    st.rerun()


def clock(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def loss_figure(v: jobs.JobView) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=v.curve["x"], y=v.curve["loss"], name="training loss (batches)", mode="lines",
                    line={"width": 1}, opacity=0.5)
    fig.add_scatter(x=[e - 0.5 for e in v.history["epoch"]], y=v.history["train_loss"],  # mid-epoch
                    name="training loss (epoch mean)",
                    mode="lines+markers")
    fig.add_scatter(x=v.history["epoch"], y=v.history["test_loss"], name="test loss", mode="lines+markers")
    fig.update_layout(height=280, margin={"t": 10, "b": 40, "l": 50, "r": 10}, xaxis_title="epoch",
                      yaxis_title="loss", legend={"orientation": "h", "y": 1.12})
    return fig


def strip(images) -> np.ndarray:
    """Digits side by side with gray gaps, as one picture (cheap to refresh)."""
    return np.hstack([np.pad(ui.to_pixels(x, 3), ((0, 0), (0, 4)), constant_values=96) for x in images])


def show_job(job: jobs.TrainingJob) -> None:
    v = job.view()
    p = v.progress
    if v.state == jobs.QUEUED:
        st.info(f"**{v.label}** is waiting in the training queue (position {v.position}): another "
                "session is training, and only one training runs at a time.")
    elif v.state == jobs.RUNNING and p is None:
        st.info(f"Starting **{v.label}**…")
    shown = {jobs.DONE: st.success, jobs.STOPPED: st.warning, jobs.FAILED: st.error}.get(v.state)
    if shown:
        kept = (f" The model is selectable as **{v.label} (this session)** on the Draw and Denoise "
                "pages." if v.model is not None else "")
        shown(f"{v.state.capitalize()}: {v.message or 'training finished'}.{kept}")
    if p is not None:
        st.progress(p.batch / p.batches, text=f"Epoch {p.epoch} of {p.epochs}: batch {p.batch}/{p.batches}")
        st.progress(p.fraction, text=f"**{v.label}**: {p.fraction:.0%} of the run · "
                    f"{p.images_per_s:,.0f} images/s · elapsed {clock(p.elapsed_s)} · ETA {clock(p.eta_s)}")
        st.plotly_chart(loss_figure(v), width="stretch")
    if v.preview_recon is not None:
        if job.config.noise:
            st.image(strip(job.preview), caption="fixed test digits")
        st.image(strip(job.preview_inputs), caption="input" + (f" with {job.config.noise} noise "
                 f"{job.config.noise_level:g}" if job.config.noise else ": fixed test digits"))
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
    st.success(f"Loaded: **{done[upload.file_id]} (this session)** is selectable on Draw and Denoise.")


st.set_page_config(page_title="Train · MNIST Autoencoder Lab", page_icon="🧠", layout="wide")
st.title("Train an autoencoder")
st.caption("Training runs in the background (one training per server at a time, on one CPU "
           "core): switch pages and come back, it keeps going.")
jobs.warm_up()
drop_invalid_settings()
name, code, config = settings_ui()
st.caption(f"Expected time: about {clock(jobs.estimate_seconds(name, config))} on a 2-core machine.")
job = st.session_state.get(JOB)
active = job is not None and not job.finished
busy = not active and jobs.SCHEDULER.running is not None  # someone else's training
if active:
    if st.button("Stop (keep the model so far)"):
        job.stop()
        st.rerun()
elif st.button("Start training", type="primary"):
    start(name, code, config)


@st.fragment(run_every=0.5 if active else 1.0 if busy else None)
def live() -> None:
    running = jobs.SCHEDULER.running
    if not active and running is not None:
        p = running.view().progress
        st.info(f"Another session is training **{running.label}**" + (f": {p.fraction:.0%} done, about "
                f"{clock(p.eta_s)} left" if p else "") + ". A training you start now waits in the queue.")
    if job is not None:
        show_job(job)
    if (active and job.finished) or (busy and running is None):
        st.rerun()  # the whole page: buttons, download, the timer off


live()
if job is not None and job.model is not None:
    st.download_button("Download the checkpoint", job.checkpoint(), mime="application/octet-stream",
                       file_name=f"{job.label.replace(', ', '_').replace(' ', '-')}.pt")
upload_ui()
