"""Lessons, Glossary, links and help texts through AppTest: a lesson's computed reading, a link restores the
widgets (a bad value is named with its range), every widget of every page explains itself, and a lesson stopped by
a restart is continued from its page."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from streamlit.testing.v1 import AppTest

from playground.course.answers import answers, prediction_verdict
from playground.course.evidence import read_from
from playground.course.glossary import TERMS
from playground.course.lessons import LESSONS, STEPS_ENV
from playground.course.notebook import saved_prediction
from playground.experiments.comparison import CompareSnapshot
from playground.runs import registry as runs
from playground.runs.background import BackgroundRun
from playground.ui.runs import LOOKING_AT
from tests.conftest import new_app

pytestmark = pytest.mark.usefixtures("fresh_app")

PAGES = tuple(f"app_pages/{name}.py" for name in ("train", "hidden_states", "decode", "compare", "study", "lessons",
                                                 "glossary"))
WIDGETS = ("number_input", "slider", "select_slider", "selectbox", "multiselect", "radio", "text_input", "toggle",
           "checkbox", "button")


def linked(params: dict[str, str | list[str]]) -> AppTest:
    at = new_app()
    for name, value in params.items():
        at.query_params[name] = value
    return at.run()


def share_params(at: AppTest) -> dict[str, list[str]]:
    """The Share box's link, read back as the address bar's query."""
    return parse_qs(urlsplit(at.code[0].value).query, keep_blank_values=True)


def test_a_link_restores_every_setting_it_holds_and_the_share_link_repeats_it() -> None:
    at = linked({"task": "copy", "hidden_dim": "32", "lr": "0.01", "teacher_forcing_ratio": "0.25",
                 "schedule": "linear", "decay_steps": "300", "optimizer": "SGD + momentum"})
    assert not at.exception and not at.warning
    assert at.selectbox(key="task").value == "copy"
    assert at.number_input(key="hidden_dim").value == 32
    assert at.select_slider(key="lr").value == 0.01
    assert at.slider(key="teacher_forcing_ratio").value == 0.25
    assert at.selectbox(key="schedule").value == "linear"
    assert at.number_input(key="decay_steps").value == 300
    assert at.selectbox(key="optimizer").value == "sgd"
    assert share_params(at) == {"task": ["copy"], "hidden_dim": ["32"], "lr": ["0.01"], "optimizer": ["SGD + momentum"],
                                "teacher_forcing_ratio": ["0.25"], "schedule": ["linear"], "decay_steps": ["300"]}
    at.number_input(key="hidden_dim").set_value(48).run()  # the link follows the widgets
    assert share_params(at)["hidden_dim"] == ["48"]
    at.selectbox(key="task").set_value("reverse").run()  # back to its default: out of the link
    assert "task" not in share_params(at)


def test_a_bad_link_value_is_named_with_what_is_allowed() -> None:
    at = linked({"task": "nonsense", "max_len": "99", "hidden_dim": "16"})
    assert not at.exception
    assert [warning.value for warning in at.warning] == [
        "The link's Task = 'nonsense' cannot be used (allowed: copy, reverse, sort, addition, number words, count, "
        "custom): the page shows 'reverse' instead."]
    assert at.selectbox(key="task").value == "reverse"
    assert any("Max length" in error.value and "between 1 and 50" in error.value for error in at.error)
    assert at.number_input(key="hidden_dim").value == 16
    assert share_params(at)["hidden_dim"] == ["16"]


def test_a_compare_link_restores_its_arms() -> None:
    at = new_app()
    at.switch_page("app_pages/compare.py")
    for name, value in {"compare_ratios": ["0", "1"], "compare_schedules": "linear", "compare_seeds": "2",
                        "hidden_dim": "32"}.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception and not at.warning
    assert at.multiselect(key="compare_ratios").value == [0.0, 1.0]
    assert at.multiselect(key="compare_schedules").value == ["linear"]
    assert at.number_input(key="compare_seeds").value == 2
    assert at.number_input(key="hidden_dim").value == 32
    assert share_params(at) == {"compare_ratios": ["0", "1"], "compare_schedules": ["linear"],
                                "compare_seeds": ["2"], "hidden_dim": ["32"]}


@pytest.mark.slow
def test_every_widget_on_every_page_has_help() -> None:
    at = new_app().run()
    for key, value in (("hidden_dim", 8), ("emb_dim", 8), ("steps", 4), ("eval_every", 2)):
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


@pytest.mark.slow
def test_every_chart_on_every_page_says_what_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each plotly chart has its "What am I looking at?" (a popover right after it) with words inside."""
    monkeypatch.setenv(STEPS_ENV, "4")
    at = new_app().run()
    for key, value in (("hidden_dim", 8), ("emb_dim", 8), ("steps", 4), ("eval_every", 2)):
        at.number_input(key=key).set_value(value)
    at.button(key="start").click().run()
    runs.registry().get(at.session_state.train_run_id).join(60)
    at.switch_page("app_pages/lessons.py").run()
    at.radio(key=f"prediction_{next(iter(LESSONS))}").set_value(0).run()
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
@pytest.mark.slow
def test_a_lesson_runs_and_reads_its_own_numbers(lesson: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STEPS_ENV, "20")
    at = new_app().run()
    at.switch_page("app_pages/lessons.py").run()
    at.radio(key="lesson").set_value(lesson).run()
    assert not at.exception and LESSONS[lesson].story in [markdown.value for markdown in at.markdown]
    assert at.button(key="lesson_start").disabled  # predict first
    at.radio(key=f"prediction_{lesson}").set_value(2).run()
    at.button(key="lesson_start").click().run()
    run = runs.registry().get(at.session_state.lesson_runs[lesson])
    run.join(120)
    at.run()
    assert run.status == "finished" and not at.exception
    snapshot = evidence(lesson, run)
    expected = LESSONS[lesson].read(snapshot)
    assert snapshot.step == 20 and expected.appeared is not None  # read from the finished run's numbers
    shown = [element.value for element in (*at.success, *at.warning)]
    assert shown == [expected.text]
    assert [element.value for element in at.info] == [prediction_verdict(lesson, 2, snapshot)]
    links = {link.proto.label: link.proto.page for link in at.get("page_link")}
    assert {"Step through it on Decode", "Its hidden states"} <= set(links)  # where to look, on its own model
    from_run = answers(lesson, snapshot)
    assert any(all(answer in markdown.value for answer in from_run) for markdown in at.markdown)
    assert {f"lesson_chart_{i}" for i in range(len(LESSONS[lesson].charts))} <= {c.key for c in at.get("plotly_chart")}
    assert [button.proto.label for button in at.get("download_button")] == ["Metrics (CSV)", "PyTorch script"]
    script = runs.registry().script_file(run.id).decode()
    assert all(repr(label) in script for label in run.snapshot().config.model_labels())


