"""Compare ratios: several teacher-forcing ratios trained together, live overlaid curves, a table and a reading."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from playground.core.config import FORCING_SETTINGS, SETTINGS, VARIANT_SETTINGS, ConfigError
from playground.core.forcing import SCHEDULES
from playground.core.tasks import CustomPairs
from playground.course import term_link
from playground.experiments import (
    DEFAULT_RATIOS,
    MAX_COMPARE_SEEDS,
    RATIO_CHOICES,
    TRADE_OFF_EXAMPLE,
    TRADE_OFF_RATIOS,
    CompareConfig,
    CompareSnapshot,
)
from playground.plots import arm_figure, compare_lines, has_ratios, notes, ratio_figure
from playground.reports import GAP, LENGTHS, comparison_reading, summary_csv, summary_rows
from playground.runs import BackgroundRun, RunPlan
from playground.runs.registry import registry
from playground.training import FINAL_STATUSES, Metric, RunKind, RunStatus
from playground.ui import (
    BOUND,
    attached_run,
    chart,
    chart_format_picker,
    check_control,
    checked_config,
    compounding_errors,
    current_settings,
    drift_view,
    exposures,
    guarded_action,
    link_text,
    live_run_view,
    load_settings,
    may_control,
    polls,
    recovery_view,
    runs_panel,
    schedule_name,
    seat_notice,
    session_owner,
    setting_widget,
    settings_share,
    settings_sidebar,
    share_slot,
    show_refusal,
)

Run = BackgroundRun[CompareSnapshot]
PER_ARM = ("teacher_forcing_ratio", "schedule")  # each arm sets these; the other forcing settings are shared
SCHEDULE_SETTINGS = {"linear": ("decay_steps",), "exponential": ("exp_k",), "inverse_sigmoid": ("sigmoid_k",)}
# widgets, in VARIANT_SETTINGS order
MODEL_KEYS = ("compare_cells", "compare_attentions", "compare_reverse_sources", "compare_architectures",
              "compare_position_encodings", "compare_eos_modes")
POLL_SECONDS = 2.0  # each redraw takes the GIL from the training thread (bench/page_cost.py); curves log every 5 steps
TABLE_NAMES = {"label": "arm", Metric.FR_EXACT: "free-running exact",
               Metric.FR_TOKEN_ACC: "free-running tokens", Metric.TF_TOKEN_ACC: "teacher-forced tokens",
               GAP: "gap (tokens)", Metric.TRAIN_LOSS: "train loss", Metric.TF_LOSS: "TF val loss",
               Metric.FR_LOSS: "FR val loss", "steps_to_90": "steps to 90% FR exact", "wall_seconds": "wall time (s)",
               "step": "step", "seeds": "seeds", "gap_peak": "gap peak", "gap_peak_step": "gap peak step",
               "parameters": "parameters"}
# the columns that answer the question first, so they stay in view on a 1400 px screen
TABLE_ORDER = ("label", Metric.FR_EXACT, GAP, "steps_to_90", "wall_seconds", "gap_peak", "gap_peak_step",
               Metric.FR_TOKEN_ACC, Metric.TF_TOKEN_ACC, Metric.TRAIN_LOSS, Metric.TF_LOSS, Metric.FR_LOSS,
               "parameters", "step", "seeds")
NOT_YET = "not yet"  # a figure a run has not reached or measured yet: never shown as None
CHARTS = (Metric.TRAIN_LOSS, Metric.FR_EXACT, Metric.TF_LOSS, Metric.FR_LOSS, GAP, LENGTHS)

heading = st.empty()
share = share_slot("compare")


def show_comparison_settings(run: Run) -> None:
    shown = run.snapshot().config
    load_settings(shown.base)
    st.session_state.update(compare_ratios=list(shown.ratios), compare_schedules=list(shown.schedules),
                            compare_seeds=shown.seeds,
                            **{key: list(values) for key, values in zip(MODEL_KEYS, shown.variants, strict=True)})


run: Run | None = attached_run(RunKind.COMPARE, "compare_run_id", "compare", show_comparison_settings)
runs = registry()
settings_sidebar(skip=FORCING_SETTINGS)  # the forcing settings are drawn on the page, next to the arms
chart_format_picker()

st.multiselect("Ratios γ (chance a decoder step reads the true previous token)", RATIO_CHOICES,
               list(DEFAULT_RATIOS), key="compare_ratios", format_func=link_text, **BOUND,
                 help="Each ratio is one constant-γ model; all train together on the same batches")
decaying = [s for s in SCHEDULES if s != "constant"]
middle, coin, right = st.columns([2, 1.4, 1])  # the ratios take a row of their own: they stay readable at 800 px
middle.multiselect("Decaying schedules (from γ = 1 to 0)", decaying, [], key="compare_schedules", **BOUND,
                   format_func=schedule_name,
                   help="Scheduled sampling: γ starts at 1 and decays to the final γ (formulas in the Glossary)")
setting_widget(coin, "coin")
right.number_input("Seeds", 1, MAX_COMPARE_SEEDS, 1, key="compare_seeds", **BOUND,
                   help="Each seed starts from its own initial weights and draws its own batches; curves show "
                        "the mean and a band of ± one standard deviation, so you can see seed noise.")
# arms may also differ by model: the product with the ratios and schedules; two rows, readable at 800 px
models = [column for _ in range(2) for column in st.columns(3)]
for column, key, name in zip(models, MODEL_KEYS, VARIANT_SETTINGS, strict=True):
    column.multiselect(f"Compare {SETTINGS[name].label.lower()}", SETTINGS[name].options, [], key=key, **BOUND,
                       help=f"Each choice is one more model per ratio and schedule (empty: the sidebar's). "
                            f"{SETTINGS[name].help}")
chosen_schedules = st.session_state.compare_schedules
schedule_settings = [*(("tf_end",) if chosen_schedules else ()),
                     *(name for schedule in chosen_schedules for name in SCHEDULE_SETTINGS.get(schedule, ()))]
if schedule_settings:
    schedule_columns = st.columns(len(schedule_settings))
    for column, name in zip(schedule_columns, schedule_settings, strict=True):
        setting_widget(column, name)


def checked_compare_config() -> tuple[CompareConfig | None, CustomPairs | None, list[str]]:
    """The comparison the widgets describe now (read afresh, as `checked_config` does for one run)."""
    base, custom, problems = checked_config(skip=PER_ARM, force=schedule_settings)
    if base is None:
        return None, None, problems
    state = st.session_state
    try:
        return CompareConfig.build(base, sorted(state.compare_ratios), state.compare_schedules,
                                   int(state.compare_seeds), variants=[state[key] for key in MODEL_KEYS]), custom, []
    except ConfigError as error:
        return None, None, error.problems


config, custom, problems = checked_compare_config()
differs = config.differs_by() if config is not None else []
with heading.container():
    st.title("Compare teacher-forcing ratios" if differs == ["teacher forcing"] else
             "Compare " + " and ".join(differs) if differs else "Compare")
    st.caption(f"Every {term_link('arm')} trains at once in one batched computation: same task, same batches, same "
               f"{term_link('coin')} draws, same initial weights for a {term_link('seed')}. Only "
               + (" and ".join(differs) if differs else "nothing yet: choose at least two arms")
               + (f" (the chance of feeding the true previous token, {term_link('teacher forcing')})"
                  if "teacher forcing" in differs else "") + (" differ." if len(differs) > 1 else " differs."))
for problem in problems:
    st.error(problem)
arms = {"compare_ratios": [link_text(ratio) for ratio in st.session_state.compare_ratios],
        "compare_schedules": [schedule_name(s) for s in st.session_state.compare_schedules],
        "compare_seeds": str(st.session_state.compare_seeds),
        **{key: list(st.session_state[key]) for key in MODEL_KEYS}}
settings_share(share, current_settings(skip=PER_ARM, force=schedule_settings), arms,
               {"compare_ratios": [link_text(ratio) for ratio in DEFAULT_RATIOS], "compare_schedules": [],
                "compare_seeds": "1", **{key: [] for key in MODEL_KEYS}},
               {"compare_ratios": ", ".join(map(link_text, RATIO_CHOICES)),
                "compare_schedules": ", ".join(map(schedule_name, decaying)),
                "compare_seeds": f"1 to {MAX_COMPARE_SEEDS}",
                **{key: ", ".join(SETTINGS[name].options) for key, name in zip(MODEL_KEYS, VARIANT_SETTINGS,
                                                                                strict=True)}},
               run={"compare": run.id} if run is not None else None)


@guarded_action("compare")
def start() -> None:
    config, custom, _ = checked_compare_config()
    if config is None:
        return  # the rerun shows the problems
    new_run = runs.launch(f"compare-{config.base.task}", RunPlan.compare(config, custom), owner=session_owner())
    st.session_state.compare_run_id = new_run.id


@guarded_action("compare")
def train_on(ended: Run) -> None:
    """Continue an ended comparison exactly where it was saved, with its own arms, up to the Steps setting: its
    owner's button only."""
    config, _, _ = checked_compare_config()
    if config is not None:
        check_control(ended.id)
        ended.train_on(config.base.steps)


