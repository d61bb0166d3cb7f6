"""Study: teacher-forcing arms over seeds, tasks, settings and sizes, trained on Ray, with statistics."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from playground.core.config import SETTINGS, VARIANT_SETTINGS, ConfigError, TrainConfig
from playground.core.forcing import SCHEDULES
from playground.core.tasks import TASKS
from playground.course import term_link
from playground.experiments import MAX_STUDY_SEEDS, RATIO_CHOICES, STEPS_TO_TARGET, StudyConfig
from playground.plots import has_ratios, notes, ratio_figure, study_figure, study_lines
from playground.plots.length_figures import length_figure
from playground.reports import GAP, study_reading, summary_csv, table_rows
from playground.reports.comparison_table import LENGTHS
from playground.runs import ADDRESS_ENV, BackgroundRun, RunPlan, StudySnapshot
from playground.runs.registry import registry
from playground.training import Metric, RunKind, RunStatus
from playground.ui import (
    BOUND,
    attached_run,
    chart,
    check_control,
    guarded_action,
    link_text,
    live_run_view,
    may_control,
    polls,
    schedule_name,
    script_download,
    seat_notice,
    session_owner,
    share_link,
    share_slot,
    show_refusal,
    visible_runs,
)

Run = BackgroundRun[StudySnapshot]
POLL_SECONDS = 1.0  # the page only reads reports: training happens in Ray workers, not in this process
HIDDEN_CHOICES = (8, 16, 32, 64, 128, 256, 512)
# widgets, in VARIANT_SETTINGS order
MODEL_KEYS = ("study_cells", "study_attentions", "study_reverse_sources", "study_architectures", "study_position_kinds",
              "study_eos_modes")
DEFAULTS = {"study_tasks": ["reverse", "sort"], "study_max_lens": [8, 16], "study_digits": [3],
            "study_hiddens": [64], "study_ratios": [0.0, 0.5, 1.0], "study_schedules": ["linear"],
            "study_seeds": 5, "study_steps": 1500, "study_eval_every": 100, "study_address": "",
            **{key: [] for key in MODEL_KEYS}}

st.title("Study: teacher forcing, measured")
st.caption(f"A grid of comparisons. In every condition (task, setting, hidden size) all {term_link('arm', 'arms')} x "
           f"{term_link('seed', 'seeds')} train together in one Ray task, on the same batches and initial weights "
           f"per seed, so arms are compared seed by seed ({term_link('paired test', 'paired tests')}, "
           f"{term_link('p-value', 'p-values')}, {term_link('confidence interval', 'confidence intervals')}).")

share = share_slot("study")
GRID_ALLOWED = {"study_tasks": ", ".join(name for name in TASKS if name != "custom"), "study_max_lens": "2 to 50",
                "study_digits": "1 to 9", "study_hiddens": ", ".join(map(str, HIDDEN_CHOICES)),
                "study_ratios": ", ".join(map(link_text, RATIO_CHOICES)),
                "study_schedules": ", ".join(schedule_name(s) for s in SCHEDULES if s != "constant"),
                "study_seeds": f"2 to {MAX_STUDY_SEEDS}", "study_steps": "1 to 1,000,000",
                "study_eval_every": "1 to 1,000,000",
                **{key: ", ".join(SETTINGS[name].options) for key, name in zip(MODEL_KEYS, VARIANT_SETTINGS,
                                                                                strict=True)}}
runs = registry()
STEP_BOUNDS = (1, 1_000_000)


def show_study_settings(run: Run) -> None:
    """The grid of an opened study, in its widgets (and so in the link)."""
    shown = run.snapshot().config
    st.session_state.update(study_tasks=list(shown.tasks), study_max_lens=list(shown.max_lens),
                            study_digits=list(shown.digits), study_hiddens=list(shown.hiddens),
                            study_ratios=list(shown.ratios), study_schedules=list(shown.schedules),
                            study_seeds=shown.seeds, study_steps=shown.base.steps,
                            study_eval_every=shown.base.eval_every,
                            **{key: list(values) for key, values in zip(MODEL_KEYS, shown.variants, strict=True)})


def grid_texts(values: dict[str, Any]) -> dict[str, str | list[str]]:
    """The grid as its bound widgets write it in the link."""
    shown = {"study_ratios": link_text, "study_schedules": schedule_name}
    return {name: [shown.get(name, str)(item) for item in value] if isinstance(value, list)
            else shown.get(name, str)(value) for name, value in values.items() if name != "study_address"}


run: Run | None = attached_run(RunKind.STUDY, "study_run_id", "study", show_study_settings)

length_tasks = [name for name, info in TASKS.items() if info.uses_lengths]
number_tasks = [name for name, info in TASKS.items() if info.uses_digits]
grid = [*st.columns(2), *st.columns(2)]  # two a row: at 800 px four would hide the chosen values
grid[0].multiselect("Tasks", [name for name in TASKS if name != "custom"], DEFAULTS["study_tasks"], key="study_tasks",
                    **BOUND,
                    help="Each task is its own set of conditions. " + "; ".join(
                        f"{name}: {TASKS[name].description}" for name in TASKS if name != "custom"))
grid[1].multiselect("Max lengths (symbols)", list(range(2, 51)), DEFAULTS["study_max_lens"], key="study_max_lens",
                    **BOUND,
                    help=f"Longest source sequence for the length tasks ({', '.join(length_tasks)}); one condition "
                         "per value. Longer sequences make exposure bias show.")
grid[2].multiselect("Digits per number", list(range(1, 10)), DEFAULTS["study_digits"], key="study_digits", **BOUND,
                    help=f"Largest number of digits for the number tasks ({', '.join(number_tasks)}); one condition "
                         "per value.")
grid[3].multiselect("Hidden sizes", HIDDEN_CHOICES, DEFAULTS["study_hiddens"], key="study_hiddens", **BOUND,
                    help="Units in each LSTM layer; one condition per size.")
arms = [*st.columns(2), *st.columns(3)]
arms[0].multiselect("Ratios γ", RATIO_CHOICES, DEFAULTS["study_ratios"], key="study_ratios", **BOUND,
                    format_func=link_text,
                    help="Constant teacher-forcing ratios: the chance a decoder step reads the true previous token.")
arms[1].multiselect("Decaying schedules", [s for s in SCHEDULES if s != "constant"], DEFAULTS["study_schedules"],
                    key="study_schedules", **BOUND, format_func=schedule_name,
                    help="Schedules that start at γ = 1 and decay to 0 over training.")
arms[2].number_input("Seeds", 2, MAX_STUDY_SEEDS, DEFAULTS["study_seeds"], key="study_seeds", **BOUND,
                     help="Repeats of every arm with its own initial weights and batches; the confidence intervals "
                          "and paired tests are over seeds (at least 2, more for narrower intervals).")
arms[3].number_input("Steps per condition", *STEP_BOUNDS, DEFAULTS["study_steps"], step=100, key="study_steps",
                     **BOUND,
                     help="Training steps of every model in every condition (the step budget).")
arms[4].number_input("Evaluate every", *STEP_BOUNDS, DEFAULTS["study_eval_every"], step=10,
                     key="study_eval_every", **BOUND,
                     help="Steps between evaluations; each one reports the condition's partial results here.")
# arms may also differ by model: the product with the ratios and schedules; two rows, readable at 800 px
models = [column for _ in range(2) for column in st.columns(3)]
for column, key, name in zip(models, MODEL_KEYS, VARIANT_SETTINGS, strict=True):
    column.multiselect(f"Compare {SETTINGS[name].label.lower()}", SETTINGS[name].options, [], key=key, **BOUND,
                       help=f"Each choice is one more arm per ratio and schedule in every condition (empty: the "
                            f"specification's model). {SETTINGS[name].help}")
if not runs.shared:  # a class's server: only whoever starts it names a cluster (PLAYGROUND_RAY_ADDRESS)
    st.text_input("Ray cluster address", key="study_address", placeholder="empty: this machine",
                  help=f"Empty: a local Ray instance (one worker per CPU core), or ${ADDRESS_ENV} when it is set. "
                       "Otherwise HEAD:6379 of a cluster this machine is a node of (README, Studies on a cluster).")


def checked_study() -> tuple[StudyConfig | None, list[str]]:
    state = st.session_state
    try:
        base = TrainConfig(steps=int(state.study_steps), eval_every=int(state.study_eval_every)).validate()
        return StudyConfig.build(base, state.study_tasks, state.study_max_lens, state.study_digits,
                                 state.study_hiddens, sorted(state.study_ratios), state.study_schedules,
                                 int(state.study_seeds), [state[key] for key in MODEL_KEYS]), []
    except ConfigError as error:
        return None, error.problems


config, problems = checked_study()
for problem in problems:
    st.error(problem)
share_link(share, grid_texts({name: st.session_state.get(name, default) for name, default in DEFAULTS.items()}),
           grid_texts(DEFAULTS), {"study": run.id} if run is not None else None, GRID_ALLOWED)
if config is not None:
    models = config.models_per_condition
    st.caption(f"{len(config.grid())} conditions x {models} models each ({models // config.seeds} "
               f"arms x {config.seeds} seeds), {config.base.steps:,} steps each.")


@guarded_action("study")
def start() -> None:
    config, _ = checked_study()
    if config is None:
        return
    address, workers = None, None
    if runs.classroom is None:
        address = st.session_state.study_address
    else:  # a class's server: the conditions train here, on as many workers as a seat may use
        workers = min(runs.classroom.per_seat, runs.max_active)
    new_run = runs.launch("study", RunPlan.study(config, address, workers), owner=session_owner())
    st.session_state.study_run_id = new_run.id


@guarded_action("study")
def resume() -> None:
    """Train the conditions of a stopped study that are not done; finished conditions are kept."""
    if run is not None:
        check_control(run.id)
        run.train_on(run.total_steps)


@guarded_action("study")
def stop() -> None:
    """Cancel the study's conditions (or take it out of the queue): its owner's button only."""
    if run is not None:
        check_control(run.id)
        run.stop(wait=5.0)


running = run is not None and run.active
controls = run is not None and may_control(run.id)
seated = seat_notice("study_login")
buttons = st.container(horizontal=True)  # one row that wraps at 800 px instead of cutting labels
buttons.button("Start", key="study_start", type="primary", on_click=start,
               disabled=config is None or running or not seated, icon=":material/play_arrow:", width="content",
               help="Start Ray if needed and submit one task per condition.")
buttons.button("Stop", key="study_stop", on_click=stop, icon=":material/stop:", width="content",
               disabled=not (controls and (running or run.status == RunStatus.QUEUED)),
               help="Cancel the conditions still training (or leave the queue); finished conditions are kept.")
buttons.button("Resume", key="study_resume", on_click=resume, icon=":material/play_arrow:", width="content",
               disabled=not controls or running or run.step >= run.total_steps,
               help="Re-submit only the conditions of this study that are not done (a stopped or reopened study).")
show_refusal("study")


def readable_table(rows: list[dict[str, Any]]) -> Styler:
    """The table as a person reads it: named columns, shares in %, the results next to the pinned condition and arm (at
    800 px the rest scrolls sideways); the CSV keeps the plain names, order and numbers."""
    names = {Metric.FR_EXACT: "free-running exact", Metric.FR_TOKEN_ACC: "free-running tokens",
             Metric.TF_TOKEN_ACC: "teacher-forced tokens", GAP: "gap (tokens)"}
    columns = {f"{name}{suffix}": f"{label}{words}" for name, label in names.items()
               for suffix, words in (("", ""), ("_ci_low", ", CI low"), ("_ci_high", ", CI high"))}
    cut = {f"{name}_ci_clipped": f"{label}, CI cut to its range" for name, label in names.items()}
    frame = pd.DataFrame(rows)
    frame = frame.rename(columns=columns | cut | {STEPS_TO_TARGET: "steps to 90% FR exact",
                                            "seeds_reaching_90": "seeds reaching 90%"})
    said_by_condition = ["task", "hidden", "step"]  # the condition's label names them: last, so the results come first
    frame = frame[[name for name in frame.columns if name not in said_by_condition] + said_by_condition]
    return frame.style.format(na_rep="—").format("{:.1%}", subset=list(columns.values()), na_rep="—").format(
        "{:,.0f}", subset=["steps to 90% FR exact"], na_rep="not reached")


def show(snapshot: StudySnapshot, status: str) -> None:
    eta = snapshot.eta_seconds
    st.progress(snapshot.conditions_done / max(snapshot.conditions_total, 1),
                text=f"{status}: {snapshot.conditions_done} of {snapshot.conditions_total} conditions done · step "
                     f"{snapshot.step:,} of {snapshot.total_steps:,} · {snapshot.seconds:.0f} s"
                     + (f" · about {eta:.0f} s left" if eta is not None and status == "running" else ""))
    if snapshot.address:
        st.caption(f"Ray cluster: {snapshot.address}")
    if not any(summary["arms"] for summary in snapshot.summaries):
        st.info("Waiting for the first evaluation of a condition (Ray and its workers take a few seconds to start).")
        return
    for summary in snapshot.summaries:
        if summary["failed"]:
            st.warning(f"Condition {summary['label']} failed twice and is left out: {summary['failed']}")
    chart(st, study_figure(snapshot.summaries), "study_chart", notes.STUDY)
    conditions = {condition.index: condition for condition in snapshot.config.conditions()}
    reported = {summary["condition"]: summary for summary in snapshot.summaries if summary["arms"]}
    shown = st.selectbox("Exact match by length and by γ in the condition", list(reported),
                         format_func=lambda index: reported[index]["label"], key="study_length_condition", width=420)
    if shown is not None:
        chart(st, length_figure({row["arm"]: [row["exact_by_length"]] for row in reported[shown]["arms"]},
                                conditions[shown].compare.base,
                                title="Free-running exact match by length (mean over seeds)"),
              "study_lengths", notes.ARM_CHARTS[LENGTHS])
        if has_ratios(lines := study_lines(reported[shown]["arms"])):
            chart(st, ratio_figure(lines, conditions[shown].compare.seeds), "study_by_gamma", notes.RATIOS)
    st.subheader("Reading")
    st.markdown(study_reading(snapshot.summaries))
    rows = table_rows(snapshot.summaries)
    st.markdown("**Every arm of every condition** (means over seeds; the CI columns are the 95% intervals, clipped to "
                "0-100% for shares and flagged where cut; gap = "
                "teacher-forced minus free-running token accuracy; steps to 90% over the seeds that got there)")
    with st.container(key="study_table"):
        st.dataframe(readable_table(rows), hide_index=True, width="stretch",  # scrolls sideways below ~1,600 px
                     column_config={name: st.column_config.Column(pinned=True) for name in ("condition", "arm")})
    st.download_button("Download CSV", summary_csv(rows), file_name="study.csv", mime="text/csv",
                       key="study_download", icon=":material/download:",
                       help="The whole table, one row per condition and arm, for a spreadsheet or a paper")
    labels = {summary["condition"]: summary["label"] for summary in snapshot.summaries}
    row = st.container(horizontal=True, vertical_alignment="bottom")  # wraps at 800 px instead of cutting the button
    condition = row.selectbox("A condition as a PyTorch script", list(labels), format_func=labels.get,
                              key="study_script_condition", width=320,
                              help="Every arm and seed of one condition, trained one after another by a standalone "
                                   "script")
    script_download(row, run.id, "study_script", condition)


live_run_view(run, polls(run), POLL_SECONDS, "Choose the grid and press Start. Results appear as conditions evaluate.",
              "study", show)


@guarded_action("study")
def open_study(run_id: str) -> None:
    opened = runs.get(run_id)
    st.session_state.study_run_id = run_id
    show_study_settings(opened)


studies = [summary for summary in visible_runs() if summary.kind == RunKind.STUDY]
if studies:
    with st.expander("Studies: open one"):
        chosen = st.selectbox("Study", [s.id for s in studies], key="study_open_choice",
                              help="Studies of this runs folder, the CLI's included.",
                              format_func=lambda run_id: next(f"{s.name} ({s.status}, {s.id})"
                                                              for s in studies if s.id == run_id))
        st.button("Open", key="study_open", help="Show this study's results and its grid.", on_click=open_study,
                  args=(chosen,))
