"""Shared mode's seats and quotas (library level): training needs a seat the teacher issued, seats survive a
restart and can be revoked, ids cannot be guessed, control by owner or control key, one quota per seat in workers
over every kind of run, a bounded queue per seat and on the server, the runs of an absent seat stop whatever their
status, what a run is comes from the server and not its name, and a lesson's class runs overlay as seeds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from playground.cli import main
from playground.core.config import ConfigError, TrainConfig
from playground.course.lessons import class_snapshot
from playground.experiments.comparison import CompareConfig
from playground.experiments.study_grid import StudyConfig
from playground.runs import registry as runs_registry
from playground.runs.background import RunError
from playground.runs.compare_engine import CompareEngine
from playground.runs.protocol import RunKind, RunPlan
from playground.runs.registry import RunRegistry, registry, reset_registry
from playground.runs.seats import SEATS_FILE, TEACHER, Classroom, SeatBook
from playground.runs.study_engine import StudyEngine
from playground.training.run_folder import RunStatus, read_run_file
from tests.test_runs import TINY, wait_for


def classroom(runs_dir: Path, **limits: float) -> Classroom:
    return Classroom(SeatBook(runs_dir / SEATS_FILE), **limits)


@pytest.fixture
def shared(tmp_path: Path):
    registry = RunRegistry(tmp_path / "runs", max_active=1, classroom=classroom(tmp_path / "runs"))
    yield registry
    registry.stop_all()


def seat(registry: RunRegistry, name: str) -> str:
    assert registry.classroom is not None
    return registry.classroom.book.issue(name)[0].id


def launch(registry: RunRegistry, owner: str, steps: int = 100_000, one_step: bool = False,
           plan: RunPlan | None = None):
    config = TINY.replace(steps=steps)
    return registry.launch("run", plan or RunPlan.train(config), owner=owner, one_step=one_step)


def test_training_needs_a_seat_and_a_refused_start_creates_nothing(shared: RunRegistry) -> None:
    for owner in ("", "0123456789abcdef", "a" * 32):  # no seat, a made-up seat id, an old cookie identity
        with pytest.raises(RunError, match="needs a seat"):
            launch(shared, owner)
    assert not shared.runs_dir.exists() or not any(path.is_dir() for path in shared.runs_dir.iterdir())
    alice = seat(shared, "Alice")
    assert launch(shared, alice).status == RunStatus.RUNNING
    assert launch(shared, TEACHER, steps=5).status == RunStatus.QUEUED  # the teacher's token is a seat too


def test_seats_survive_a_restart_keep_no_key_and_can_be_revoked_or_given_a_new_link(tmp_path: Path) -> None:
    book = SeatBook(tmp_path / SEATS_FILE)
    alice, key = book.issue("Alice\u202e <b>")
    assert len(key) >= 32 and book.by_key(key) == alice and alice.name == "Alice <b>"  # no bidi control kept
    assert key not in (tmp_path / SEATS_FILE).read_text()  # the file holds a hash: it grants nothing
    again = SeatBook(tmp_path / SEATS_FILE)  # a server restart
    assert again.by_key(key) == alice and again.holds(alice.id)
    assert again.by_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None and again.by_key("") is None
    _, bob_key = SeatBook(tmp_path / SEATS_FILE).issue("Bob")  # another process (the CLI) issues a seat
    assert again.by_key(bob_key) is not None and {seat.name for seat in again.all()} == {"Alice <b>", "Bob"}
    fresh = again.new_key(alice.id)
    assert again.by_key(key) is None and again.by_key(fresh) is not None  # the old link stops working
    again.revoke(alice.id)
    assert again.by_key(fresh) is None and not again.holds(alice.id)
    assert not SeatBook(tmp_path / SEATS_FILE).holds(alice.id)  # revoked stays revoked after a restart
    with pytest.raises(RunError, match="give the seat a name"):
        again.issue(" \u200f ")


def test_the_cli_issues_and_revokes_seats_a_server_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = SeatBook(tmp_path / SEATS_FILE)  # the server's, loaded before the CLI runs
    assert main(["seats", "--runs-dir", str(tmp_path), "--issue", "Ada", "--url", "http://class:8501", "--json"]) == 0
    made = json.loads(capsys.readouterr().out.splitlines()[-1])["made"]
    key = made["link"].removeprefix("http://class:8501/?seat=")
    assert book.by_key(key) is not None and book.by_key(key).id == made["id"]
    assert main(["seats", "--runs-dir", str(tmp_path), "--revoke", made["id"]]) == 0
    assert book.by_key(key) is None
    assert main(["seats", "--runs-dir", str(tmp_path), "--revoke", "0" * 16]) == 2


def test_a_login_is_a_seat_once_and_stays_revoked(tmp_path: Path) -> None:
    book = SeatBook(tmp_path / SEATS_FILE)
    first = book.by_login("https://idp.example", "subject-1", "Ada")
    assert first is not None and first.how == "login"
    assert book.by_login("https://idp.example", "subject-1", "another name") == first
    assert book.by_login("https://other.example", "subject-1", "Ada") != first  # another issuer, another person
    assert book.by_login("https://idp.example", "", "Ada") is None
    book.revoke(first.id)
    assert book.by_login("https://idp.example", "subject-1", "Ada") is None


def test_a_damaged_seats_file_is_named_and_replaced_by_the_next_seat(tmp_path: Path) -> None:
    (tmp_path / SEATS_FILE).write_text(json.dumps({"seats": [{"id": "x", "name": 1}]}))
    book = SeatBook(tmp_path / SEATS_FILE)
    assert book.problem and book.all() == []
    book.issue("Ada")
    assert not book.problem and len(SeatBook(tmp_path / SEATS_FILE).all()) == 1


def test_a_run_id_ends_in_64_random_bits_and_errors_name_no_server_path(shared: RunRegistry) -> None:
    run = launch(shared, seat(shared, "Alice"), steps=1)
    suffix = run.id.rsplit("-", 1)[1]
    assert len(suffix) == 16 and int(suffix, 16) >= 0  # 16 hex digits: 64 bits
    assert len(run.control_key) >= 20 and run.control_key not in run.id
    for read in (lambda: shared.get(run.id[:-1]), lambda: shared.metrics_file(run.id[:-1]),
                 lambda: shared.rename(run.id[:-1], "x"), lambda: shared.delete(run.id[:-1])):
        with pytest.raises(RunError) as error:
            read()
        assert str(shared.runs_dir.parent) not in str(error.value), error.value


def test_only_the_owner_or_a_holder_of_the_control_key_may_control(shared: RunRegistry) -> None:
    alice, bob = seat(shared, "Alice"), seat(shared, "Bob")
    run = launch(shared, alice, steps=1)
    assert shared.may_control(run.id, alice)
    assert not shared.may_control(run.id, bob)  # knowing the id (a view link) grants no control
    assert not shared.may_control(run.id, bob, {"guess"})
    assert shared.may_control(run.id, bob, {run.control_key})
    assert not shared.may_control(run.id, "")
    run.join(30)
    on_disk = RunRegistry(shared.runs_dir, classroom=classroom(shared.runs_dir))  # after a restart: from run.json
    assert on_disk.may_control(run.id, alice) and on_disk.may_control(run.id, bob, {run.control_key})
    assert not on_disk.may_control(run.id, bob)
    assert RunRegistry(shared.runs_dir).may_control(run.id, bob)  # one person's own machine: no owners


def test_one_quota_per_seat_over_every_kind_and_bounded_queues(shared: RunRegistry) -> None:
    assert shared.classroom is not None
    shared.classroom.max_queued = 2
    alice, bob, carol = seat(shared, "Alice"), seat(shared, "Bob"), seat(shared, "Carol")
    alice_trains = launch(shared, alice)
    comparison = CompareConfig.build(TINY, [0.0, 1.0])
    alice_compares = shared.launch("lesson", RunPlan.compare(comparison), owner=alice)
    assert (alice_trains.status, alice_compares.status) == (RunStatus.RUNNING, RunStatus.QUEUED)
    with pytest.raises(RunError, match="waiting in the queue already"):
        launch(shared, alice, one_step=True)
    bob_waits = launch(shared, bob)
    assert shared.queue_position(bob_waits) == (2, 2)
    with pytest.raises(RunError, match="queue is full"):  # the server's bound, whoever asks
        launch(shared, carol)
    assert sum(path.is_dir() for path in shared.runs_dir.iterdir()) == 3  # the refused starts created nothing


def test_a_run_counts_against_the_slots_and_the_seat_as_the_workers_it_uses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A comparison stands in for a study's two local conditions (a study would start Ray)."""
    real = runs_registry.footprint
    monkeypatch.setattr(runs_registry, "footprint", lambda kind, config, *where: (
        real(kind, config, *where)[0], 2 if kind == RunKind.COMPARE else 1))
    registry = RunRegistry(tmp_path / "runs", max_active=3, classroom=classroom(tmp_path / "runs", per_seat=2))
    try:
        alice, bob = seat(registry, "Alice"), seat(registry, "Bob")
        two_workers = RunPlan.compare(CompareConfig.build(TINY.replace(steps=100_000), [0.0, 1.0]))
        two = launch(registry, alice, plan=two_workers)
        assert two.status == RunStatus.RUNNING and two.workers == 2
        assert launch(registry, alice).status == RunStatus.QUEUED  # Alice's 2 workers are her seat's share
        assert launch(registry, bob).status == RunStatus.RUNNING  # the third slot
        assert launch(registry, bob, plan=two_workers).status == RunStatus.QUEUED  # 3 + 2 > 3
        registry.classroom.per_seat = 1
        with pytest.raises(RunError, match="more than the 1 a seat may use"):  # could never start: refused
            launch(registry, seat(registry, "Carol"), plan=two_workers)
    finally:
        registry.stop_all()
    study = StudyConfig.build(TINY, ["reverse"], [5, 6], [3], [16], [0.0, 1.0], [], 2)
    assert StudyEngine(study, num_cpus=1).workers == 1 and StudyEngine(study, num_cpus=8).workers == 2  # 2 cells