@guarded_action("compare")
def stop() -> None:
    """End the comparison on screen (or take it out of the queue): its owner's button only."""
    if run is not None:
        check_control(run.id)
        run.stop(wait=3.0)


def load_example() -> None:
    load_settings(TRADE_OFF_EXAMPLE)
    st.session_state.update(compare_ratios=list(TRADE_OFF_RATIOS), compare_schedules=[], compare_seeds=1,
                            **{key: [] for key in MODEL_KEYS})


running = run is not None and run.active
stoppable = run is not None and (running or run.status == RunStatus.QUEUED) and may_control(run.id)
resumable = (run is not None and run.status in FINAL_STATUSES and config is not None
             and config.base.steps > run.step and may_control(run.id))
seated = seat_notice("compare_login")
buttons = [st.container(horizontal=True)] * 4  # one row that wraps at 800 px instead of cutting labels
buttons[0].button("Start", key="compare_start", type="primary", on_click=start,
                  disabled=config is None or running or not seated,
                  icon=":material/play_arrow:", width="content",
                  help="Train every ratio and schedule with the settings shown")
buttons[1].button("Stop", key="compare_stop", on_click=stop, disabled=not stoppable, icon=":material/stop:",
                  width="content", help="End the comparison (or leave the queue); its curves and table stay, and "
                                        "Train on continues it")
