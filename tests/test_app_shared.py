"""Shared mode (PLAYGROUND_SHARED=1): two browser sessions of one server, each sees only its own runs, and a
start past the limit waits in the queue with its place shown, then starts by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from playground.runs import registry as runs
from tests.conftest import new_app


@pytest.fixture
def shared_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PLAYGROUND_SHARED", "1")
    monkeypatch.setenv("PLAYGROUND_MAX_ACTIVE", "1")
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