def test_a_paused_run_frees_its_slot_after_the_idle_time_and_can_be_continued(shared: RunRegistry) -> None:
    assert shared.classroom is not None
    alice, bob = seat(shared, "Alice"), seat(shared, "Bob")
    paused = launch(shared, alice, steps=60, one_step=True)
    wait_for(lambda: paused.step == 1 and paused.status == RunStatus.PAUSED)
    shared.classroom.idle_seconds, paused.last_control = 0.5, time.monotonic()  # idle from here: its worker took
    waiting = launch(shared, bob, steps=5)  # its step
    assert waiting.status == RunStatus.QUEUED  # the paused run still holds the slot
    for _ in range(3):
        shared.classroom.presence.seen(alice)  # Alice's page stays open: her pause alone is what expires
        shared.classroom.presence.seen(bob)
        time.sleep(0.25)
    shared.queue_position(waiting)  # what a waiting page asks every few seconds
    wait_for(lambda: waiting.status == RunStatus.FINISHED)
    assert (paused.status, paused.step) == (RunStatus.STOPPED, 1)
    paused.train_on(60)  # saved: it continues where it was
    wait_for(lambda: paused.status == RunStatus.FINISHED)


def test_the_runs_of_a_seat_with_no_page_open_stop_whatever_their_status(shared: RunRegistry) -> None:
    assert shared.classroom is not None
    shared.classroom.idle_seconds = 0.5
    alice, bob, carol = seat(shared, "Alice"), seat(shared, "Bob"), seat(shared, "Carol")
    shared.classroom.presence.opened(carol)  # Carol keeps a page open (a session of hers is connected)
    training, queued = launch(shared, alice), launch(shared, bob)
    present = launch(shared, carol)
    time.sleep(0.6)
    shared.release_idle()  # what the registry's watchdog does every few seconds
    wait_for(lambda: training.status == RunStatus.STOPPED)
    assert queued.status == RunStatus.STOPPED and queued.step == 0
    wait_for(lambda: present.status == RunStatus.RUNNING)  # the freed slot went to the seat that is here
    assert read_run_file(training.run_dir)["step"] == training.step > 0  # saved: Train on continues it
    shared.classroom.book.revoke(carol)  # a revoked seat holds nothing, page open or not
    shared.release_idle()
    wait_for(lambda: present.status == RunStatus.STOPPED)