buttons[2].button("Train on", key="compare_train_on", on_click=train_on, args=(run,), disabled=not resumable,
                  icon=":material/fast_forward:", width="content",
                  help="Continue the comparison on screen exactly where it was saved (a stopped one, or one from "
                       "before a restart), with its own ratios and seeds, up to the Steps setting")
buttons[3].button("Example: longer sequences", key="compare_example", on_click=load_example, disabled=running,
                  icon=":material/science:",
                  help=f"Reverse {TRADE_OFF_EXAMPLE.min_len} to {TRADE_OFF_EXAMPLE.max_len} symbols, hidden size "
                       f"{TRADE_OFF_EXAMPLE.hidden_dim}, {TRADE_OFF_EXAMPLE.steps} steps, γ = 0, 0.5 and 1: about a "
                       "minute on 2 CPU cores (38 s measured with the page open), and the ratios differ (the "
                       "default task is easy enough for all to reach ~99%)")
show_refusal("compare")
if resumable and run is not None and config is not None:
    own = run.snapshot().config
    if (own.base.replace(steps=config.base.steps), sorted(own.ratios), own.schedules, own.seeds) != (
            config.base, sorted(config.ratios), config.schedules, config.seeds):
        st.info("The settings on this page differ from this comparison's own: **Train on** continues it with its "
                "own settings, **Start** begins a new comparison with the page's.")


def show(snapshot: CompareSnapshot, status: str) -> None:
    st.progress(min(snapshot.step / snapshot.total_steps, 1.0),
                text=f"{status}: step {snapshot.step} of {snapshot.total_steps} · {len(snapshot.rows)} models · "
                     f"{snapshot.seconds:.1f} s")
    columns = st.columns(2)
    for i, name in enumerate(CHARTS):
        chart(columns[i % 2], arm_figure(snapshot, name), f"compare_{name}", notes.ARM_CHARTS[name])
    if status in FINAL_STATUSES and run is not None:  # scored once the models stop changing
        compounding_errors(st, run, "compare_positions")  # full width: every arm's legend entry under it
        found = exposures("compare_probe", (run.id, run.step), run.models, drift=True)
        st.subheader("Does it recover from a wrong token?")
        recovery_view(st, found, "compare")
        st.subheader("Teacher-forced and free-running states drift apart")
        drift_view(st, found, "compare")
    st.caption("The gap uses token accuracy: with greedy decoding a sequence that is fully right under teacher "
               "forcing fed itself the true tokens, so its free-running copy is right too and an exact-match gap "
               "is always 0.")
    table = summary_rows(snapshot)
    if not table:
        return
    st.subheader("Result")
    st.markdown(comparison_reading(table))
    if has_ratios(lines := compare_lines(table)):
        chart(st, ratio_figure(lines, snapshot.seeds), "compare_by_gamma", notes.RATIOS)
    frame = pd.DataFrame(table)[list(TABLE_ORDER)].rename(columns=TABLE_NAMES)
    percent_columns = [TABLE_NAMES[n] for n in (Metric.FR_EXACT, Metric.FR_TOKEN_ACC, Metric.TF_TOKEN_ACC, GAP,
                                                "gap_peak")]
    losses = [TABLE_NAMES[n] for n in (Metric.TRAIN_LOSS, Metric.TF_LOSS, Metric.FR_LOSS)]
    st.dataframe(frame.style.format(na_rep=NOT_YET).format("{:.1%}", subset=percent_columns, na_rep=NOT_YET).format(
        "{:.4f}", subset=losses, na_rep=NOT_YET).format("{:.1f}", subset=[TABLE_NAMES["wall_seconds"]]).format(
        "{:,.0f}", subset=[TABLE_NAMES["steps_to_90"], TABLE_NAMES["gap_peak_step"],
                                TABLE_NAMES["parameters"]], na_rep=NOT_YET),
        hide_index=True, width="stretch", column_config={"arm": st.column_config.Column(pinned=True)})
    st.download_button("Download CSV", summary_csv(table), file_name="compare.csv", mime="text/csv",
                       key="compare_download")


live_run_view(run, polls(run), POLL_SECONDS, "Choose ratios and press Start. Curves appear after the first steps.",
              "comparison", show)
runs_panel(RunKind.COMPARE, "compare_run_id", "compare", show_comparison_settings,
           live_metrics=lambda: runs.metrics_file(run.id) if run is not None else b"",
           current=run.id if run is not None else None)
