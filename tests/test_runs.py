"""The run registry: background training that the page only controls and reads."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from playground.core.config import TrainConfig
from playground.runs.registry import RUN_FILE, RunError, RunRegistry
from playground.training.storage import CHECKPOINT_FILE, METRICS_FILE, read_metrics

TINY = TrainConfig(hidden_dim=16, emb_dim=8, max_len=5, steps=60, eval_every=20, val_size=32, batch_size=16)


@pytest.fixture
def runs(tmp_path: Path):
    registry = RunRegistry(tmp_path / "runs", max_active=2)
    yield registry
    registry.stop_all()


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_run_trains_to_the_end_and_saves_everything(runs: RunRegistry) -> None:
    run = runs.create_training("tiny", TINY)
    assert run.status == "idle"
    run.start()
    assert run.status == "running"  # set before the thread does anything: the page polls at once
    run.join(60)
    snapshot = run.snapshot()
    assert run.status == "finished" and snapshot.step == 60
    assert [row["step"] for row in snapshot.rows] == list(range(61))  # step 0 is the starting evaluation
    assert [row["step"] for row in snapshot.rows if "val_fr_exact" in row] == [0, 20, 40, 60]
    assert snapshot.predictions and snapshot.preview is not None
    for name in (CHECKPOINT_FILE, METRICS_FILE, RUN_FILE, "config.json"):
        assert (run.run_dir / name).exists()
    assert len(read_metrics(run.run_dir)) == 61
    assert json.loads((run.run_dir / RUN_FILE).read_text())["status"] == "finished"


def test_pause_step_resume_and_stop_take_effect_within_a_step(runs: RunRegistry) -> None:
    run = runs.create_training("control", TINY.replace(steps=100_000))
    run.start()
    wait_for(lambda: run.snapshot().step >= 3)
    run.pause()
    time.sleep(0.2)
    paused_at = run.snapshot().step
    time.sleep(0.3)
    assert run.snapshot().step == paused_at and run.status == "paused"
    run.step_once()
    wait_for(lambda: run.snapshot().step == paused_at + 1)
    time.sleep(0.2)
    assert run.snapshot().step == paused_at + 1
    run.resume()
    wait_for(lambda: run.snapshot().step >= paused_at + 5)
    run.stop()
    run.join(10)
    assert run.status == "stopped"
    stopped_at = run.snapshot().step
    assert len(read_metrics(run.run_dir)) == stopped_at + 1
    with pytest.raises(RunError, match="stopped"):
        run.start()


def test_step_from_idle_trains_exactly_one_step(runs: RunRegistry) -> None:
    run = runs.create_training("one", TINY)
    run.step_once()
    wait_for(lambda: run.snapshot().step == 1)
    assert run.status == "paused"
    run.stop()
    run.join(10)
    assert run.status == "stopped"


def test_live_changes_apply_at_the_next_step_and_are_marked(runs: RunRegistry) -> None:
    run = runs.create_training("live", TINY)
    run.step_once()
    wait_for(lambda: run.snapshot().step == 1)
    run.set_live(lr=0.02, teacher_forcing_ratio=0.9)
    run.step_once()
    wait_for(lambda: run.snapshot().step == 2)
    snapshot = run.snapshot()
    assert snapshot.rows[-1]["lr"] == 0.02 and snapshot.rows[-1]["teacher_forcing_ratio"] == 0.9
    assert snapshot.rows[-2]["lr"] == TINY.lr
    assert [(change.step, change.text) for change in snapshot.changes] == [(1, "lr 0.02"), (1, "gamma 0.9")]


def test_a_new_registry_finds_finished_runs_on_disk(tmp_path: Path, runs: RunRegistry) -> None:
    run = runs.create_training("persisted", TINY)
    run.start()
    run.join(60)
    fresh = RunRegistry(runs.runs_dir)
    summaries = fresh.list()
    assert [(s.id, s.name, s.status) for s in summaries] == [(run.id, "persisted", "finished")]
    reopened = fresh.get(run.id)
    assert reopened.status == "finished"
    assert reopened.snapshot().rows == run.snapshot().rows
    assert reopened.snapshot().predictions == run.snapshot().predictions


def test_rename_and_delete(runs: RunRegistry) -> None:
    run = runs.create_training("old", TINY)
    runs.rename(run.id, "new name")
    assert RunRegistry(runs.runs_dir).list()[0].name == "new name"
    with pytest.raises(RunError, match="empty"):
        runs.rename(run.id, "  ")
    runs.delete(run.id)
    assert runs.list() == [] and not run.run_dir.exists()


def test_two_runs_train_at_once_without_disturbing_each_other(runs: RunRegistry) -> None:
    first = runs.create_training("a", TINY.replace(seed=1))
    second = runs.create_training("b", TINY.replace(seed=2))
    first.start()
    second.start()
    first.join(60)
    second.join(60)
    alone = runs.create_training("a again", TINY.replace(seed=1))
    alone.start()
    alone.join(60)
    losses = [[row["train_loss"] for row in run.snapshot().rows[1:]] for run in (first, second, alone)]
    assert losses[0] == losses[2] and losses[0] != losses[1]


def test_at_most_max_active_runs_train(runs: RunRegistry) -> None:
    long = TINY.replace(steps=100_000)
    started = [runs.create_training(name, long) for name in "ab"]
    for run in started:
        run.start()
    third = runs.create_training("c", long)
    with pytest.raises(RunError, match="at most 2"):
        third.start()
    assert third.status == "idle"


def test_divergence_keeps_the_history(runs: RunRegistry) -> None:
    run = runs.create_training("boom", TINY.replace(steps=100_000))

    def explode(original=run.engine.trainer.train_step):
        if run.engine.trainer.step >= 5:
            for parameter in run.engine.trainer.model.parameters():
                parameter.data.fill_(float("nan"))
        return original()

    run.engine.trainer.train_step = explode
    run.start()
    run.join(30)
    assert run.status == "diverged" and "became nan" in run.message
    assert run.snapshot().step == 5 and len(read_metrics(run.run_dir)) == 6


def test_a_failure_is_reported_in_one_line_and_keeps_the_history(runs: RunRegistry) -> None:
    run = runs.create_training("fails", TINY.replace(steps=100_000))

    def broken(original=run.engine.trainer.train_step):
        if run.engine.trainer.step >= 3:
            raise MemoryError("out of memory")
        return original()

    run.engine.trainer.train_step = broken
    run.start()
    run.join(30)
    assert run.status == "failed" and run.message == "MemoryError: out of memory"
    assert run.snapshot().step == 3 and len(read_metrics(run.run_dir)) == 4


def test_unknown_run_is_a_clear_error(runs: RunRegistry) -> None:
    with pytest.raises(RunError, match="no run"):
        runs.get("nope")



def test_a_damaged_run_on_disk_is_listed_renamed_and_deleted_without_loading(runs: RunRegistry) -> None:
    run = runs.create_training("damaged", TINY)
    run.step_once()
    wait_for(lambda: run.snapshot().step == 1)
    run.stop()
    run.join(10)
    (run.run_dir / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    fresh = RunRegistry(runs.runs_dir)
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        fresh.get(run.id)
    fresh.rename(run.id, "still listed")
    assert [s.name for s in fresh.list()] == ["still listed"]
    assert fresh.metrics_csv(run.id).splitlines()[0].startswith("step,seconds,train_loss")
    fresh.delete(run.id)
    assert fresh.list() == [] and not run.run_dir.exists()


def test_metrics_csv_of_a_run_in_memory_has_every_row_so_far(runs: RunRegistry) -> None:
    run = runs.create_training("live", TINY)
    run.start()
    run.join(60)
    lines = runs.metrics_csv(run.id).splitlines()
    assert len(lines) == 1 + len(run.snapshot().rows)


@pytest.mark.parametrize("run_id", ["", ".", "..", "../elsewhere", "a/b"])
def test_a_run_id_is_a_folder_name_never_a_path(runs: RunRegistry, run_id: str) -> None:
    with pytest.raises(RunError, match="not a run id"):
        runs.get(run_id)
    with pytest.raises(RunError, match="not a run id"):
        runs.delete(run_id)
