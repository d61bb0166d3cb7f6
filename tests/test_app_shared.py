"""Shared mode (PLAYGROUND_SHARED=1): training needs a seat (a link the teacher issues on the Class page, or a
login where [auth] is configured); two seats of one server each see only their own runs, and a start past the
limit waits in the queue with its place shown, then starts by itself; a visitor without a seat reads but starts
nothing; a link to a run shows it without control (a control link grants it), lesson runs are owned and bounded,
and the teacher sees the class, issues and revokes seats."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from playground.course.lessons import LESSONS, STEPS_ENV
from playground.runs import registry as runs
from tests.conftest import new_app

TEACHER_TOKEN = "a-token-only-the-teacher-knows"


@pytest.fixture
def shared_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PLAYGROUND_SHARED", "1")
    monkeypatch.setenv("PLAYGROUND_MAX_ACTIVE", "1")
    monkeypatch.setenv("PLAYGROUND_TEACHER_TOKEN", TEACHER_TOKEN)
    monkeypatch.setenv(STEPS_ENV, "100000")
    runs.reset_registry()
    yield
    runs.reset_registry()


def seat_key(name: str) -> str:
    """A seat issued as the Class page issues it; its key is what the student's link carries."""
    classroom = runs.registry().classroom
    assert classroom is not None
    return classroom.book.issue(name)[1]


def session(steps: int, name: str = "student") -> AppTest:
    """A student who opened their seat link, on the Train page with a tiny model."""
    at = linked({"seat": seat_key(name)})
    for key, value in (("hidden_dim", 8), ("emb_dim", 4), ("val_size", 16), ("steps", steps)):
        at.number_input(key=key).set_value(value)
    return at.run()


def listed(at: AppTest) -> list[str]:
    at.run()
    return next((box.options for box in at.get("selectbox") if box.key == "manage_train"), [])


@pytest.mark.slow
def test_sessions_see_only_their_runs_and_a_start_past_the_limit_queues(shared_server: None) -> None:
    alice, bob = session(100_000), session(20)
    alice.button(key="start").click().run()
    alice_run = runs.registry().get(alice.session_state.train_run_id)
    assert alice_run.status == "running"
    assert listed(bob) == []
    bob.button(key="start").click().run()
    bob_run = runs.registry().get(bob.session_state.train_run_id)
    assert bob_run.status == "queued"
    assert any("place 1 of 1 in the queue" in info.value for info in bob.info)
    assert [option for option in listed(alice) if bob_run.id in option] == []
    alice.button(key="stop").click().run()
    deadline = time.monotonic() + 60
    while bob_run.status != "finished" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (alice_run.status, bob_run.status) == ("stopped", "finished")


def forged_click(at: AppTest, key: str) -> None:
    """What a hostile browser can send: a click on a button the page drew disabled (AppTest refuses those;
    Streamlit 1.67 discards them server-side, and the callbacks check control again)."""
    button = at.button(key=key)
    button.proto.disabled = False
    button.click().run()


def table_with(at: AppTest, column: str) -> Any:
    """The page's table that has `column` (the Class page shows the seats, then the runs)."""
    return next(frame.value for frame in at.dataframe if column in frame.value)


def linked(params: dict[str, str]) -> AppTest:
    at = new_app()
    for name, value in params.items():
        at.query_params[name] = value
    return at.run()


@pytest.mark.slow
def test_a_link_to_another_person_s_run_shows_it_and_only_a_control_link_grants_control(shared_server: None) -> None:
    alice = session(100_000)
    alice.button(key="start").click().run()
    alice_run = runs.registry().get(alice.session_state.train_run_id)
    bob = linked({"run": alice_run.id, "seat": seat_key("Bob")})  # a guessed or shared id: a view link
    assert not bob.exception and bob.session_state.train_run_id == alice_run.id
    assert bob.button(key="start").label == "Train this experiment yourself"
    assert all(bob.button(key=name).disabled for name in ("pause", "step", "stop", "rename_train", "delete_train"))
    forged_click(bob, "stop")
    forged_click(bob, "delete_train")
    assert alice_run.status == "running" and alice_run.run_dir.is_dir()
    bob.button(key="start").click().run()  # trains the experiment as Bob's own run: it waits for the slot
    bob_run = runs.registry().get(bob.session_state.train_run_id)
    assert bob_run.id != alice_run.id and bob_run.owner != alice_run.owner and bob_run.status == "queued"
    assert alice_run.status == "running"
    carol = linked({"run": alice_run.id, "control": alice_run.control_key})  # the link Alice chose to hand out
    assert "control" not in carol.query_params and alice_run.control_key not in carol.code[-1].value
    assert not carol.button(key="stop").disabled
    carol.button(key="stop").click().run()
    assert alice_run.status == "stopped"