def test_what_a_run_is_comes_from_the_server_never_from_its_name(shared: RunRegistry) -> None:
    alice = seat(shared, "Alice")
    comparison = CompareConfig.build(TINY.replace(steps=1), [0.0, 1.0])
    lesson = shared.launch("lesson-exposure_bias", RunPlan.compare(comparison), owner=alice, lesson="exposure_bias")
    lesson.join(30)
    forged = shared.launch("compare", RunPlan.compare(comparison), owner=alice)
    forged.join(30)
    shared.rename(forged.id, "lesson-exposure_bias")  # a student names a comparison like a lesson run
    assert {s.id: s.lesson for s in shared.list(everyone=True)} == {lesson.id: "exposure_bias", forged.id: ""}
    assert read_run_file(lesson.run_dir)["lesson"] == "exposure_bias"
    restarted = RunRegistry(shared.runs_dir, classroom=classroom(shared.runs_dir))
    assert {s.id: s.lesson for s in restarted.list(everyone=True)} == {lesson.id: "exposure_bias", forged.id: ""}
    assert restarted.get(lesson.id).lesson == "exposure_bias"


def test_the_teacher_lists_everyone_and_sees_who_is_gone(shared: RunRegistry) -> None:
    assert shared.classroom is not None
    alice, bob = seat(shared, "Alice"), seat(shared, "Bob")
    launch(shared, alice, steps=1)
    launch(shared, bob, steps=1)
    shared.classroom.presence.seen(alice)
    assert [s.owner for s in shared.list(alice)] == [alice]
    assert sorted(s.owner for s in shared.list(everyone=True)) == sorted([alice, bob])
    assert shared.classroom.presence.here(alice) and not shared.classroom.presence.here(bob)
    assert "owner" not in shared.list(alice)[0].as_dict()  # a seat never reaches a JSON line
    cli = RunRegistry(shared.runs_dir).launch("cli", RunPlan.train(TINY.replace(steps=1)))  # no owner
    cli.join(30)
    assert shared.list("") == [] and cli.id in {s.id for s in shared.list(everyone=True)}  # no seat sees no run


