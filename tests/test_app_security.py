"""Hostile values through the pages (AppTest): link values and run names shown as text, bounded sources,
strict numbers, each uploader's own size bound, a run id too long for a file name."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from playground.core.config import TrainConfig
from playground.runs import registry as runs
from playground.runs.background import BackgroundRun
from playground.runs.train_engine import TrainingEngine
from tests.conftest import new_app

pytestmark = pytest.mark.usefixtures("fresh_app")
CONFIG = TrainConfig(hidden_dim=8, emb_dim=4, steps=4, eval_every=2, val_size=16, max_len=6, device="cpu")
IMAGE_NAME = "![x](http://127.0.0.1:9/pixel.png)"


def finished_run(name: str) -> BackgroundRun:
    run = runs.registry().launch(name, TrainingEngine.create(CONFIG), CONFIG)
    run.join(120)
    assert run.status == "finished"
    return run


def opened(page: str, **link: str) -> AppTest:
    at = new_app()
    at.query_params.update(link)
    at.switch_page(page)
    return at.run()


@pytest.mark.slow
def test_a_run_name_in_markdown_image_syntax_is_shown_as_text() -> None:
    run = finished_run(IMAGE_NAME)
    at = opened("app_pages/train.py", run=run.id)
    assert not at.exception
    progress = at.get("progress")[0].proto.text
    assert "**!\\[x\\](http:\u2060//127.0.0.1:\u20609/pixel.png)** — finished" in progress  # no image can form
    assert IMAGE_NAME not in progress


def test_a_linked_source_longer_than_the_bound_is_refused_on_hidden_states() -> None:
    run = finished_run("tiny")
    at = opened("app_pages/hidden_states.py", run=run.id, source="ab" * 1000)
    assert not at.exception
    assert any("the source has 2000 symbols; at most 24 are allowed" in error.value for error in at.error)
    assert not [chart for chart in at.get("plotly_chart") if chart.key.startswith("hs_")]


def test_superscript_digits_in_a_link_keep_the_default_with_a_message() -> None:
    at = opened("app_pages/study.py", study_seeds="²")
    assert not at.exception
    assert at.number_input(key="study_seeds").value == 5
    assert any("seeds = '²' cannot be used" in warning.value for warning in at.warning)


def test_a_run_id_too_long_for_a_file_name_is_one_message() -> None:
    at = opened("app_pages/train.py", run="x" * 300)
    assert not at.exception
    assert any("is not a run id" in error.value for error in at.error)


def test_each_uploader_has_its_own_size_bound() -> None:
    at = opened("app_pages/train.py", task="custom")
    (csv_uploader,) = at.get("file_uploader")
    assert csv_uploader.proto.max_upload_size_mb == 10
    at = opened("app_pages/hidden_states.py")
    at.radio(key="hs_from").set_value("a checkpoint file").run()
    (checkpoint_uploader,) = at.get("file_uploader")
    assert checkpoint_uploader.proto.max_upload_size_mb == 2048


@pytest.mark.slow
def test_a_run_folder_whose_config_disagrees_with_its_checkpoint_is_one_message_never_a_traceback() -> None:
    run = finished_run("tiny")
    config_file = run.run_dir / "config.json"
    config_file.write_text(config_file.read_text().replace('"hidden_dim": 8', '"hidden_dim": 16'))
    runs.reset_registry()  # a fresh process: the run is read from its folder
    at = opened("app_pages/train.py", run=run.id)
    assert not at.exception
    assert [error.value for error in at.error if "config.json does not match checkpoint.pt" in error.value]
    assert not at.run().exception  # the next rerun of that session too (it used to raise at every one)


HOSTILE_NAME = "https://e.vil www.e.vil a@e.vil \u202egnp.exe :material/warning: :red[R] :smile:"  # 76 signs


def test_a_hostile_name_shows_no_link_icon_colour_or_reversal_and_loses_its_controls_when_set() -> None:
    run = finished_run(HOSTILE_NAME + "\u200b\n\u2028\x85")
    assert run.name == HOSTILE_NAME.replace("\u202e", "")  # format, bidi and line-break characters removed
    at = opened("app_pages/train.py", run=run.id)
    assert not at.exception
    progress = at.get("progress")[0].proto.text
    for acting in ("https://", "www.", "a@e", ":material/", ":red[", ":smile:", "\u202e"):
        assert acting not in progress, acting
    assert progress.replace("\u2060", "").replace("\\", "").startswith("**https://e.vil www.e.vil")


@pytest.mark.parametrize(("page", "name"), [("app_pages/train.py", "steps"), ("app_pages/train.py", "hidden_dim"),
                                            ("app_pages/train.py", "seed"), ("app_pages/study.py", "study_seeds"),
                                            ("app_pages/compare.py", "compare_seeds")])
@pytest.mark.parametrize("value", ["1e309", "-inf"])
def test_a_whole_number_past_any_float_in_a_link_keeps_the_default_with_a_message(page: str, name: str,
                                                                                  value: str) -> None:
    at = opened(page, **{name: value})
    assert not at.exception
    assert any(f"= {value!r} cannot be used" in warning.value for warning in at.warning)
    assert name not in at.query_params


def test_shared_mode_sends_no_error_details_and_takes_uploads_of_what_a_class_needs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    details, upload = st.get_option("client.showErrorDetails"), st.get_option("server.maxUploadSize")
    monkeypatch.setenv("PLAYGROUND_SHARED", "1")
    runs.reset_registry()
    try:
        at = opened("app_pages/hidden_states.py")
        assert not at.exception
        assert st.get_option("client.showErrorDetails") == "none"
        assert st.get_option("server.maxUploadSize") == 64
        at.radio(key="hs_from").set_value("a checkpoint file").run()
        (checkpoint_uploader,) = at.get("file_uploader")
        assert checkpoint_uploader.proto.max_upload_size_mb == 64
    finally:
        st.set_option("client.showErrorDetails", details)
        streamlit_config.set_option("server.maxUploadSize", upload)
