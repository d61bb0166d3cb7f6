"""Lessons, Glossary, links and help texts through AppTest: a lesson's computed reading, a link restores the
widgets (a bad value is named with its range), every widget of every page explains itself, and a lesson stopped by
a restart is continued from its page."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from playground.analysis.lessons import LESSONS, STEPS_ENV
from playground.glossary import TERMS
from playground.runs import registry as runs
from playground.ui.runs import LOOKING_AT
from tests.conftest import new_app

pytestmark = pytest.mark.usefixtures("fresh_app")

PAGES = tuple(f"app_pages/{name}.py" for name in ("train", "hidden_states", "decode", "compare", "study", "lessons",
                                                 "glossary"))
WIDGETS = ("number_input", "slider", "select_slider", "selectbox", "multiselect", "radio", "text_input", "toggle",
           "checkbox", "button")


def linked(params: dict[str, str]) -> AppTest:
    at = new_app()
    for name, value in params.items():
        at.query_params[name] = value
    return at.run()


def test_a_link_restores_every_setting_it_holds_and_the_share_link_repeats_it() -> None:
    at = linked({"task": "copy", "hidden_dim": "32", "lr": "0.01", "teacher_forcing_ratio": "0.25",
                 "schedule": "linear", "decay_steps": "300"})
    assert not at.exception and not at.warning
    assert at.selectbox(key="cfg_task").value == "copy"
    assert at.number_input(key="cfg_hidden_dim").value == 32
    assert at.select_slider(key="cfg_lr").value == 0.01
    assert at.slider(key="cfg_teacher_forcing_ratio").value == 0.25
    assert at.selectbox(key="cfg_schedule").value == "linear"
    assert at.number_input(key="cfg_decay_steps").value == 300
    share = at.code[-1].value
    for part in ("task=copy", "hidden_dim=32", "lr=0.01", "teacher_forcing_ratio=0.25", "decay_steps=300"):
        assert part in share
    at.number_input(key="cfg_hidden_dim").set_value(48).run()  # the link follows the widgets
    assert at.query_params["hidden_dim"] == "48" and "hidden_dim=48" in at.code[-1].value
    at.selectbox(key="cfg_task").set_value("reverse").run()  # back to its default: out of the link
    assert "task" not in at.query_params and "task=" not in at.code[-1].value


def test_a_bad_link_value_keeps_its_default_with_one_message_naming_its_range() -> None:
    at = linked({"max_len": "99", "hidden_dim": "16"})
    assert not at.exception
    assert [warning.value for warning in at.warning] == [
        "The link's Max length = '99' is not allowed (it must be between 1 and 50): the default 8 is used instead."]
    assert at.number_input(key="cfg_max_len").value == 8
    assert at.number_input(key="cfg_hidden_dim").value == 16
    assert "max_len" not in at.query_params and "hidden_dim=16" in at.code[-1].value


def test_a_compare_link_restores_its_arms() -> None:
    at = linked({"ratios": "0,1", "schedules": "linear", "seeds": "2", "hidden_dim": "32"})
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception and not at.warning
    assert at.multiselect(key="compare_ratios").value == [0.0, 1.0]
    assert at.multiselect(key="compare_schedules").value == ["linear"]
    assert at.number_input(key="compare_seeds").value == 2
    assert at.number_input(key="cfg_hidden_dim").value == 32
    assert {"ratios=0%2C1", "schedules=linear", "seeds=2", "hidden_dim=32"} <= set(at.code[-1].value.split("?")[1]
                                                                                   .split("&"))


def test_a_bad_compare_link_is_explained() -> None:
    at = linked({"ratios": "0,7"})
    at.switch_page("app_pages/compare.py").run()
    assert len(at.warning) == 1 and "ratio '7' is not allowed: it must be between 0 and 1" in at.warning[0].value
    assert at.multiselect(key="compare_ratios").value == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_every_widget_on_every_page_has_help() -> None:
    at = new_app().run()
    for key, value in (("cfg_hidden_dim", 8), ("cfg_emb_dim", 8), ("cfg_steps", 4), ("cfg_eval_every", 2)):
        at.number_input(key=key).set_value(value)
    at.button(key="start").click().run()
    runs.registry().get(at.session_state.train_run_id).join(60)  # a run: the runs panel and charts show all
    missing = []
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, page
        missing += [f"{page}: {kind} {widget.label!r} ({widget.key})" for kind in WIDGETS for widget in at.get(kind)
                    if not (widget.help or "").strip()]
    assert not missing, "widgets without help:\n" + "\n".join(missing)


def test_every_chart_on_every_page_says_what_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each plotly chart has its "What am I looking at?" (a popover right after it) with words inside."""
    monkeypatch.setenv(STEPS_ENV, "4")
    at = new_app().run()
    for key, value in (("cfg_hidden_dim", 8), ("cfg_emb_dim", 8), ("cfg_steps", 4), ("cfg_eval_every", 2)):
        at.number_input(key=key).set_value(value)
    at.button(key="start").click().run()
    runs.registry().get(at.session_state.train_run_id).join(60)
    at.switch_page("app_pages/lessons.py").run()
    at.button(key="lesson_start").click().run()
    runs.registry().get(at.session_state.lesson_runs[next(iter(LESSONS))]).join(60)
    shown = {}
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, page
        charts = at.get("plotly_chart")
        notes = [block for block in at.get("popover") if block.proto.popover.label == LOOKING_AT]
        shown[page] = len(charts)
        assert len(notes) >= len(charts), page
        assert all(any(len(markdown.value) > 100 for markdown in note.markdown) for note in notes), page
    assert all(shown[page] for page in ("app_pages/train.py", "app_pages/hidden_states.py", "app_pages/decode.py",
                                        "app_pages/lessons.py")), shown