def test_the_class_runs_of_a_lesson_are_one_comparison_whose_seeds_are_the_students() -> None:
    config = CompareConfig.build(TrainConfig(hidden_dim=16, emb_dim=8, max_len=5, steps=4, eval_every=2,
                                             val_size=16, batch_size=8), [0.0, 1.0])
    snapshots = []
    for seed in (1, 2, 3):
        engine = CompareEngine(CompareConfig.build(config.base.replace(seed=seed), config.ratios))
        for _ in range(2 + seed):
            engine.advance()
        snapshots.append(engine.snapshot())
    combined = class_snapshot(snapshots)
    assert combined is not None and combined.seeds == 3 and combined.labels == snapshots[0].labels
    assert combined.arm_rows(1) == [snapshot.arm_rows(1)[0] for snapshot in snapshots]
    assert combined.step == 3 and combined.config.seeds == 3
    assert class_snapshot([]) is None


def test_a_shared_server_reads_its_limits_from_the_environment_and_names_a_wrong_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PLAYGROUND_SHARED", "1")
    monkeypatch.setenv("PLAYGROUND_MAX_QUEUED", "3")
    reset_registry()
    try:
        classroom = registry().classroom
        assert classroom is not None and classroom.max_queued == 3 and classroom.per_seat == 1
        assert classroom.book.path == tmp_path / "runs" / SEATS_FILE
        for wrong in ("x", "0", "-2", "inf"):
            monkeypatch.setenv("PLAYGROUND_IDLE_MINUTES", wrong)
            reset_registry()
            with pytest.raises(ConfigError, match="PLAYGROUND_IDLE_MINUTES"):
                registry()
    finally:
        monkeypatch.delenv("PLAYGROUND_IDLE_MINUTES")
        reset_registry()
