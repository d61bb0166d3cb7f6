"""Shared mode's people (library level): ids that cannot be guessed, control by owner or control key, one quota
per person over every kind of run, a bounded queue per person, idle runs that release their slot, and a lesson's
class runs overlaid as seeds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from playground.core.config import TrainConfig
from playground.course.lessons import class_snapshot
from playground.experiments.comparison import CompareConfig
from playground.runs.background import RunError
from playground.runs.compare_engine import CompareEngine
from playground.runs.protocol import RunPlan
from playground.runs.registry import RunRegistry
from playground.training.run_folder import RunStatus
from tests.test_runs import TINY, wait_for

ALICE, BOB = "a" * 32, "b" * 32


@pytest.fixture
def shared(tmp_path: Path):
    registry = RunRegistry(tmp_path / "runs", max_active=1, shared=True, max_per_session=1, max_queued_per_person=1)
    yield registry
    registry.stop_all()


def launch(registry: RunRegistry, owner: str, steps: int = 100_000, one_step: bool = False):
    config = TINY.replace(steps=steps)
    return registry.launch(owner[:1], RunPlan.train(config), owner=owner, one_step=one_step)


def test_a_run_id_ends_in_64_random_bits_and_errors_name_no_server_path(shared: RunRegistry) -> None:
    run = launch(shared, ALICE, steps=1)
    suffix = run.id.rsplit("-", 1)[1]
    assert len(suffix) == 16 and int(suffix, 16) >= 0  # 16 hex digits: 64 bits
    assert len(run.control_key) >= 20 and run.control_key not in run.id
    for read in (lambda: shared.get(run.id[:-1]), lambda: shared.metrics_file(run.id[:-1]),
                 lambda: shared.rename(run.id[:-1], "x"), lambda: shared.delete(run.id[:-1])):
        with pytest.raises(RunError) as error:
            read()
        assert str(shared.runs_dir.parent) not in str(error.value), error.value


def test_only_the_owner_or_a_holder_of_the_control_key_may_control(shared: RunRegistry, tmp_path: Path) -> None:
    run = launch(shared, ALICE, steps=1)
    assert shared.may_control(run.id, ALICE)
    assert not shared.may_control(run.id, BOB)  # knowing the id (a view link) grants no control
    assert not shared.may_control(run.id, BOB, {"guess"})
    assert shared.may_control(run.id, BOB, {run.control_key})
    assert not shared.may_control(run.id, "")
    run.join(30)
    on_disk = RunRegistry(shared.runs_dir, shared=True)  # after a restart: owner and key come from run.json
    assert on_disk.may_control(run.id, ALICE) and on_disk.may_control(run.id, BOB, {run.control_key})
    assert not on_disk.may_control(run.id, BOB)
    assert RunRegistry(shared.runs_dir).may_control(run.id, BOB)  # one person's own machine: no owners


def test_one_quota_per_person_over_every_kind_and_a_bounded_queue(shared: RunRegistry) -> None:
    alice_trains = launch(shared, ALICE)
    comparison = CompareConfig.build(TINY, [0.0, 1.0])
    alice_compares = shared.launch("lesson", RunPlan.compare(comparison), owner=ALICE)
    assert (alice_trains.status, alice_compares.status) == (RunStatus.RUNNING, RunStatus.QUEUED)
    with pytest.raises(RunError, match="waiting in the queue already"):
        launch(shared, ALICE, one_step=True)
    bob_waits = launch(shared, BOB)
    assert shared.queue_position(bob_waits) == (2, 2)
    assert len(list(shared.runs_dir.iterdir())) == 3  # the refused start created nothing


def test_a_paused_run_frees_its_slot_after_the_idle_time_and_can_be_continued(shared: RunRegistry) -> None:
    paused = launch(shared, ALICE, steps=60, one_step=True)
    wait_for(lambda: paused.step == 1 and paused.status == RunStatus.PAUSED)
    shared.idle_seconds, paused.last_control = 0.5, time.monotonic()  # idle from here: its worker took its step
    shared.seen(BOB)
    waiting = launch(shared, BOB, steps=5)
    assert waiting.status == RunStatus.QUEUED  # the paused run still holds the slot
    time.sleep(0.6)
    shared.seen(BOB)
    shared.queue_position(waiting)  # what a waiting page asks every few seconds
    wait_for(lambda: waiting.status == RunStatus.FINISHED)
    assert (paused.status, paused.step) == (RunStatus.STOPPED, 1)
    paused.train_on(60)  # saved: it continues where it was
    wait_for(lambda: paused.status == RunStatus.FINISHED)


def test_a_queued_run_whose_owner_left_leaves_the_queue(shared: RunRegistry) -> None:
    shared.idle_seconds = 0.5
    launch(shared, ALICE)
    shared.seen(BOB)
    gone = launch(shared, BOB)
    present = launch(shared, "c" * 32)
    for _ in range(3):
        shared.seen("c" * 32)  # this person keeps a page open; Bob closed his
        time.sleep(0.25)
    assert shared.queue_position(present) == (1, 1)
    assert gone.status == RunStatus.STOPPED and gone.step == 0


def test_the_teacher_lists_everyone_and_sees_who_is_gone(shared: RunRegistry) -> None:
    launch(shared, ALICE, steps=1)
    launch(shared, BOB, steps=1)
    shared.seen(ALICE)
    assert [s.owner for s in shared.list(ALICE)] == [ALICE]
    assert sorted(s.owner for s in shared.list(everyone=True)) == [ALICE, BOB]
    assert shared.present(ALICE) and not shared.present(BOB)
    assert "owner" not in shared.list(ALICE)[0].as_dict()  # an identity never reaches a JSON line


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
