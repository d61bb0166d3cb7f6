"""The Hidden states page through AppTest, on a tiny model really trained in a background run."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from playground.core.config import TrainConfig
from playground.inspection.decoding import free_running_mistakes
from playground.runs import registry as runs
from playground.runs.background import BackgroundRun
from playground.runs.protocol import RunPlan
from playground.ui.inspection import MAX_EXAMPLES
from tests.conftest import new_app

pytestmark = pytest.mark.usefixtures("fresh_app")
CONFIG = TrainConfig(hidden_dim=16, emb_dim=8, steps=40, eval_every=20, val_size=60, max_len=6)



@pytest.fixture
def trained_run() -> BackgroundRun:
    run = runs.registry().launch("tiny reverse", RunPlan.train(CONFIG))
    run.join(120)
    assert run.status == "finished"
    return run


def states_page() -> AppTest:
    at = new_app().run()
    at.switch_page("app_pages/hidden_states.py")
    return at.run()


def chart_keys(at: AppTest) -> set[str]:
    return {chart.key for chart in at.get("plotly_chart")}


def test_without_runs_the_page_says_what_to_do() -> None:
    at = states_page()
    assert not at.exception and not at.error
    assert any("No runs yet" in info.value for info in at.info)


@pytest.mark.slow
def test_a_validation_example_shows_heatmaps_probs_and_the_plane(trained_run: BackgroundRun) -> None:
    at = states_page()
    assert not at.exception and not at.error
    keys = chart_keys(at)
    assert {"hs_encoder_0_h", "hs_encoder_0_c", "hs_decoder_0_h", "hs_decoder_0_c", "hs_probs_free-running",
            "hs_probs_teacher-forced", "hs_pca", "hs_lines_enc"} <= keys
    heatmap = next(chart for chart in at.get("plotly_chart") if chart.key == "hs_encoder_0_h")
    trace = json.loads(heatmap.proto.spec)["data"][0]
    assert trace["type"] == "heatmap" and trace["zmid"] == 0 and "token" in trace["hovertemplate"]
    assert not any(key.endswith("_f") for key in keys)
    at.toggle(key="hs_gates").set_value(True).run()
    assert {"hs_encoder_0_i", "hs_encoder_0_f", "hs_decoder_0_g", "hs_decoder_0_o"} <= chart_keys(at)
    at.selectbox(key="hs_order").set_value("by variance").run()
    assert not at.exception and not at.error
    assert len(at.get("download_button")) == 2


@pytest.mark.slow
def test_typed_input_with_unknown_tokens_shows_an_error(trained_run: BackgroundRun) -> None:
    at = states_page()
    at.radio(key="hs_how").set_value("type a source").run()
    at.text_input(key="hs_source").input("ab?z").run()
    assert not at.exception
    assert at.error and "'?'" in at.error[0].value and "'z'" in at.error[0].value
    assert "hs_encoder_0_h" not in chart_keys(at)
    at.text_input(key="hs_source").input("abc").run()
    assert not at.exception and not at.error
    assert {"hs_encoder_0_h", "hs_probs_free-running"} <= chart_keys(at)
    assert "hs_probs_teacher-forced" not in chart_keys(at)


def test_a_running_run_is_followed_live() -> None:
    config = CONFIG.replace(steps=100_000)
    run = runs.registry().launch("live", RunPlan.train(config))
    try:
        at = states_page()
        assert not at.exception and not at.error
        assert any("live" in caption.value for caption in at.caption)
        assert "hs_encoder_0_h" in chart_keys(at)
    finally:
        run.stop()
        run.join(30)
    at.run()
    assert not any("live" in caption.value for caption in at.caption)


@pytest.mark.slow
def test_the_link_holds_the_run_and_the_example_and_restores_them(trained_run: BackgroundRun) -> None:
    other = runs.registry().launch("other", RunPlan.train(CONFIG.replace(seed=1)))
    other.join(120)
    at = states_page()
    at.selectbox(key="hs_run").set_value(trained_run.id).run()
    at.selectbox(key="hs_example").set_value(3).run()
    assert (at.query_params["run"], at.query_params["example"]) == (trained_run.id, "3")
    at.radio(key="hs_how").set_value("type a source").run()
    at.text_input(key="hs_source").input("abcab").run()
    assert at.query_params["source"] == "abcab" and "example" not in at.query_params
    opened = new_app()  # a fresh session opening that link
    opened.query_params.update(run=trained_run.id, example="3")
    opened.switch_page("app_pages/hidden_states.py").run()
    assert opened.selectbox(key="hs_run").value == trained_run.id and opened.selectbox(key="hs_example").value == 3
    bad = new_app()
    bad.query_params.update(run="no-such-run", example="9999")
    bad.switch_page("app_pages/hidden_states.py").run()
    assert not bad.exception
    assert any("run 'no-such-run' is not here" in warning.value for warning in bad.warning)
    assert any("validation example number '9999' is not here" in warning.value for warning in bad.warning)


@pytest.mark.slow
def test_the_example_list_marks_the_mistakes_and_shows_one(trained_run: BackgroundRun) -> None:
    at = states_page()
    at.selectbox(key="hs_run").set_value(trained_run.id).run()
    model = trained_run.models()[0]
    pairs = model.val_pairs[:MAX_EXAMPLES]
    wrong = free_running_mistakes(model.model, model.task, pairs)
    assert any(wrong)  # 40 steps: the model still errs
    options = at.selectbox(key="hs_example").options
    assert [option.startswith("✗ ") for option in options] == wrong
    mistakes = [index for index, bad in enumerate(wrong) if bad]
    for _ in range(2):  # the next mistake after the example shown, from the first again at the end
        shown = at.selectbox(key="hs_example").value
        at.button(key="hs_mistake").click().run()
        assert not at.exception
        assert at.selectbox(key="hs_example").value == next((i for i in mistakes if i > shown), mistakes[0])


@pytest.mark.slow
def test_a_transformer_shows_attention_per_layer_and_head() -> None:
    config = CONFIG.replace(architecture="transformer", heads=2, num_layers=2, steps=20)
    run = runs.registry().launch("tiny transformer", RunPlan.train(config))
    run.join(120)
    assert run.status == "finished"
    at = states_page()
    assert not at.exception and not at.error
    keys = chart_keys(at)
    assert {"hs_encoder_0_h", "hs_encoder_1_h", "hs_decoder_1_h", "hs_alignment"} <= keys
    assert {f"hs_heads_encoder_self_{layer}_{head}" for layer in (0, 1) for head in (0, 1)} <= keys
    at.radio(key="hs_head_kind").set_value("cross").run()
    assert not at.exception
    cross = next(chart for chart in at.get("plotly_chart") if chart.key == "hs_heads_cross_1_1")
    layout = json.loads(cross.proto.spec)["layout"]
    assert layout["xaxis"]["ticktext"][0].startswith("0: ")  # "position: token"
