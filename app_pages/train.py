"""Train: settings in the sidebar, buttons on top, live curves, states and predictions below."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from playground.core.config import LIVE_SETTINGS, TrainConfig, label
from playground.core.tasks import TASKS, CustomPairs, TaskError
from playground.experiments.comparison import forcing_label
from playground.inspection import TaskPreview, parameter_counts, task_preview
from playground.plots import DiagramSizes, accuracy_figure, gamma_figure, loss_figure, model_diagram, notes
from playground.plots.length_figures import length_figure
from playground.reports import points
from playground.reports.comparison_table import LENGTHS
from playground.runs import BackgroundRun, RunPlan, TrainingSnapshot
from playground.runs.registry import registry
from playground.training import (
    EVALUATED,
    FINAL_STATUSES,
    WARN_SECONDS_PER_STEP,
    Metric,
    RunKind,
    RunStatus,
    build_task,
    estimate,
    metrics_csv,
)
from playground.ui import (
    attached_run,
    chart,
    chart_format_picker,
    check_control,
    checked_config,
    compounding_errors,
    current_settings,
    explained,
    exposures,
    guarded_action,
    load_settings,
    may_control,
    open_run,
    queue_place,
    recovery_view,
    run_label,
    runs_panel,
    seat_notice,
    session_owner,
    setting_value,
    settings_share,
    settings_sidebar,
    share_slot,
    show_refusal,
    state_preview,
)

Run = BackgroundRun[TrainingSnapshot]
CURVES_SECONDS = 3.0  # a redraw costs the browser and the GIL time the training thread would use (2 cores)
EVALUATION_SECONDS = 5.0  # accuracy, predictions and states only change at evaluations
STOP_WAIT_SECONDS = 3.0  # Stop waits this long for the run to end, so the buttons redraw in their new state

st.title("Train a seq2seq model")
share = share_slot("train")
run: Run | None = attached_run(RunKind.TRAIN, "train_run_id", "run",
                               lambda run: load_settings(run.snapshot().config))
runs = registry()
settings_sidebar()
chart_format_picker()
config, custom, problems = checked_config()
for problem in problems:
    st.error(problem)
settings_share(share, current_settings(), run={"run": run.id} if run is not None else None)


def current_run() -> Run | None:
    """The run as the session knows it now; callbacks run before the rerun that would refresh `run`."""
    run_id = st.session_state.get("train_run_id")
    return open_run(run_id, RunKind.TRAIN) if run_id else None


@guarded_action("train")
def act(action: str) -> None:
    """Start, resume or step the current run, or launch a new one (nothing is created when it is refused); a run
    this person does not control (opened by its link) is left alone: Start trains the experiment as their own."""
    config, custom, _ = checked_config()
    if config is None:
        return  # the rerun shows the problems
    run = current_run()
    if run is None or run.status in FINAL_STATUSES or not may_control(run.id):
        run = runs.launch(st.session_state.get("run_name", ""), RunPlan.train(config, custom),
                          one_step=action == "step", owner=session_owner())
        st.session_state.train_run_id = run.id
    elif action == "step":
        run.step_once()
    elif run.status == RunStatus.PAUSED:
        run.resume()
    else:
        run.start()


@guarded_action("train")
def train_on() -> None:
    """Continue an ended run up to the Steps setting, from exactly where it was saved."""
    run, (config, _, _) = current_run(), checked_config()
    if run is not None and config is not None:
        check_control(run.id)
        run.train_on(config.steps)


@guarded_action("train")
def control(action: str) -> None:
    """Stop, pause or resume the current run: its owner's (or a control link's) buttons only."""
    if (run := current_run()) is None:
        return
    check_control(run.id)
    {"stop": lambda: run.stop(wait=STOP_WAIT_SECONDS), "pause": run.pause, "resume": run.resume}[action]()


def reset() -> None:
    """Forget the current run (stopped first when this person controls it) so Start begins a new one."""
    if (run := current_run()) is not None and may_control(run.id):
        run.stop(wait=STOP_WAIT_SECONDS)
    st.session_state.pop("train_run_id", None)
    st.query_params.pop("run", None)


st.text_input("Name of the next run", key="run_name", placeholder="optional, e.g. small-lr",
              help="A name for the next run, shown in the runs list (the folder id stays unique)")
seated = seat_notice("train_login")
buttons = [st.container(horizontal=True)] * 5  # wraps at 800 px instead of cutting labels
controls = run is None or may_control(run.id)
running = controls and run is not None and run.status == "running"
ended = run is not None and run.status in FINAL_STATUSES and config is not None and config.steps > run.step
if not controls:
    buttons[0].button("Train this experiment yourself", key="start", type="primary", on_click=act,
                      args=("start",), disabled=config is None or not seated, width="content",
                      icon=":material/play_arrow:",
                      help="You opened this run by its link: start a run of your own with its settings "
                           "(its owner controls this one)")
elif ended:
    buttons[0].button("Train on", key="start", type="primary", on_click=train_on, width="content",
                      icon=":material/fast_forward:",
                      help="Continue this run exactly where it stopped, up to the Steps setting")
else:
    buttons[0].button("Start", key="start", type="primary", on_click=act, args=("start",),
                      disabled=config is None or running or not seated, width="content",
                      icon=":material/play_arrow:", help="Train with the settings on the left (resumes a paused run)")
if controls and run is not None and run.status == RunStatus.PAUSED:
    buttons[1].button("Resume", key="pause", on_click=control, args=("resume",), width="content",
                      icon=":material/play_arrow:", help="Continue training the paused run")
else:
    buttons[1].button("Pause", key="pause", on_click=control, args=("pause",), disabled=not running,
                      width="content", icon=":material/pause:",
                      help="Halt training after the current step; Resume continues it")
buttons[2].button("Step", key="step", on_click=act, args=("step",),
                  disabled=config is None or running or not controls or not seated, width="content",
                  icon=":material/skip_next:", help="One training step, then pause")
buttons[3].button("Stop", key="stop", on_click=control, args=("stop",), icon=":material/stop:",
                  disabled=run is None or not controls or not (run.active or run.status == RunStatus.QUEUED),
                  width="content",
                  help="End the run (it is saved and can be continued with Train on), or leave the queue")
buttons[4].button("Reset", key="reset", on_click=reset, width="content", icon=":material/restart_alt:",
                  help="Forget the current run (it stays in the list) so Start begins a new one")
show_refusal("train")
if config is not None and not running:
    cost = estimate(config, build_task(config, custom))
    note = f"Estimated cost on this machine: {cost.describe()}."
    if cost.seconds_per_step > WARN_SECONDS_PER_STEP:
        st.warning(f"{note} That is slow: a smaller hidden size, batch or length trains in seconds.")
    else:
        st.caption(note)

if run is not None and config is not None:
    run_config = run.snapshot().config
    live = {name: getattr(config, name) for name in LIVE_SETTINGS
            if getattr(config, name) != getattr(run_config, name)}
    if live and run.active and controls:  # a viewer's sliders move only their own sidebar
        run.set_live(live)
    fixed = [label(name) for name, value in config.as_dict().items()
             if name not in (*LIVE_SETTINGS, "steps", "eval_every") and value != getattr(run_config, name)]
    if fixed:
        st.info(f"Changed {', '.join(fixed)}: these shape the model or the data, so they apply to a new run. "
                "Press **Reset**, then **Start**.")


def preview_of(config: TrainConfig, custom: CustomPairs | None) -> TaskPreview | None:
    try:
        return task_preview(config, custom)
    except TaskError:
        return None  # checked_config has shown why


def draw_model_and_task(config: TrainConfig, preview: TaskPreview, gamma: float, gamma_note: str) -> None:
    """The model the settings build (with its sizes and parameter count) and the task it will learn."""
    parts = parameter_counts(config, preview.src_vocab_size, preview.tgt_vocab_size)
    sizes = DiagramSizes(preview.src_vocab_size, preview.tgt_vocab_size, config.emb_dim, config.hidden_dim,
                         config.num_layers, parts, config.cell, config.attention, config.reverse_source == "on",
                         config.architecture, config.heads, config.positions)
    with st.container(key="model_diagram"):
        st.markdown(f"**The model: {sum(parts.values()):,} parameters**")
        st.graphviz_chart(model_diagram(sizes, gamma, gamma_note), width="content")  # natural size: readable text
        explained(st, notes.DIAGRAM)
    with st.container(key="task_preview"):
        st.markdown("**The task, as these settings make it**")
        pairs, facts = st.columns([2, 3])
        pairs.dataframe(pd.DataFrame(preview.examples, columns=["source", "target"]), hide_index=True,
                        width="stretch")
        low, high = preview.src_lengths
        facts.markdown(
            f"Source vocabulary: {' '.join(preview.src_symbols)} ({len(preview.src_symbols)} symbols)  \n"
            f"Target vocabulary: {' '.join(preview.tgt_symbols[:40])}"
            f"{' …' if len(preview.tgt_symbols) > 40 else ''} ({len(preview.tgt_symbols)} symbols)  \n"
            f"Lengths: source {low} to {high}, target {preview.tgt_lengths[0]} to {preview.tgt_lengths[1]} tokens  \n"
            f"A random model scores about **{preview.chance_accuracy:.1%}** token accuracy (1/|V|, |V| = "
            f"{preview.tgt_vocab_size} with the reserved tokens) and a loss of **{preview.chance_loss:.2f}** (ln|V|).")


def draw_progress_and_loss(run: Run, snapshot: TrainingSnapshot) -> None:
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
    chance = preview.chance_loss if preview else None
    # side by side from about 1,100 px; narrower, the γ chart wraps below rather than cut its toolbar and help
    row = st.container(horizontal=True, key="loss_and_gamma")
    loss_column, gamma_column = row.container(width=540), row.container(width=360)
    chart(loss_column, loss_figure(snapshot.rows, st.session_state.smoothing, st.session_state.log_y, changes,
                                   note, snapshot.total_steps, chance), "loss_chart", notes.LOSS)
    chart(gamma_column, gamma_figure(snapshot.rows, changes, snapshot.total_steps), "gamma_chart", notes.GAMMA)


def draw_evaluation(snapshot: TrainingSnapshot) -> None:
    """What changes at each evaluation: accuracy, predictions, the state preview."""
    last = next((row for row in reversed(snapshot.rows) if EVALUATED in row), None)
    if last:
        cards = st.container(horizontal=True, key="train_metrics")  # wraps at 800 px instead of cutting labels
        cards.metric("Validation loss, free-running", f"{last[Metric.FR_LOSS]:.3f}", width="content")
        cards.metric("Token accuracy, teacher-forced", f"{last[Metric.TF_TOKEN_ACC]:.1%}", width="content")
        cards.metric("Token accuracy, free-running", f"{last[Metric.FR_TOKEN_ACC]:.1%}", width="content",
                        delta=f"gap {points(last[Metric.TF_TOKEN_ACC] - last[Metric.FR_TOKEN_ACC])}",
                        delta_color="off", delta_arrow="off",
                        help="The exposure-bias gap, as on every page: teacher-forced minus free-running token "
                             "accuracy, in percentage points")
        cards.metric("Exact match (free-running)", f"{last[Metric.FR_EXACT]:.1%}", width="content")
    # Side by side from about 1,100 px; narrower, the table wraps below the chart rather than cut a column
    row = st.container(horizontal=True, key="accuracy_and_predictions")
    accuracy_column, predictions_column = row.container(width=440), row.container(width=440)
    changes = [(change.step, change.text) for change in snapshot.changes]
    eval_every = snapshot.config.eval_every
    chart(accuracy_column, accuracy_figure(snapshot.rows, changes, snapshot.total_steps, eval_every,
                                           preview.chance_accuracy if preview else None), "accuracy_chart",
          notes.ACCURACY)
    with predictions_column:
        st.markdown("**Sample predictions** (free-running, validation examples)")
        if snapshot.predictions:
            st.dataframe(pd.DataFrame(snapshot.predictions), hide_index=True, width="stretch",
                         column_order=("correct", "source", "target", "prediction"),  # the verdict stays in view
                         column_config={"correct": st.column_config.CheckboxColumn("correct", width="small")})
        else:
            st.caption("Predictions appear at the first evaluation.")
    state_preview(snapshot)
    row = st.container(horizontal=True, key="lengths_and_positions")  # side by side when wide, else one under one
    left, right = row.container(width=450), row.container(width=450)
    chart(left, length_figure({forcing_label(snapshot.config): [snapshot.exact_by_length]}, snapshot.config),
          "train_lengths", notes.ARM_CHARTS[LENGTHS])
    if run is not None and run.status in FINAL_STATUSES:  # scored once the model stops changing
        compounding_errors(right, run, "train_positions")
        st.markdown("**Does it recover from a wrong token?** The validation examples with one wrong token fed at "
                    "each position in turn.")
        recovery_view(st, exposures("train_probe", (run.id, run.step), run.models, drift=False), "train")


preview = preview_of(config, custom) if config is not None else None
if run is not None:
    chart_options = st.columns(3)  # a sixth of 800 px cut "Log scale" to "L"
    chart_options[0].slider("Smoothing", 0.0, 0.99, 0.6, 0.01, key="smoothing",
                            help="Exponential moving average of the training loss, as in TensorBoard")
    chart_options[1].toggle("Log scale", key="log_y", help="Loss on a logarithmic axis: late, small changes show")
    shown_status = run.status  # the buttons above were drawn for this status
    polling = shown_status in (RunStatus.RUNNING, RunStatus.QUEUED)

    @st.fragment(run_every=CURVES_SECONDS if polling else None)
    def live_curves() -> None:
        queue_place(run)
        draw_progress_and_loss(run, run.snapshot())
        if run.status != shown_status:
            st.rerun(scope="app")  # the buttons and the timers follow the new status at once

    @st.fragment(run_every=EVALUATION_SECONDS if polling else None)
    def live_evaluation() -> None:
        draw_evaluation(run.snapshot())

    live_curves()
    live_evaluation()
    if preview is not None:  # drawn at each rerun, not polled: the browser's graph layout slows a page-open run;
        snapshot = run.snapshot()  # the γ chart follows γ live
        gamma = next((row[Metric.GAMMA] for row in reversed(snapshot.rows) if Metric.GAMMA in row),
                     snapshot.config.teacher_forcing_ratio)
        with st.expander("The model and the task", expanded=False):
            draw_model_and_task(snapshot.config, preview, gamma, f"at step {snapshot.step:,}; the γ chart is live")
else:
    st.markdown(f"**{TASKS[setting_value('task')].description}.** Press **Start** to train with the "
                "settings on the left; the curves, hidden states and predictions update live while it trains.")
    if config is not None and preview is not None:
        gamma_note = "set" if config.schedule == "constant" else f"start of the {config.schedule} schedule"
        draw_model_and_task(config, preview, config.forcing_schedule().ratio(0), gamma_note)
        empty_loss, empty_accuracy = st.columns(2)
        chart(empty_loss, loss_figure([], total_steps=config.steps, chance_loss=preview.chance_loss), "loss_chart",
              notes.LOSS)
        chart(empty_accuracy, accuracy_figure([], total_steps=config.steps, first_evaluation=config.eval_every,
                                              chance_accuracy=preview.chance_accuracy), "accuracy_chart",
              notes.ACCURACY)

runs_panel(RunKind.TRAIN, "train_run_id", "run", lambda opened: load_settings(opened.snapshot().config),
           live_metrics=lambda: metrics_csv(run.snapshot().rows) if run is not None else "",
           current=run.id if run is not None else None)
