"""Shared mode (PLAYGROUND_SHARED=1): two browser sessions of one server, each sees only its own runs, and a
start past the limit waits in the queue with its place shown, then starts by itself; a link to a run shows it
without control (a control link grants it), lesson runs are owned and bounded, and the teacher sees the class."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

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


def session(steps: int) -> AppTest:
    at = new_app().run()
    for key, value in (("hidden_dim", 8), ("emb_dim", 4), ("val_size", 16), ("steps", steps)):
        at.number_input(key=key).set_value(value)
    return at.run()


def listed(at: AppTest) -> list[str]:
    at.run()
    return next((box.options for box in at.get("selectbox") if box.key == "manage_train"), [])


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


def linked(params: dict[str, str]) -> AppTest:
    at = new_app()
    for name, value in params.items():
        at.query_params[name] = value
    return at.run()


def test_a_link_to_another_person_s_run_shows_it_and_only_a_control_link_grants_control(shared_server: None) -> None:
    alice = session(100_000)
    alice.button(key="start").click().run()
    alice_run = runs.registry().get(alice.session_state.train_run_id)
    bob = linked({"run": alice_run.id})  # a guessed or shared id: a view link
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


def test_lesson_runs_are_owned_bounded_and_show_their_place_and_stop(shared_server: None) -> None:
    alice = session(100_000)
    alice.button(key="start").click().run()
    bob = new_app().run()
    bob.switch_page("app_pages/lessons.py").run()
    bob.radio(key=f"prediction_{next(iter(LESSONS))}").set_value(0).run()  # the prediction comes first
    bob.button(key="lesson_start").click().run()
    lesson_run = runs.registry().get(next(iter(bob.session_state.lesson_runs.values())))
    assert lesson_run.status == "queued" and lesson_run.owner == bob.session_state.session_owner
    assert any("place 1 of 1 in the queue" in info.value for info in bob.info)
    assert bob.button(key="lesson_start").disabled and not bob.button(key="lesson_stop").disabled
    folders = len(list(runs.registry().runs_dir.iterdir()))
    forged_click(bob, "lesson_start")  # "Run it again" while one is queued
    assert len(list(runs.registry().runs_dir.iterdir())) == folders
    alice.switch_page("app_pages/compare.py").run()
    assert not any(box.key == "manage_compare" for box in alice.get("selectbox"))  # Alice lists no comparison
    bob.button(key="lesson_stop").click().run()
    assert lesson_run.status == "stopped" and runs.registry().queue_position(lesson_run) == (0, 0)


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
    table = teacher.dataframe[0].value
    row = table[table["id"] == alice_run.id].iloc[0]
    assert (row["status"], row["owner"]) == ("running", f"person {alice_run.owner[:6]}")
    assert row["memory while training"]
    teacher.button(key="class_stop").click().run()
    assert alice_run.status == "stopped"
