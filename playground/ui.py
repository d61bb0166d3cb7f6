"""The few Streamlit pieces several pages share: the settings sidebar, run labels, the state preview.

This is the one module of the library that imports streamlit; everything it
shows comes from the rest of `playground`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from playground.core.config import ConfigError, TrainConfig
from playground.core.devices import available_devices
from playground.core.forcing import SCHEDULES
from playground.core.tasks import TASKS, TaskError
from playground.plots.states import state_heatmap
from playground.runs.registry import BackgroundRun, RunError, TrainingSnapshot, registry
from playground.training.trainer import build_task

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


def attached_run(kind: str, session_key: str, url_key: str,
                 show_settings: Callable[[BackgroundRun], None]) -> BackgroundRun | None:
    """The run a page shows: the session's, else the URL's (which survives a reload); forgotten if it is gone.

    A fresh session (a reload) calls `show_settings` so the sidebar shows the run's own settings; call this
    before `keep_widget_state`.
    """
    fresh_session = _key("task") not in st.session_state
    run_id = st.session_state.get(session_key, st.query_params.get(url_key))
    if not run_id:
        return None
    try:
        run = registry().get(run_id)
        if run.kind != kind:
            raise RunError(f"run {run_id!r} is a {run.kind} run, not a {kind} run")
    except (RunError, ValueError):  # a deleted or damaged run, or a foreign id in the URL
        st.session_state.pop(session_key, None)
        st.query_params.pop(url_key, None)
        return None
    st.session_state[session_key] = st.query_params[url_key] = run_id
    if fresh_session:
        show_settings(run)
    return run


def _key(name: str) -> str:
    return SETTING_PREFIX + name


def _number(container: Any, label: str, name: str, step: float | None = None, help: str | None = None) -> Any:
    """A number box without hard limits: TrainConfig says what is allowed, in words."""
    kind = type(getattr(DEFAULTS, name))
    return container.number_input(label, step=step or (1 if kind is int else None), key=_key(name), help=help,
                                  format=None if kind is int else "%g")


FORCING_FIELDS = ("teacher_forcing_ratio", "schedule", "tf_end", "decay_steps", "exp_k", "sigmoid_k")


def _save_upload(upload: Any) -> str:
    """Keep an uploaded CSV in the runs folder so a run can be reproduced from its config."""
    data = upload.getvalue()
    folder = Path(registry().runs_dir) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.csv"
    if not path.exists():
        path.write_bytes(data)
    return str(path)


def _shown(name: str, state: Any) -> bool:
    """Whether the sidebar offers a setting now; one it does not offer keeps its default."""
    task, optimizer, schedule = state[_key("task")], state[_key("optimizer")], state[_key("schedule")]
    info = TASKS.get(task)
    rules = {
        "min_len": info is not None and info.uses_lengths,
        "max_len": info is not None and info.uses_lengths,
        "alphabet_size": info is not None and info.uses_lengths,
        "max_digits": info is not None and info.uses_digits,
        "custom_csv": task == "custom",
        "custom_tokenization": task == "custom",
        "momentum": optimizer == "sgd",
        "weight_decay": optimizer == "adamw",
        "tf_end": schedule != "constant",
        "decay_steps": schedule == "linear",
        "exp_k": schedule == "exponential",
        "sigmoid_k": schedule == "inverse_sigmoid",
    }
    return rules.get(name, True)


def current_settings(include_forcing: bool = True) -> dict[str, Any]:
    """The settings as the widgets hold them right now.

    Read from session state, not from the last script run: a button's callback runs before the rerun that
    would redraw the widgets, so values returned by the widgets of the previous run can be stale.
    """
    state = st.session_state
    if state[_key("task")] == "custom" and (upload := state.get("custom_upload")) is not None:
        state[_key("custom_csv")] = _save_upload(upload)
    skipped = () if include_forcing else FORCING_FIELDS
    return {name: state[_key(name)] for name in DEFAULTS.as_dict()
            if name not in skipped and _shown(name, state)}


def checked_config(include_forcing: bool = True) -> tuple[TrainConfig | None, list[str]]:
    """The current settings as a validated config (a custom CSV read and checked too), or the problems."""
    try:
        config = TrainConfig.from_dict(current_settings(include_forcing))
        build_task(config)
    except (ConfigError, TaskError) as error:
        return None, getattr(error, "problems", [str(error)])
    return config, []


def task_settings(container: Any) -> None:
    task = container.selectbox("Task", list(TASKS), key=_key("task"),
                               help="Synthetic sequence tasks, generated from the seed")
    container.caption(TASKS[task].description)
    state = st.session_state
    if _shown("min_len", state):
        cols = container.columns(2)
        _number(cols[0], "Min length", "min_len")
        _number(cols[1], "Max length", "max_len")
        container.slider("Alphabet size", 2, 26, key=_key("alphabet_size"), help="Symbols a, b, c, ...")
    if _shown("max_digits", state):
        container.slider("Digits per number", 1, 9, key=_key("max_digits"))
    if _shown("custom_csv", state):
        container.file_uploader("CSV of source,target pairs", type=["csv", "txt"], key="custom_upload")
        container.radio("Tokens", ["char", "space"], key=_key("custom_tokenization"), horizontal=True,
                        format_func={"char": "characters", "space": "space-separated words"}.get)


def model_settings(container: Any) -> None:
    cols = container.columns(2)
    _number(cols[0], "Embedding size", "emb_dim")
    _number(cols[1], "Hidden size", "hidden_dim")
    cols = container.columns(2)
    _number(cols[0], "LSTM layers", "num_layers")
    cols[1].slider("Dropout", 0.0, 0.9, step=0.05, key=_key("dropout"))


def optimizer_settings(container: Any) -> None:
    names = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD + momentum"}
    container.selectbox("Optimizer", list(names), key=_key("optimizer"), format_func=names.get)
    container.select_slider("Learning rate", LEARNING_RATES, key=_key("lr"),
                            help="Can be changed while a run trains; applies from the next step")
    cols = container.columns(2)
    _number(cols[0], "Batch size", "batch_size")
    _number(cols[1], "Gradient clip", "grad_clip", 0.5, "Max gradient norm; 0 turns it off")
    state = st.session_state
    if _shown("momentum", state):
        container.slider("Momentum", 0.0, 0.99, step=0.01, key=_key("momentum"))
    if _shown("weight_decay", state):
        _number(container, "Weight decay", "weight_decay", 0.01)


def forcing_settings(container: Any) -> None:
    container.slider("Teacher-forcing ratio gamma", 0.0, 1.0, step=0.05, key=_key("teacher_forcing_ratio"),
                     help="Chance that a decoder step reads the true previous token instead of its own prediction. "
                          "Can be changed while a run trains (a decaying schedule starts from it).")
    container.selectbox("Schedule", SCHEDULES, key=_key("schedule"), format_func=lambda s: s.replace("_", " "))
    state = st.session_state
    if _shown("tf_end", state):
        container.slider("Final gamma", 0.0, 1.0, step=0.05, key=_key("tf_end"))
    if _shown("decay_steps", state):
        _number(container, "Decay steps", "decay_steps", 100)
    if _shown("exp_k", state):
        _number(container, "Factor k per step", "exp_k", 0.0005, "gamma decays like k^step")
    if _shown("sigmoid_k", state):
        _number(container, "k", "sigmoid_k", 10.0, "k / (k + exp(step / k)); larger k decays later")
    container.radio("Coin", ["step", "token"], key=_key("coin"), horizontal=True,
                    format_func={"step": "per step (whole batch)", "token": "per token"}.get)


def run_settings(container: Any) -> None:
    devices = {device.name: device.label for device in available_devices()}
    container.selectbox("Device", ["auto", *devices], key=_key("device"),
                        format_func=lambda name: devices.get(name, "auto (GPU if present)"))
    cols = container.columns(2)
    _number(cols[0], "Steps", "steps", 100)
    _number(cols[1], "Evaluate every", "eval_every", 10)
    _number(container, "Seed", "seed")


def settings_sidebar(include_forcing: bool = True) -> None:
    """Every TrainConfig setting a page asks for, grouped the way a person thinks about them.

    The values live in session state under `cfg_<field>`; `current_settings` reads them.
    """
    with st.sidebar:
        st.subheader("Task")
        task_settings(st)
        st.subheader("Model")
        model_settings(st)
        st.subheader("Optimizer")
        optimizer_settings(st)
        if include_forcing:
            st.subheader("Teacher forcing")
            forcing_settings(st)
        st.subheader("Run")
        run_settings(st)


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