@pytest.mark.slow
def test_lesson_runs_are_owned_bounded_and_show_their_place_and_stop(shared_server: None) -> None:
    alice = session(100_000)
    alice.button(key="start").click().run()
    bob = linked({"seat": seat_key("Bob")})
    bob.switch_page("app_pages/lessons.py").run()
    bob.radio(key=f"prediction_{next(iter(LESSONS))}").set_value(0).run()  # the prediction comes first
    bob.button(key="lesson_start").click().run()
    lesson_run = runs.registry().get(next(iter(bob.session_state.lesson_runs.values())))
    alice_run = runs.registry().get(alice.session_state.train_run_id)
    assert lesson_run.status == "queued" and lesson_run.owner != alice_run.owner
    assert lesson_run.lesson == next(iter(LESSONS))  # recorded by the server at its start
    assert any("place 1 of 1 in the queue" in info.value for info in bob.info)
    assert bob.button(key="lesson_start").disabled and not bob.button(key="lesson_stop").disabled
    folders = len(list(runs.registry().runs_dir.iterdir()))
    forged_click(bob, "lesson_start")  # "Run it again" while one is queued
    assert len(list(runs.registry().runs_dir.iterdir())) == folders
    alice.switch_page("app_pages/compare.py").run()
    assert not any(box.key == "manage_compare" for box in alice.get("selectbox"))  # Alice lists no comparison
    bob.button(key="lesson_stop").click().run()
    assert lesson_run.status == "stopped" and runs.registry().queue_position(lesson_run) == (0, 0)


@pytest.mark.slow
def test_the_teacher_sees_every_run_with_its_owner_and_stops_any(shared_server: None) -> None:
    alice = session(100_000)
    alice.button(key="start").click().run()
    alice_run = runs.registry().get(alice.session_state.train_run_id)
    student = linked({"teacher": "a-guess"})
    assert "teacher" not in student.session_state and all("a-guess" not in code.value for code in student.code)
    assert any("teacher token is not this server's" in warning.value for warning in student.warning)
    teacher = linked({"teacher": TEACHER_TOKEN})
    assert all(TEACHER_TOKEN not in code.value for code in teacher.code)  # no Share box repeats the token
    teacher.switch_page("app_pages/classroom.py").run()
    assert not teacher.exception and not teacher.error
    table = table_with(teacher, "owner")
    row = table[table["id"] == alice_run.id].iloc[0]
    assert (row["status"], row["owner"]) == ("running", "student")
    assert row["memory while training"]
    teacher.button(key="class_stop").click().run()
    assert alice_run.status == "stopped"


def test_a_visitor_without_a_seat_reads_but_cannot_start_anything(shared_server: None) -> None:
    alice = session(100_000)
    alice.button(key="start").click().run()
    alice_run = runs.registry().get(alice.session_state.train_run_id)
    visitor = linked({"run": alice_run.id, "seat": "a-made-up-key-of-the-right-length"})
    assert "seat" not in visitor.query_params and len(visitor.warning) == 1  # the link's key is not a seat
    assert visitor.session_state.train_run_id == alice_run.id  # a shared link still shows the run
    assert visitor.button(key="start").disabled and visitor.button(key="step").disabled
    forged_click(visitor, "start")  # a hand-made click on the disabled button (the registry refuses it too)
    visitor.switch_page("app_pages/lessons.py").run()
    visitor.radio(key=f"prediction_{next(iter(LESSONS))}").set_value(0).run()
    assert visitor.button(key="lesson_start").disabled and not visitor.exception
    forged_click(visitor, "lesson_start")
    for page, key in (("app_pages/compare.py", "compare_start"), ("app_pages/study.py", "study_start")):
        visitor.switch_page(page).run()
        assert visitor.button(key=key).disabled and not visitor.exception
        forged_click(visitor, key)
    visitor.switch_page("app_pages/glossary.py").run()
    assert not visitor.exception
    assert [summary.id for summary in runs.registry().list(everyone=True)] == [alice_run.id]  # nothing was created


