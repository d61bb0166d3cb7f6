"""The Compare ratios page through AppTest: settings -> a real batched background run -> curves, table, reading."""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from playground.reports.comparison_table import comparison_reading, summary_rows
from playground.runs import registry as runs
from playground.runs.compare_engine import CompareEngine
from tests.conftest import new_app

pytestmark = pytest.mark.usefixtures("fresh_app")



def compare_page() -> AppTest:
    at = new_app().run()
    at.switch_page("app_pages/compare.py").run()
    for key, value in (("hidden_dim", 16), ("emb_dim", 8), ("steps", 30), ("eval_every", 10),
                       ("batch_size", 16)):
        at.number_input(key=key).set_value(value)
    return at.run()


@pytest.mark.slow
def test_defaults_offer_five_ratios_without_errors() -> None:
    at = compare_page()
    assert not at.exception and not at.error
    assert at.title[0].value == "Compare teacher-forcing ratios"
    assert at.multiselect(key="compare_ratios").value == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert not at.button(key="compare_start").disabled


def test_the_page_names_what_its_arms_differ_by() -> None:
    at = compare_page()
    at.multiselect(key="compare_ratios").set_value([1.0]).run()
    at.multiselect(key="compare_cells").set_value(["lstm", "gru"]).run()
    assert at.title[0].value == "Compare cell"
    assert "Only cell differs." in at.caption[0].value and "teacher forcing" not in at.caption[0].value


@pytest.mark.slow
def test_a_comparison_draws_one_curve_per_ratio_and_a_computed_reading() -> None:
    at = compare_page()
    at.multiselect(key="compare_ratios").set_value([0.0, 1.0]).run()
    at.number_input(key="compare_seeds").set_value(2).run()
    at.button(key="compare_start").click().run()
    run = runs.registry().get(at.session_state.compare_run_id)
    run.join(120)
    at.run()
    assert run.status == "finished" and not at.exception
    charts = {chart.key: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}
    assert {"compare_train_loss", "compare_val_fr_exact", "compare_val_tf_loss", "compare_val_fr_loss", "compare_gap",
            "compare_lengths", "compare_positions"} <= charts.keys()
    named = [trace["name"] for trace in charts["compare_train_loss"]["data"] if trace.get("showlegend", True)]
    assert named == ["γ = 0", "γ = 1"]
    assert "mean ± std over 2 seeds" in charts["compare_train_loss"]["layout"]["title"]["text"]
    legend = [trace["name"] for trace in charts["compare_positions"]["data"] if trace.get("showlegend", True)]
    assert legend == ["γ = 0", "γ = 1", "teacher-forced", "free-running", "free-running, earlier all right"]
    bands = [trace for trace in charts["compare_positions"]["data"] if trace.get("fill") == "toself"]
    assert len(bands) == 2 * 3  # each arm's two seeds as a band around each of the three lines
    table = at.dataframe[0].value
    assert list(table["arm"]) == ["γ = 0", "γ = 1"]
    assert (table["step"] == 30).all()
    text = " ".join(markdown.value for markdown in at.markdown)
    assert comparison_reading(summary_rows(run.snapshot())) in text  # the page shows the reading of its own run


def test_start_uses_choices_changed_in_the_same_rerun() -> None:
    at = compare_page()
    at.multiselect(key="compare_ratios").set_value([0.25, 0.75])
    at.number_input(key="hidden_dim").set_value(12)
    at.button(key="compare_start").click().run()
    run = runs.registry().get(at.session_state.compare_run_id)
    run.join(120)
    config = run.snapshot().config
    assert (config.ratios, config.base.hidden_dim) == ((0.25, 0.75), 12)


def test_bad_choices_are_explained_and_block_start() -> None:
    at = compare_page()
    at.multiselect(key="compare_ratios").set_value([]).run()
    assert [error.value for error in at.error] == ["0 ratios and schedules chosen: choose between 1 and 8"]
    assert at.button(key="compare_start").disabled
    at.multiselect(key="compare_ratios").set_value([0.5]).run()
    at.number_input(key="min_len").set_value(9).run()
    assert any("Min length = 9" in error.value for error in at.error)
    assert at.button(key="compare_start").disabled


