"""The Train page through Streamlit's AppTest: widgets -> a real background run -> charts and tables."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from playground.runs import registry as runs
from tests.conftest import new_app

pytestmark = pytest.mark.usefixtures("fresh_app")



def tiny_app() -> AppTest:
    at = new_app()
    at.run()
    for key, value in (("hidden_dim", 16), ("emb_dim", 8), ("steps", 40), ("eval_every", 20)):
        at.number_input(key=key).set_value(value)
    return at.run()


def test_first_page_is_train_with_defaults_and_no_errors() -> None:
    at = new_app().run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Train a seq2seq model"
    assert at.selectbox(key="task").value == "reverse"
    assert at.slider(key="teacher_forcing_ratio").value == 0.5
    assert not at.button(key="start").disabled


@pytest.mark.slow
def test_start_trains_in_the_background_and_the_page_shows_it() -> None:
    at = tiny_app()
    at.button(key="start").click().run()
    run = runs.registry().get(at.session_state.train_run_id)
    run.join(60)
    at.run()
    assert run.status == "finished" and not at.exception
    chart_keys = {chart.key for chart in at.get("plotly_chart")}
    assert {"loss_chart", "accuracy_chart", "gamma_chart", "preview_encoder", "preview_decoder",
            "train_positions"} <= chart_keys  # errors by position once the run has ended
    loss = next(chart for chart in at.get("plotly_chart") if chart.key == "loss_chart")
    assert "training loss" in loss.proto.spec
    assert at.metric[0].label == "Validation loss, free-running"
    assert len(at.dataframe[0].value) == 8  # sample predictions
    assert "finished" in at.get("progress")[0].proto.text
    downloads = {button.proto.label for button in at.get("download_button")}
    assert {"Metrics (CSV)", "Checkpoint (.pt)", "PyTorch script"} <= downloads
    script = runs.registry().script_file(run.id).decode()  # what the button hands out when clicked
    assert "'hidden_dim': 16" in script and "'steps': 40" in script


def test_start_uses_a_setting_changed_in_the_same_rerun() -> None:
    """A click right after an edit: the callback runs before the rerun that redraws the widgets."""
    at = tiny_app()
    at.number_input(key="hidden_dim").set_value(24)
    at.number_input(key="steps").set_value(30)
    at.button(key="start").click().run()
    run = runs.registry().get(at.session_state.train_run_id)
    run.join(60)
    assert (run.snapshot().config.hidden_dim, run.snapshot().total_steps) == (24, 30)


def test_bad_settings_show_what_is_allowed_and_block_start() -> None:
    at = tiny_app()
    at.number_input(key="min_len").set_value(9).run()
    assert [error.value for error in at.error] == ["Min length = 9 is not allowed: it must be at most Max length (8)"]
    assert at.button(key="start").disabled
    at.number_input(key="min_len").set_value(3)
    at.number_input(key="hidden_dim").set_value(0).run()
    assert "Hidden size = 0 is not allowed: it must be between 2 and 1024" in at.error[0].value
    assert not at.exception


def test_the_custom_task_asks_for_its_csv_and_blocks_start() -> None:
    at = tiny_app()
    at.selectbox(key="task").set_value("custom").run()
    assert at.error[0].value == "Task needs a CSV file of source,target pairs: none is loaded"
    assert at.button(key="start").disabled and not at.exception


@pytest.mark.slow
def test_changing_the_model_shape_asks_for_a_reset_and_reset_detaches() -> None:
    at = tiny_app()
    at.button(key="step").click().run()
    run = runs.registry().get(at.session_state.train_run_id)
    at.number_input(key="hidden_dim").set_value(24).run()
    assert "Press **Reset**" in at.info[0].value
    at.button(key="reset").click().run()
    assert "train_run_id" not in at.session_state and run.status == "stopped"


@pytest.mark.slow
def test_live_learning_rate_change_reaches_the_running_run() -> None:
    at = tiny_app()
    at.number_input(key="steps").set_value(100_000).run()
    at.button(key="start").click().run()
    run = runs.registry().get(at.session_state.train_run_id)
    at.select_slider(key="lr").set_value(0.02).run()
    assert run.snapshot().config.lr == 0.02
    run.stop()
    run.join(10)