def test_the_glossary_page_shows_every_term() -> None:
    at = new_app().run()
    at.switch_page("app_pages/glossary.py").run()
    assert not at.exception
    assert [header.value for header in at.subheader] == [term.title for term in TERMS.values()]
    assert len(at.latex) == sum(bool(term.formula) for term in TERMS.values())


@pytest.mark.parametrize("lesson", list(LESSONS))
def test_a_lesson_runs_and_reads_its_own_numbers(lesson: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STEPS_ENV, "20")
    at = new_app().run()
    at.switch_page("app_pages/lessons.py").run()
    at.radio(key="lesson").set_value(lesson).run()
    assert not at.exception and LESSONS[lesson].story in [markdown.value for markdown in at.markdown]
    at.button(key="lesson_start").click().run()
    run = runs.registry().get(at.session_state.lesson_runs[lesson])
    run.join(120)
    at.run()
    assert run.status == "finished" and not at.exception
    expected = LESSONS[lesson].read(run.snapshot())
    assert "after 20 steps" in expected.text.lower()
    shown = [element.value for element in (*at.success, *at.warning)]
    assert shown == [expected.text]
    assert {f"lesson_chart_{i}" for i in range(len(LESSONS[lesson].charts))} <= {c.key for c in at.get("plotly_chart")}
    assert [button.proto.label for button in at.get("download_button")] == ["Metrics (CSV)", "PyTorch script"]
    script = runs.registry().script_file(run.id).decode()
    assert all(repr(label) in script for label in run.snapshot().config.model_labels())


def test_a_lesson_stopped_by_a_restart_is_continued_from_the_lessons_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STEPS_ENV, "40")
    lesson = next(iter(LESSONS))
    at = new_app().run()
    at.switch_page("app_pages/lessons.py").run()
    assert "lesson_continue" not in [button.key for button in at.button]  # nothing to continue yet
    at.button(key="lesson_start").click().run()
    run = runs.registry().get(at.session_state.lesson_runs[lesson])
    deadline = time.monotonic() + 60
    while run.step < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.stop(wait=30)
    stopped_at = run.step
    assert run.status == "stopped" and 3 <= stopped_at < 40
    runs.reset_registry()  # a server restart: the session and the registry forget the run

    reopened = new_app().run()
    reopened.switch_page("app_pages/lessons.py").run()
    continue_button = reopened.button(key="lesson_continue")
    assert f"stopped at step {stopped_at:,} of 40" in continue_button.help
    continue_button.click().run()
    assert reopened.session_state.lesson_runs[lesson] == run.id and not reopened.exception
    resumed = runs.registry().get(run.id)
    resumed.join(120)
    reopened.run()
    assert resumed.status == "finished" and resumed.step == 40
    assert [element.value for element in (*reopened.success, *reopened.warning)] == [
        LESSONS[lesson].read(resumed.snapshot()).text]
    assert "lesson_continue" not in [button.key for button in reopened.button]  # nothing left to continue
