"""Compare ratios: several teacher-forcing ratios trained together, live overlaid curves, a table and a reading."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from playground.analysis.compare import (
    DEFAULT_RATIOS,
    MAX_SEEDS,
    TRADE_OFF_EXAMPLE,
    CompareConfig,
    CompareEngine,
    CompareSnapshot,
    reading,
    summary_csv,
    summary_rows,
)
from playground.core.config import ConfigError
from playground.core.forcing import SCHEDULES
from playground.core.tasks import TaskError
from playground.plots.compare import curve_figure, gap, length_figure, metric
from playground.runs.registry import FINAL_STATUSES, BackgroundRun, RunError, registry
from playground.ui import attached_run, checked_config, keep_widget_state, load_settings, settings_sidebar

POLL_SECONDS = 2.0  # each redraw takes the GIL from the training thread (bench/page_cost.py); curves log every 5 steps
RATIO_CHOICES = tuple(round(i * 0.05, 2) for i in range(21))
TABLE_NAMES = {"ratio": "teacher forcing", "val_fr_exact": "free-running exact", "val_tf_exact": "teacher-forced exact",
               "val_fr_token_acc": "free-running tokens", "val_tf_token_acc": "teacher-forced tokens",
               "gap": "gap (tokens)", "train_loss": "train loss", "val_tf_loss": "TF val loss",
               "val_fr_loss": "FR val loss", "steps_to_90": "steps to 90% FR exact", "wall_seconds": "wall time (s)",
               "step": "step", "seeds": "seeds"}

st.title("Compare teacher-forcing ratios")
st.caption("Every ratio trains at once in one batched computation: same task, same batches, same coin draws, "
           "same initial weights for a seed. Only the chance of feeding the true previous token differs.")


def show_comparison_settings(run: BackgroundRun) -> None:
    shown: CompareConfig = run.engine.config
    load_settings(shown.base)
    st.session_state.update(compare_ratios=list(shown.ratios), compare_schedules=list(shown.schedules),
                            compare_seeds=shown.seeds)


run = attached_run("compare", "compare_run_id", "compare", show_comparison_settings)
keep_widget_state()
runs = registry()
for key, default in (("compare_ratios", list(DEFAULT_RATIOS)), ("compare_schedules", []), ("compare_seeds", 1)):
    st.session_state.setdefault(key, default)
    st.session_state[key] = st.session_state[key]
settings_sidebar(include_forcing=False)

left, middle, coin, right = st.columns([3, 2, 1.4, 0.8])
left.multiselect("Ratios γ (chance a decoder step reads the true previous token)", RATIO_CHOICES,
                 key="compare_ratios", format_func=lambda ratio: f"{ratio:g}")
decaying = [s for s in SCHEDULES if s != "constant"]
middle.multiselect("Decaying schedules (from γ = 1 to 0)", decaying, key="compare_schedules",
                   format_func=lambda s: s.replace("_", " "))
coin.radio("Coin", ["step", "token"], key="cfg_coin", format_func={"step": "per step", "token": "per token"}.get,
           help="One shared draw per decoder step (whole batch) or per target token")
right.number_input("Seeds", 1, MAX_SEEDS, key="compare_seeds",
                   help="Each seed starts from its own initial weights; curves show mean ± std")


def checked_compare_config() -> tuple[CompareConfig | None, list[str]]:
    """The comparison the widgets describe now (read afresh, as `checked_config` does for one run)."""
    base, problems = checked_config(include_forcing=False)
    if base is None:
        return None, problems
    state = st.session_state
    try:
        return CompareConfig.build(base, sorted(state.compare_ratios), state.compare_schedules,
                                   int(state.compare_seeds)), []
    except ConfigError as error:
        return None, error.problems


config, problems = checked_compare_config()
for problem in problems:
    st.error(problem)


def start() -> None:
    config, _ = checked_compare_config()
    if config is None:
        return  # the rerun shows the problems
    try:
        engine = CompareEngine(config)
        new_run = runs.create(f"compare-{config.base.task}", engine, config.base)
        new_run.start()
        st.session_state.compare_run_id = st.query_params["compare"] = new_run.id
    except (RunError, ConfigError, TaskError) as error:
        st.session_state.compare_error = str(error)


def stop() -> None:
    if run is not None:
        run.stop()


def load_example() -> None:
    load_settings(TRADE_OFF_EXAMPLE)
    st.session_state.update(compare_ratios=list(DEFAULT_RATIOS), compare_schedules=[], compare_seeds=1)


running = run is not None and run.active
buttons = st.columns([1, 1, 3, 3])
buttons[0].button("Start", key="compare_start", type="primary", on_click=start, disabled=config is None or running)
buttons[1].button("Stop", key="compare_stop", on_click=stop, disabled=not running)
buttons[2].button("Example: longer sequences", key="compare_example", on_click=load_example, disabled=running,
                  help=f"Reverse {TRADE_OFF_EXAMPLE.min_len} to {TRADE_OFF_EXAMPLE.max_len} symbols, hidden size "
                       f"{TRADE_OFF_EXAMPLE.hidden_dim}, {TRADE_OFF_EXAMPLE.steps} steps: about a minute on 2 CPU "
                       "cores, and the ratios differ (the default task is easy enough for all to reach ~99%)")
if message := st.session_state.pop("compare_error", None):
    st.error(message)


def show(snapshot: CompareSnapshot, status: str) -> None:
    st.progress(min(snapshot.step / snapshot.total_steps, 1.0),
                text=f"{status}: step {snapshot.step} of {snapshot.total_steps} · {len(snapshot.rows)} models · "
                     f"{snapshot.seconds:.1f} s")
    charts = [
        (metric("train_loss"), "Training loss (each model's own ratio)", "cross-entropy (nats/token)", False),
        (metric("val_fr_exact"), "Free-running exact match (validation)", "sequences fully right", True),
        (metric("val_tf_loss"), "Validation loss, teacher-forced (γ = 1)", "cross-entropy (nats/token)", False),
        (metric("val_fr_loss"), "Validation loss, free-running (greedy)", "cross-entropy (nats/token)", False),
        (gap, "Exposure-bias gap: teacher-forced minus free-running token accuracy", "accuracy gap", True),
    ]
    columns = st.columns(2)
    for i, (value, title, y_title, percent) in enumerate(charts):
        columns[i % 2].plotly_chart(curve_figure(snapshot, value, title, y_title, percent), key=f"compare_chart_{i}",
                                    width="stretch")
    columns[1].plotly_chart(length_figure(snapshot), key="compare_lengths", width="stretch")
    st.caption("The gap uses token accuracy: with greedy decoding a sequence that is fully right under teacher "
               "forcing fed itself the true tokens, so its free-running copy is right too and an exact-match gap "
               "is always 0.")
    table = summary_rows(snapshot)
    if not table:
        return
    st.subheader("Result")
    st.markdown(reading(table))
    frame = pd.DataFrame(table).rename(columns=TABLE_NAMES)
    percent_columns = [TABLE_NAMES[n] for n in ("val_fr_exact", "val_tf_exact", "val_fr_token_acc",
                                                "val_tf_token_acc", "gap")]
    st.dataframe(frame.style.format("{:.1%}", subset=percent_columns).format(
        "{:.4f}", subset=[TABLE_NAMES[n] for n in ("train_loss", "val_tf_loss", "val_fr_loss")]),
        hide_index=True, width="stretch")
    st.download_button("Download CSV", summary_csv(table), file_name="compare.csv", mime="text/csv",
                       key="compare_download")


@st.fragment(run_every=POLL_SECONDS if running else None)
def live() -> None:
    if run is None:
        st.info("Choose ratios and press Start. Curves appear after the first steps.")
        return
    show(run.snapshot(), run.status)
    if run.status in FINAL_STATUSES:
        if run.message:
            st.warning(f"The comparison ended ({run.status}): {run.message}")
        if running:  # re-register the fragment without a timer
            st.rerun()


live()
