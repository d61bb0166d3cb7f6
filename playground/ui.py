"""The few Streamlit pieces several pages share: the settings sidebar, run labels, the state preview.

This is the one module of the library that imports streamlit; everything it
shows comes from the rest of `playground`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import streamlit as st

from playground.config import TrainConfig
from playground.devices import available_devices
from playground.forcing import SCHEDULES
from playground.runs import BackgroundRun, TrainingSnapshot, registry
from playground.state_plots import state_heatmap
from playground.tasks import TASKS

SETTING_PREFIX = "cfg_"
LEARNING_RATES = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0)
DEFAULTS = TrainConfig()


def keep_widget_state() -> None:
    """Seed every setting once, and keep it across page switches (Streamlit drops an undrawn widget's state)."""
    for name, value in DEFAULTS.as_dict().items():
        st.session_state.setdefault(_key(name), value)
    for key in list(st.session_state):
        if str(key).startswith(SETTING_PREFIX):
            st.session_state[key] = st.session_state[key]


def load_settings(config: TrainConfig) -> None:
    """Show a run's settings in the sidebar (call before the widgets are drawn)."""
    for name, value in config.as_dict().items():
        st.session_state[_key(name)] = value


def _key(name: str) -> str:
    return SETTING_PREFIX + name


def _number(container: Any, label: str, name: str, step: float | None = None, help: str | None = None) -> Any:
    """A number box without hard limits: TrainConfig says what is allowed, in words."""
    kind = type(getattr(DEFAULTS, name))
    return container.number_input(label, step=step or (1 if kind is int else None), key=_key(name), help=help,
                                  format=None if kind is int else "%g")


def _save_upload(upload: Any) -> str:
    """Keep an uploaded CSV in the runs folder so a run can be reproduced from its config."""
    data = upload.getvalue()
    folder = Path(registry().runs_dir) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.csv"
    if not path.exists():
        path.write_bytes(data)
    return str(path)


def task_settings(container: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    values["task"] = container.selectbox("Task", list(TASKS), key=_key("task"),
                                         help="Synthetic sequence tasks, generated from the seed")
    info = TASKS[values["task"]]
    container.caption(info.description)
    if info.uses_lengths:
        cols = container.columns(2)
        values["min_len"] = _number(cols[0], "Min length", "min_len")
        values["max_len"] = _number(cols[1], "Max length", "max_len")
        values["alphabet_size"] = container.slider("Alphabet size", 2, 26,
                                                   key=_key("alphabet_size"), help="Symbols a, b, c, ...")
    if info.uses_digits:
        values["max_digits"] = container.slider("Digits per number", 1, 9,
                                                key=_key("max_digits"))
    if values["task"] == "custom":
        upload = container.file_uploader("CSV of source,target pairs", type=["csv", "txt"], key="custom_upload")
        values["custom_tokenization"] = container.radio(
            "Tokens", ["char", "space"], key=_key("custom_tokenization"), horizontal=True,
            format_func={"char": "characters", "space": "space-separated words"}.get)
        values["custom_csv"] = _save_upload(upload) if upload is not None else st.session_state[_key("custom_csv")]
    return values


def model_settings(container: Any) -> dict[str, Any]:
    cols = container.columns(2)
    values = {"emb_dim": _number(cols[0], "Embedding size", "emb_dim"),
              "hidden_dim": _number(cols[1], "Hidden size", "hidden_dim")}
    cols = container.columns(2)
    values["num_layers"] = _number(cols[0], "LSTM layers", "num_layers")
    values["dropout"] = cols[1].slider("Dropout", 0.0, 0.9, step=0.05, key=_key("dropout"))
    return values


def optimizer_settings(container: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    names = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD + momentum"}
    values["optimizer"] = container.selectbox("Optimizer", list(names), key=_key("optimizer"), format_func=names.get)
    values["lr"] = container.select_slider("Learning rate", LEARNING_RATES, key=_key("lr"),
                                           help="Can be changed while a run trains; applies from the next step")
    cols = container.columns(2)
    values["batch_size"] = _number(cols[0], "Batch size", "batch_size")
    values["grad_clip"] = _number(cols[1], "Gradient clip", "grad_clip", 0.5, "Max gradient norm; 0 turns it off")
    if values["optimizer"] == "sgd":
        values["momentum"] = container.slider("Momentum", 0.0, 0.99, step=0.01,
                                              key=_key("momentum"))
    if values["optimizer"] == "adamw":
        values["weight_decay"] = _number(container, "Weight decay", "weight_decay", 0.01)
    return values


def forcing_settings(container: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    values["teacher_forcing_ratio"] = container.slider(
        "Teacher-forcing ratio gamma", 0.0, 1.0, step=0.05,
        key=_key("teacher_forcing_ratio"),
        help="Chance that a decoder step reads the true previous token instead of its own prediction. "
             "Can be changed while a run trains (a decaying schedule starts from it).")
    values["schedule"] = container.selectbox("Schedule", SCHEDULES, key=_key("schedule"),
                                             format_func=lambda s: s.replace("_", " "))
    if values["schedule"] != "constant":
        values["tf_end"] = container.slider("Final gamma", 0.0, 1.0, step=0.05,
                                            key=_key("tf_end"))
    if values["schedule"] == "linear":
        values["decay_steps"] = _number(container, "Decay steps", "decay_steps", 100)
    elif values["schedule"] == "exponential":
        values["exp_k"] = _number(container, "Factor k per step", "exp_k", 0.0005, "gamma decays like k^step")
    elif values["schedule"] == "inverse_sigmoid":
        values["sigmoid_k"] = _number(container, "k", "sigmoid_k", 10.0,
                                      "k / (k + exp(step / k)); larger k decays later")
    values["coin"] = container.radio("Coin", ["step", "token"], key=_key("coin"), horizontal=True,
                                     format_func={"step": "per step (whole batch)", "token": "per token"}.get)
    return values


def run_settings(container: Any) -> dict[str, Any]:
    devices = {device.name: device.label for device in available_devices()}
    values = {"device": container.selectbox("Device", ["auto", *devices], key=_key("device"),
                                            format_func=lambda name: devices.get(name, "auto (GPU if present)"))}
    cols = container.columns(2)
    values["steps"] = _number(cols[0], "Steps", "steps", 100)
    values["eval_every"] = _number(cols[1], "Evaluate every", "eval_every", 10)
    values["seed"] = _number(container, "Seed", "seed")
    return values


def settings_sidebar(include_forcing: bool = True) -> dict[str, Any]:
    """Every TrainConfig setting a page asks for, grouped the way a person thinks about them."""
    values: dict[str, Any] = {}
    with st.sidebar:
        st.subheader("Task")
        values |= task_settings(st)
        st.subheader("Model")
        values |= model_settings(st)
        st.subheader("Optimizer")
        values |= optimizer_settings(st)
        if include_forcing:
            st.subheader("Teacher forcing")
            values |= forcing_settings(st)
        st.subheader("Run")
        values |= run_settings(st)
    return values


def run_label(run: BackgroundRun) -> str:
    return run.name if run.name != run.id else run.id


def state_preview(snapshot: TrainingSnapshot) -> None:
    """Encoder and decoder h_t (top layer) on one fixed validation example."""
    capture = snapshot.preview
    if capture is None:
        return
    st.markdown(f"**Hidden states h_t** of the top layer on one validation example, refreshed at each evaluation "
                f"(step {snapshot.rows[-1]['step']:.0f} or earlier). The **Hidden states** page shows more.")
    left, right = st.columns(2)
    left.plotly_chart(state_heatmap(capture.encoder[-1].h, capture.src_tokens, "Encoder h_t (reads the source)",
                                    height=300, value_name="h"), key="preview_encoder", width="stretch")
    labels = [f"{fed}→{out}" for fed, out in zip(capture.decoder_inputs, capture.predicted, strict=True)]
    right.plotly_chart(state_heatmap(capture.decoder[-1].h, labels, "Decoder h_t (input → prediction)",
                                     height=300, value_name="h"), key="preview_decoder", width="stretch")