def evidence(lesson: str, run: BackgroundRun[CompareSnapshot]) -> CompareSnapshot:
    """What the page reads a finished lesson from: its snapshot, with each model's probe where the lesson needs it."""
    return read_from(LESSONS[lesson], run.snapshot(), run.models)


@pytest.mark.slow
def test_a_prediction_is_kept_with_its_run_through_a_reload_and_a_link(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STEPS_ENV, "5")
    at = new_app().run()
    at.switch_page("app_pages/lessons.py").run()
    at.radio(key="lesson").set_value("beyond").run()
    at.radio(key="prediction_beyond").set_value(1).run()
    at.button(key="lesson_start").click().run()
    run = runs.registry().get(at.session_state.lesson_runs["beyond"])
    run.join(120)
    assert saved_prediction(run.run_dir, 3) == 1  # stored with the run
    reloaded = new_app()
    reloaded.query_params["run"] = run.id  # a reload or a shared link: a new session, the run in the address
    reloaded.run().switch_page("app_pages/lessons.py").run()
    reloaded.radio(key="lesson").set_value("beyond").run()
    assert reloaded.radio(key="prediction_beyond").value == 1 and not reloaded.exception
    assert share_params(reloaded)["prediction"] == ["1"] and share_params(reloaded)["run"] == [run.id]
    linked_only = linked({"prediction": "2"})  # a link's prediction, no run yet: the lessons' first lesson
    linked_only.switch_page("app_pages/lessons.py").run()
    assert linked_only.radio(key=f"prediction_{next(iter(LESSONS))}").value == 2


@pytest.mark.slow
def test_a_lesson_stopped_by_a_restart_is_continued_from_the_lessons_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STEPS_ENV, "400")
    lesson = next(iter(LESSONS))
    at = new_app().run()
    at.switch_page("app_pages/lessons.py").run()
    assert "lesson_continue" not in [button.key for button in at.button]  # nothing to continue yet
    at.radio(key=f"prediction_{lesson}").set_value(0).run()
    at.button(key="lesson_start").click().run()
    run = runs.registry().get(at.session_state.lesson_runs[lesson])
    deadline = time.monotonic() + 60
    while run.step < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.stop(wait=30)
    stopped_at = run.step
    assert run.status == "stopped" and 3 <= stopped_at < 400
    runs.reset_registry()  # a server restart: the session and the registry forget the run

    reopened = new_app().run()
    reopened.switch_page("app_pages/lessons.py").run()
    continue_button = reopened.button(key="lesson_continue")
    assert f"stopped at step {stopped_at:,} of 400" in continue_button.help
    continue_button.click().run()
    assert reopened.session_state.lesson_runs[lesson] == run.id and not reopened.exception
    resumed = runs.registry().get(run.id)
    resumed.join(120)
    reopened.run()
    assert resumed.status == "finished" and resumed.step == 400
    assert [element.value for element in (*reopened.success, *reopened.warning)] == [
        LESSONS[lesson].read(resumed.snapshot()).text]
    assert "lesson_continue" not in [button.key for button in reopened.button]  # nothing left to continue
