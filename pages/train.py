"""Train: settings in the sidebar, buttons on top, live curves, states and predictions below."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from playground.core.config import ConfigError, TrainConfig
from playground.core.tasks import TASKS, TaskError
from playground.plots.curves import accuracy_figure, gamma_figure, loss_figure
from playground.runs.registry import FINAL_STATUSES, BackgroundRun, RunError, TrainingSnapshot, registry
from playground.training.storage import CHECKPOINT_FILE
from playground.ui import (
    attached_run,
    checked_config,
    keep_widget_state,
    load_settings,
    run_label,
    settings_sidebar,
    state_preview,
)

LIVE_KEYS = ("lr", "teacher_forcing_ratio")
CURVES_SECONDS = 2.0  # a redraw costs the browser and the GIL time the training thread would use (2 cores)
EVALUATION_SECONDS = 5.0  # accuracy, predictions and states only change at evaluations

st.title("Train a seq2seq model")
run = attached_run("train", "train_run_id", "run", lambda run: load_settings(run.snapshot().config))
keep_widget_state()
runs = registry()
settings_sidebar()
config, problems = checked_config()
for problem in problems:
    st.error(problem)


def current_run() -> BackgroundRun | None:
    """The run as the session knows it now; callbacks run before the rerun that would refresh `run`."""
    try:
        return runs.get(st.session_state["train_run_id"]) if "train_run_id" in st.session_state else None
    except (RunError, ValueError):  # ValueError: a damaged run (config, checkpoint, task)
        return None


def run_to_train(config: TrainConfig) -> BackgroundRun:
    """The current run, or a new one with `config` when there is none or it has ended."""
    run = current_run()
    if run is None or run.status in FINAL_STATUSES:
        run = runs.create_training(st.session_state.get("run_name", ""), config)
        st.session_state.train_run_id = st.query_params["run"] = run.id
    return run


def start() -> None:
    """Start or resume; the settings are read afresh (see `checked_config`)."""
    config, _ = checked_config()
    if config is None:
        return  # the rerun shows the problems
    try:
        run = run_to_train(config)
        if run.status == "paused":
            run.resume()
        else:
            run.start()
    except (RunError, ConfigError, TaskError) as error:
        st.session_state.train_error = str(error)


def step_once() -> None:
    config, _ = checked_config()
    if config is None:
        return
    try:
        run_to_train(config).step_once()
    except (RunError, ConfigError, TaskError) as error:
        st.session_state.train_error = str(error)


def reset() -> None:
    if (run := current_run()) is not None and run.active:
        run.stop()
    st.session_state.pop("train_run_id", None)
    st.query_params.pop("run", None)


def open_run(run_id: str) -> None:
    """Make a listed run the current one and show its settings."""
    try:
        opened = runs.get(run_id)
    except (RunError, ValueError) as error:
        st.session_state.train_error = f"cannot open run {run_id}: {error}"
        return
    st.session_state.train_run_id = st.query_params["run"] = run_id
    load_settings(opened.snapshot().config)


buttons = st.columns([1, 1, 1, 1, 1, 3])
running = run is not None and run.status == "running"
buttons[0].button("Start", key="start", type="primary", on_click=start, disabled=config is None or running,
                  width="stretch", help="Train with the settings on the left (resumes a paused run)")
if run is not None and run.status == "paused":
    buttons[1].button("Resume", key="pause", on_click=run.resume, width="stretch")
else:
    buttons[1].button("Pause", key="pause", on_click=run.pause if run else None, disabled=not running,
                      width="stretch")
buttons[2].button("Step", key="step", on_click=step_once, disabled=config is None or running, width="stretch",
                  help="One training step, then pause")
buttons[3].button("Stop", key="stop", on_click=run.stop if run else None,
                  disabled=run is None or not run.active, width="stretch")
buttons[4].button("Reset", key="reset", on_click=reset, width="stretch",
                  help="Forget the current run (it stays in the list) so Start begins a new one")
buttons[5].text_input("Run name", key="run_name", placeholder="name of the next run (optional)",
                      label_visibility="collapsed")
if message := st.session_state.pop("train_error", None):
    st.error(message)

if run is not None and config is not None:
    run_config = run.snapshot().config
    live = {key: getattr(config, key) for key in LIVE_KEYS if getattr(config, key) != getattr(run_config, key)}
    if live and run.active:
        run.set_live(**live)
    fixed = [key for key, value in config.as_dict().items()
             if key not in (*LIVE_KEYS, "steps", "eval_every") and value != getattr(run_config, key)]
    if fixed:
        st.info(f"Changed {', '.join(fixed)}: these shape the model or the data, so they apply to a new run. "
                "Press **Reset**, then **Start**.")


def draw_progress_and_loss(run: BackgroundRun, snapshot: TrainingSnapshot) -> None:
    """What changes every step: cheap enough to redraw every second."""
    status = run.status
    rate = snapshot.steps_per_second
    left = (snapshot.total_steps - snapshot.step) / rate if rate > 0 else 0.0
    remaining = f" — {left:.0f} s left" if status == "running" else ""
    st.progress(min(snapshot.step / snapshot.total_steps, 1.0),
                text=f"**{run_label(run)}** — {status} — step {snapshot.step:,} of {snapshot.total_steps:,} — "
                     f"{rate:.1f} steps/s{remaining}")
    if status == "diverged":
        st.error(f"The run diverged: {run.message}. Its history and last good weights are kept; "
                 "try a lower learning rate or gradient clipping.")
    elif status == "failed":
        st.error(f"The run failed: {run.message}. Its history is kept.")
    changes = [(change.step, change.text) for change in snapshot.changes]
    note = f"diverged at step {snapshot.step + 1}" if status == "diverged" else ""
    loss_column, gamma_column = st.columns([2, 1])
    loss_column.plotly_chart(loss_figure(snapshot.rows, st.session_state.smoothing, st.session_state.log_y,
                                         changes, note), key="loss_chart", width="stretch")
    gamma_column.plotly_chart(gamma_figure(snapshot.rows, changes), key="gamma_chart", width="stretch")


def draw_evaluation(snapshot: TrainingSnapshot) -> None:
    """What changes at each evaluation: accuracy, predictions, the state preview."""
    last = next((row for row in reversed(snapshot.rows) if "val_fr_exact" in row), None)
    if last:
        cards = st.columns(4)
        cards[0].metric("Validation loss, free-running", f"{last['val_fr_loss']:.3f}")
        cards[1].metric("Token accuracy, teacher-forced", f"{last['val_tf_token_acc']:.1%}")
        cards[2].metric("Token accuracy, free-running", f"{last['val_fr_token_acc']:.1%}",
                        delta=f"{last['val_fr_token_acc'] - last['val_tf_token_acc']:+.1%} exposure-bias gap",
                        delta_color="off")
        cards[3].metric("Exact match (free-running)", f"{last['val_fr_exact']:.1%}")
    accuracy_column, predictions_column = st.columns(2)
    changes = [(change.step, change.text) for change in snapshot.changes]
    accuracy_column.plotly_chart(accuracy_figure(snapshot.rows, changes), key="accuracy_chart", width="stretch")
    with predictions_column:
        st.markdown("**Sample predictions** (free-running, validation examples)")
        if snapshot.predictions:
            st.dataframe(pd.DataFrame(snapshot.predictions), hide_index=True, width="stretch",
                         column_config={"correct": st.column_config.CheckboxColumn("correct")})
        else:
            st.caption("Predictions appear at the first evaluation.")
    state_preview(snapshot)


if run is not None:
    chart_options = st.columns([2, 1, 3])
    chart_options[0].slider("Smoothing", 0.0, 0.99, 0.6, 0.01, key="smoothing",
                            help="Exponential moving average of the training loss, as in TensorBoard")
    chart_options[1].toggle("Log scale", key="log_y")
    polling = run.status == "running"

    @st.fragment(run_every=CURVES_SECONDS if polling else None)
    def live_curves() -> None:
        draw_progress_and_loss(run, run.snapshot())
        if polling and run.status != "running":
            st.rerun()  # re-register the fragments without a timer, and refresh the buttons

    @st.fragment(run_every=EVALUATION_SECONDS if polling else None)
    def live_evaluation() -> None:
        draw_evaluation(run.snapshot())

    live_curves()
    live_evaluation()
else:
    task = TASKS[st.session_state.cfg_task]
    st.markdown(f"**{task.description}.** Press **Start** to train with the settings on the left; the curves, "
                "hidden states and predictions update live while it trains.")

with st.expander("Runs: open, rename, delete, download"):
    summaries = runs.list()
    if not summaries:
        st.caption("No runs yet.")
    else:
        labels = {summary.id: f"{summary.name} ({summary.kind}, {summary.status}) — {summary.id}"
                  for summary in summaries if summary.kind == "train"}
        chosen = st.selectbox("Run", list(labels), format_func=labels.get, key="manage_run")
        columns = st.columns(4)
        columns[0].button("Open", key="open_run", on_click=open_run, args=(chosen,), disabled=not chosen)
        new_name = columns[1].text_input("New name", key="new_run_name", label_visibility="collapsed",
                                         placeholder="new name")
        if columns[2].button("Rename", key="rename_run") and chosen:
            try:
                runs.rename(chosen, new_name)
                st.rerun()
            except RunError as error:
                st.error(str(error))
        if columns[3].button("Delete", key="delete_run") and chosen:
            try:
                runs.delete(chosen)
            except RunError as error:
                st.error(str(error))
            else:
                if st.session_state.get("train_run_id") == chosen:
                    st.session_state.pop("train_run_id")
                    st.query_params.pop("run", None)
                st.rerun()
        if chosen:  # the files are read only when a download is clicked
            checkpoint = Path(runs.runs_dir) / chosen / CHECKPOINT_FILE
            downloads = st.columns(2)
            downloads[0].download_button("Metrics (CSV)", lambda: runs.metrics_csv(chosen), f"{chosen}-metrics.csv",
                                         "text/csv", key="download_metrics")
            downloads[1].download_button("Checkpoint (.pt)", lambda: checkpoint.read_bytes(), f"{chosen}.pt",
                                         "application/octet-stream", key="download_checkpoint",
                                         disabled=not checkpoint.exists())