def test_the_example_button_loads_the_trade_off_settings() -> None:
    at = compare_page()
    at.multiselect(key="compare_ratios").set_value([0.5]).run()
    at.button(key="compare_example").click().run()
    assert not at.exception and not at.error
    shown = {key: at.number_input(key=f"{key}").value for key in ("min_len", "max_len", "hidden_dim", "steps")}
    assert shown == {"min_len": 8, "max_len": 16, "hidden_dim": 64, "steps": 600}
    assert at.multiselect(key="compare_ratios").value == [0.0, 0.5, 1.0]


@pytest.mark.slow
def test_a_comparison_reopens_with_its_curves_and_deletes_after_a_restart() -> None:
    at = compare_page()
    at.multiselect(key="compare_ratios").set_value([0.0, 1.0]).run()
    at.button(key="compare_start").click().run()
    run_id = at.session_state.compare_run_id
    runs.registry().get(run_id).join(120)
    runs.reset_registry()  # a server restart: the registry forgets every run in memory

    restarted = compare_page()
    panel = restarted.selectbox(key="manage_compare")
    assert panel.value == run_id and "finished" in panel.format_func(run_id)
    restarted.button(key="open_compare").click().run()
    assert restarted.session_state.compare_run_id == run_id and not restarted.exception
    charts = {chart.key: json.loads(chart.proto.spec) for chart in restarted.get("plotly_chart")}
    named = [trace["name"] for trace in charts["compare_train_loss"]["data"] if trace.get("showlegend", True)]
    assert named == ["γ = 0", "γ = 1"]
    assert list(restarted.dataframe[0].value["step"]) == [30, 30]
    restarted.button(key="delete_compare").click().run()
    assert not restarted.exception
    assert run_id not in [summary.id for summary in runs.registry().list()]
    assert "compare_run_id" not in restarted.session_state


@pytest.mark.slow
def test_a_stopped_comparison_trains_on_after_a_restart_to_the_same_numbers_as_one_never_stopped() -> None:
    at = compare_page()
    at.multiselect(key="compare_ratios").set_value([0.0, 1.0]).run()
    at.number_input(key="steps").set_value(2000).run()
    assert at.button(key="compare_train_on").disabled  # nothing to continue yet
    at.button(key="compare_start").click().run()
    run = runs.registry().get(at.session_state.compare_run_id)
    deadline = time.monotonic() + 60
    while run.step < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    at.button(key="compare_stop").click().run()
    run.join(30)
    stopped_at = run.step
    assert run.status == "stopped" and 12 <= stopped_at < 2000
    runs.reset_registry()  # a server restart: the registry forgets every run in memory

    restarted = compare_page()
    panel = restarted.selectbox(key="manage_compare")
    assert panel.value == run.id and f"stopped, step {stopped_at:,} of 2,000" in panel.format_func(run.id)
    restarted.button(key="open_compare").click().run()
    assert restarted.number_input(key="steps").value == 2000  # the run's own settings
    assert not restarted.button(key="compare_train_on").disabled
    total = stopped_at + 20
    restarted.number_input(key="steps").set_value(total).run()
    assert not [info for info in restarted.info if "differ from this comparison's own" in info.value]
    restarted.multiselect(key="compare_ratios").set_value([0.5]).run()  # Train on keeps the run's own arms
    assert [info for info in restarted.info if "differ from this comparison's own" in info.value]
    restarted.button(key="compare_train_on").click().run()
    resumed = runs.registry().get(run.id)
    resumed.join(120)
    restarted.run()
    assert resumed.status == "finished" and resumed.step == total and not restarted.exception
    assert list(restarted.dataframe[0].value["step"]) == [total, total]
    assert list(restarted.dataframe[0].value["arm"]) == ["γ = 0", "γ = 1"]
    assert restarted.button(key="compare_train_on").disabled  # done up to the Steps setting

    uninterrupted = CompareEngine(resumed.snapshot().config).run_to_end()

    def without_time(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{name: value for name, value in row.items() if name != "seconds"} for row in rows]

    assert [without_time(rows) for rows in resumed.snapshot().rows] == [
        without_time(rows) for rows in uninterrupted.rows]
