"""The probe, the drift and what-if decoding on the pages (AppTest): Train, Compare, Decode and Hidden states."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from playground.core.config import TrainConfig
from playground.experiments.comparison import CompareConfig
from playground.plots.common import arm_colour
from playground.runs import registry as runs
from playground.runs.protocol import RunPlan
from tests.conftest import new_app

CONFIG = TrainConfig(hidden_dim=16, emb_dim=8, steps=30, eval_every=15, val_size=40, max_len=6)


def opened(page: str, **link: str) -> AppTest:
    at = new_app()
    at.query_params.update(link)
    at.switch_page(page)
    return at.run()


def charts(at: AppTest) -> dict[str, dict]:
    return {chart.key: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}


@pytest.mark.usefixtures("fresh_app")
def test_decode_page_feeds_another_token_and_probes_the_model() -> None:
    run = runs.registry().launch("tiny", RunPlan.train(CONFIG))
    run.join(120)
    at = opened("app_pages/decode.py")
    assert not at.exception and not at.error
    assert {"dc_recovery", "dc_prefix_errors"} <= charts(at).keys()
    at.button(key="dc_next").click().run()
    before = at.session_state.dc_signature
    instead = at.selectbox(key="dc_instead")
    token = next(option for option in instead.options if option != instead.value)
    instead.set_value(token).run()
    at.button(key="dc_feed").click().run()
    assert not at.exception and not at.error
    prefix = at.session_state.dc_prefix
    assert len(prefix) == 2 and prefix[1] == token and at.session_state.dc_step == 2
    assert at.query_params["dc_prefix"] == prefix  # bound to the link, like the page's other values
    assert at.session_state.dc_signature != before and at.session_state.dc_signature[-1] == tuple(prefix)
    assert any("**Step 2 of" in markdown.value and f"fed **{token}**" in markdown.value for markdown in at.markdown)
    assert at.slider(key="dc_gamma").disabled  # the what-if replaces teacher forcing
    at.button(key="dc_clear_prefix").click().run()
    assert at.session_state.dc_prefix == "" and at.session_state.dc_step == 0


@pytest.mark.usefixtures("fresh_app")
def test_train_page_shows_the_probe_of_a_finished_run() -> None:
    run = runs.registry().launch("tiny", RunPlan.train(CONFIG))
    run.join(120)
    at = opened("app_pages/train.py", run=run.id)
    assert not at.exception and not at.error
    shown = charts(at)
    assert {"train_recovery", "train_prefix_errors"} <= shown.keys()
    assert any(markdown.value.startswith("**After one wrong token") for markdown in at.markdown)


@pytest.mark.usefixtures("fresh_app")
def test_compare_and_hidden_states_pages_show_each_arms_probe_and_drift() -> None:
    config = CONFIG.replace(steps=10, eval_every=5)
    run = runs.registry().launch("arms", RunPlan.compare(CompareConfig.build(config, [0.0, 1.0], seeds=2)))
    run.join(120)
    at = opened("app_pages/compare.py", compare=run.id)
    assert not at.exception and not at.error
    shown = charts(at)
    assert {"compare_recovery", "compare_prefix_errors", "compare_drift", "compare_drift_plane"} <= shown.keys()
    recovered = [trace for trace in shown["compare_recovery"]["data"] if trace.get("name", "").endswith("recovered")]
    assert [trace["name"] for trace in recovered] == ["γ = 0: recovered", "γ = 1: recovered"]
    assert [trace["line"]["color"] for trace in recovered] == [arm_colour("γ = 0"), arm_colour("γ = 1")]
    assert sum(trace.get("fill") == "toself" for trace in shown["compare_drift"]["data"]) == 2  # a band per arm
    planes = [trace["name"] for trace in shown["compare_drift_plane"]["data"]]
    assert planes == ["teacher-forced", "free-running"]
    at.selectbox(key="compare_plane_model").set_value(3).run()
    assert "γ = 1, seed 1" in charts(at)["compare_drift_plane"]["layout"]["title"]["text"]
    at.switch_page("app_pages/hidden_states.py")
    at.run()
    assert not at.exception and not at.error
    assert {"hs_drift", "hs_drift_plane"} <= charts(at).keys()