def test_with_auth_configured_the_page_offers_login_and_a_login_is_a_seat(shared_server: None) -> None:
    at = new_app()
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s",
                          "client_id": "c", "client_secret": "x", "server_metadata_url": "https://idp.example/.wk"}
    at.run()
    assert any(button.key == "train_login_default" for button in at.button) and at.button(key="start").disabled
    at.user = {"is_logged_in": True, "iss": "https://idp.example", "sub": "ada-1", "name": "Ada"}
    at.run()
    assert not at.button(key="start").disabled and not any(b.key == "train_login_default" for b in at.button)
    for key, value in (("hidden_dim", 8), ("emb_dim", 4), ("val_size", 16), ("steps", 20)):
        at.number_input(key=key).set_value(value)
    at.run().button(key="start").click().run()
    run = runs.registry().get(at.session_state.train_run_id)
    classroom = runs.registry().classroom
    assert classroom is not None and classroom.book.name(run.owner) == "Ada"
    assert [seat.how for seat in classroom.book.all()] == ["login"]


def test_the_teacher_issues_a_seat_link_and_revoking_it_stops_its_runs(shared_server: None) -> None:
    teacher = linked({"teacher": TEACHER_TOKEN})
    teacher.switch_page("app_pages/classroom.py").run()
    teacher.text_input(key="class_seat_name").set_value("Ada").run()
    teacher.button(key="class_issue").click().run()
    link = teacher.code[0].value
    key = link.rsplit("seat=", 1)[1]
    classroom = runs.registry().classroom
    assert classroom is not None and [seat.name for seat in classroom.book.all()] == ["Ada"]
    ada = linked({"seat": key})
    for name, value in (("hidden_dim", 8), ("emb_dim", 4), ("val_size", 16), ("steps", 100_000)):
        ada.number_input(key=name).set_value(value)
    ada.run().button(key="start").click().run()
    ada_run = runs.registry().get(ada.session_state.train_run_id)
    assert ada_run.status == "running"
    teacher.run()
    assert table_with(teacher, "seat")["runs"].iloc[0].startswith(ada_run.name)  # the seat, listed with its runs
    teacher.button(key="class_revoke").click().run()
    assert ada_run.status == "stopped"
    ada.run()
    assert ada.button(key="start").disabled  # the link grants nothing any more
    teacher.button(key="class_new_link").click().run()
    assert linked({"seat": teacher.code[0].value.rsplit("seat=", 1)[1]}).button(key="start").label == "Start"


def test_the_class_page_takes_a_lesson_s_runs_from_the_server_not_from_their_names(shared_server: None) -> None:
    bob = linked({"seat": seat_key("Bob")})
    bob.switch_page("app_pages/compare.py").run()
    for key, value in (("hidden_dim", 8), ("emb_dim", 4), ("val_size", 16), ("steps", 2)):
        bob.number_input(key=key).set_value(value)
    bob.run().button(key="compare_start").click().run()
    comparison = runs.registry().get(bob.session_state.compare_run_id)
    comparison.join(60)
    lesson = next(iter(LESSONS))
    runs.registry().rename(comparison.id, f"lesson-{lesson}")  # a comparison named like a lesson run
    teacher = linked({"teacher": TEACHER_TOKEN})
    teacher.switch_page("app_pages/classroom.py").run()
    teacher.selectbox(key="class_lesson").set_value(lesson).run()
    assert not teacher.exception and not [chart for chart in teacher.get("plotly_chart")]
