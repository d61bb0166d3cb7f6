"""The run registry: background training that the page only controls and reads."""

from __future__ import annotations

import errno
import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from playground.core.config import TrainConfig
from playground.experiments.comparison import CompareConfig
from playground.runs import background
from playground.runs.background import BackgroundRun, RunError
from playground.runs.compare_engine import CompareEngine
from playground.runs.registry import RunRegistry
from playground.runs.train_engine import TrainingEngine
from playground.training import checkpoints, run_folder
from playground.training.checkpoints import load_checkpoint
from playground.training.run_folder import (
    CHECKPOINT_FILE,
    FINAL_STATUSES,
    METRICS_FILE,
    RUN_FILE,
    RunKind,
    RunStatus,
    read_metrics,
)

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


def launch(registry: RunRegistry, name: str, config: TrainConfig = TINY, one_step: bool = False):
    return registry.launch(name, TrainingEngine.create(config), config, one_step=one_step)


def stepped(registry: RunRegistry, name: str, config: TrainConfig = TINY):
    """A run that has trained exactly one step and waits, paused (the nearest thing to an idle run)."""
    run = launch(registry, name, config, one_step=True)
    wait_for(lambda: run.step == 1 and run.status == RunStatus.PAUSED)
    return run


def folders(registry: RunRegistry) -> list[str]:
    return sorted(path.name for path in registry.runs_dir.iterdir()) if registry.runs_dir.exists() else []


def test_a_run_trains_to_the_end_and_saves_everything(runs: RunRegistry) -> None:
    run = launch(runs, "tiny")
    assert run.status == "running"  # set before the thread does anything: the page polls at once
    assert run.kind == RunKind.TRAIN and run.total_steps == 60 and run.name == "tiny"
    run.join(60)
    snapshot = run.snapshot()
    assert run.status == "finished" and snapshot.step == run.step == 60 and not run.active
    assert [row["step"] for row in snapshot.rows] == list(range(61))  # step 0 is the starting evaluation
    assert [row["step"] for row in snapshot.rows if "val_fr_exact" in row] == [0, 20, 40, 60]
    assert snapshot.predictions and snapshot.preview is not None and snapshot.config == TINY
    for name in (CHECKPOINT_FILE, METRICS_FILE, RUN_FILE, "config.json"):
        assert (run.run_dir / name).exists()
    assert len(read_metrics(run.run_dir)) == 61
    info = json.loads((run.run_dir / RUN_FILE).read_text())
    assert (info["status"], info["kind"], info["step"], info["total_steps"]) == ("finished", "train", 60, 60)
    assert load_checkpoint(run.run_dir / CHECKPOINT_FILE).step == 60
    (model,) = run.models()
    assert model.step == 60 and model.config == TINY and not model.model.training


def test_pause_step_resume_and_stop_take_effect_within_a_step(runs: RunRegistry) -> None:
    run = launch(runs, "control", TINY.replace(steps=100_000))
    wait_for(lambda: run.snapshot().step >= 3)
    run.pause()
    time.sleep(0.2)
    paused_at = run.snapshot().step
    time.sleep(0.3)
    assert run.snapshot().step == paused_at and run.status == "paused" and run.active
    run.step_once()
    wait_for(lambda: run.snapshot().step == paused_at + 1)
    time.sleep(0.2)
    assert run.snapshot().step == paused_at + 1
    run.resume()
    wait_for(lambda: run.snapshot().step >= paused_at + 5)
    run.stop()
    run.join(10)
    assert run.status == "stopped" and not run.active
    stopped_at = run.snapshot().step
    assert len(read_metrics(run.run_dir)) == stopped_at + 1
    assert load_checkpoint(run.run_dir / CHECKPOINT_FILE).step == stopped_at
    with pytest.raises(RunError, match="stopped"):
        run.start()


def test_a_stopped_run_continues_to_more_steps(runs: RunRegistry) -> None:
    run = stepped(runs, "more")
    run.stop()
    run.join(10)
    with pytest.raises(RunError, match="give more steps than that"):
        run.continue_to(1)
    run.continue_to(5)
    assert (run.status, run.total_steps) == ("idle", 5)
    run.start()
    run.join(30)
    assert (run.status, run.step) == ("finished", 5)
    assert [row["step"] for row in run.snapshot().rows] == list(range(6))


def test_step_from_idle_trains_exactly_one_step(runs: RunRegistry) -> None:
    run = launch(runs, "one", one_step=True)
    wait_for(lambda: run.snapshot().step == 1)
    time.sleep(0.2)
    assert run.status == "paused" and run.step == 1
    run.stop()
    run.join(10)
    assert run.status == "stopped"


def test_live_changes_apply_at_the_next_step_and_are_marked(runs: RunRegistry) -> None:
    run = stepped(runs, "live")
    run.set_live({"lr": 0.02, "teacher_forcing_ratio": 0.9})
    run.step_once()
    wait_for(lambda: run.snapshot().step == 2)
    snapshot = run.snapshot()
    assert snapshot.rows[-1]["lr"] == 0.02 and snapshot.rows[-1]["teacher_forcing_ratio"] == 0.9
    assert snapshot.rows[-2]["lr"] == TINY.lr
    assert (snapshot.config.lr, snapshot.config.teacher_forcing_ratio) == (0.02, 0.9)
    assert [(change.step, change.text) for change in snapshot.changes] == [
        (1, "Learning rate 0.02"), (1, "Teacher-forcing ratio γ 0.9")]
    run.set_live({"lr": 0.02})  # no change, no marker
    assert len(run.snapshot().changes) == 2


def test_a_new_registry_finds_finished_runs_on_disk(tmp_path: Path, runs: RunRegistry) -> None:
    run = launch(runs, "persisted")
    run.join(60)
    fresh = RunRegistry(runs.runs_dir)
    summaries = fresh.list()
    assert [s.as_dict() for s in summaries] == [
        {"id": run.id, "name": "persisted", "kind": "train", "status": "finished", "step": 60, "total_steps": 60}]
    reopened = fresh.get(run.id)
    assert reopened.status == "finished" and reopened.kind == RunKind.TRAIN and reopened.step == 60
    assert reopened.snapshot().rows == run.snapshot().rows
    assert reopened.snapshot().predictions == run.snapshot().predictions
    assert reopened.snapshot().exact_by_length == run.snapshot().exact_by_length
    assert fresh.get(run.id) is reopened  # loaded once


def test_rename_and_delete(runs: RunRegistry) -> None:
    run = stepped(runs, "old")
    runs.rename(run.id, "new name")
    assert RunRegistry(runs.runs_dir).list()[0].name == "new name"
    assert run.name == "new name"
    with pytest.raises(RunError, match="empty"):
        runs.rename(run.id, "  ")
    runs.delete(run.id)  # stops it first
    assert runs.list() == [] and not run.run_dir.exists() and run.status == "stopped"


def test_a_run_on_disk_is_renamed_without_loading(runs: RunRegistry) -> None:
    run = launch(runs, "on disk")
    run.join(60)
    fresh = RunRegistry(runs.runs_dir)
    fresh.rename(run.id, "renamed")
    assert [s.name for s in RunRegistry(runs.runs_dir).list()] == ["renamed"]
    with pytest.raises(RunError, match="no run"):
        fresh.rename("nope", "x")


@pytest.mark.slow
def test_two_runs_train_at_once_without_disturbing_each_other(runs: RunRegistry) -> None:
    first = launch(runs, "a", TINY.replace(seed=1))
    second = launch(runs, "b", TINY.replace(seed=2))
    first.join(60)
    second.join(60)
    alone = launch(runs, "a again", TINY.replace(seed=1))
    alone.join(60)
    losses = [[row["train_loss"] for row in run.snapshot().rows[1:]] for run in (first, second, alone)]
    assert losses[0] == losses[2] and losses[0] != losses[1]


def test_at_most_max_active_runs_train(runs: RunRegistry) -> None:
    long = TINY.replace(steps=100_000)
    started = [launch(runs, name, long) for name in "ab"]
    assert all(run.status == "running" for run in started)
    with pytest.raises(RunError, match="at most 2"):
        launch(runs, "c", long)
    assert sorted(s.name for s in runs.list()) == ["a", "b"]
    started[0].pause()  # a paused run still holds its slot
    with pytest.raises(RunError, match="at most 2"):
        launch(runs, "c", long)
    started[0].stop()
    started[0].join(10)
    third = launch(runs, "c", long)  # a stopped run frees it
    assert third.status == "running"


def test_a_refused_launch_creates_no_folder(runs: RunRegistry) -> None:
    long = TINY.replace(steps=100_000)
    for name in "ab":
        launch(runs, name, long)
    before = folders(runs)
    assert len(before) == 2
    with pytest.raises(RunError, match="at most 2"):
        launch(runs, "refused", long)
    with pytest.raises(RunError, match="at most 2"):
        launch(runs, "refused step", long, one_step=True)
    comparison = CompareConfig.build(long, [0.0, 1.0])
    with pytest.raises(RunError, match="at most 2"):
        runs.launch("refused comparison", CompareEngine(comparison), comparison.base)
    assert folders(runs) == before
    assert sorted(s.name for s in runs.list()) == ["a", "b"]


def test_a_run_over_the_memory_budget_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    registry = RunRegistry(tmp_path / "runs", memory_budget=1.0)
    with pytest.raises(RunError, match="memory"):
        launch(registry, "too big")
    assert folders(registry) == [] and registry.list() == []


def test_divergence_keeps_the_history(runs: RunRegistry) -> None:
    config = TINY.replace(steps=100_000)
    engine = TrainingEngine.create(config)
    trainer = engine.trainer

    def explode(original=trainer.train_step):
        if trainer.step >= 5:
            for parameter in trainer.model.parameters():
                parameter.data.fill_(float("nan"))
        return original()

    trainer.train_step = explode
    run = runs.launch("boom", engine, config)
    run.join(30)
    assert run.status == "diverged" and "became nan" in run.message and not run.active
    assert run.snapshot().step == 5 and len(read_metrics(run.run_dir)) == 6
    assert json.loads((run.run_dir / RUN_FILE).read_text())["status"] == "diverged"


def test_a_failure_is_reported_in_one_line_and_keeps_the_history(runs: RunRegistry) -> None:
    config = TINY.replace(steps=100_000)
    engine = TrainingEngine.create(config)
    trainer = engine.trainer

    def broken(original=trainer.train_step):
        if trainer.step >= 3:
            raise MemoryError("out of memory")
        return original()

    trainer.train_step = broken
    run = runs.launch("fails", engine, config)
    run.join(30)
    assert run.status == "failed" and run.message == "MemoryError: out of memory" and not run.active
    assert run.snapshot().step == 3 and len(read_metrics(run.run_dir)) == 4


def test_a_run_whose_save_fails_ends_failed_and_frees_its_slot(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    registry = RunRegistry(tmp_path / "runs", max_active=1)
    monkeypatch.setattr(background, "SAVE_EVERY_SECONDS", 0.0)  # save after every step
    long = TINY.replace(steps=100_000)
    run = launch(registry, "unwritable", long)
    wait_for(lambda: run.step >= 3)
    with pytest.raises(RunError, match="at most 1"):
        launch(registry, "waits", long)

    def read_only(path: Path, data: bytes) -> None:
        raise OSError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(run_folder, "atomic_write", read_only)
    monkeypatch.setattr(checkpoints, "atomic_write", read_only)
    run.join(30)  # it ends by itself: nobody pressed stop
    assert run.status == "failed" and not run.active and run.status in FINAL_STATUSES
    assert run.message.startswith("could not save the run: Permission denied")
    assert len(run.snapshot().rows) == run.step + 1  # the history stays in memory
    assert [(s.id, s.status) for s in registry.list()] == [(run.id, "failed")]
    monkeypatch.undo()
    after = launch(registry, "next", TINY.replace(steps=5))  # the slot is free again
    after.join(30)
    assert after.status == "finished"


@pytest.mark.slow
def test_a_comparison_is_listed_reopened_by_a_new_registry_and_deleted(runs: RunRegistry) -> None:
    config = CompareConfig.build(TINY.replace(steps=12, eval_every=6), [0.0, 1.0], seeds=2)
    run = runs.launch("side by side", CompareEngine(config), config.base)
    run.join(60)
    assert run.status == "finished" and run.kind == RunKind.COMPARE
    (summary,) = runs.list()
    assert summary.as_dict() == {"id": run.id, "name": "side by side", "kind": "compare", "status": "finished",
                                 "step": 12, "total_steps": 12}
    before = run.snapshot()
    assert len(before.rows) == 4 and all(rows[-1]["step"] == 12 for rows in before.rows)

    fresh = RunRegistry(runs.runs_dir)
    assert [s.as_dict() for s in fresh.list()] == [summary.as_dict()]
    reopened = fresh.get(run.id)
    assert (reopened.kind, reopened.status, reopened.step, reopened.name) == (
        RunKind.COMPARE, "finished", 12, "side by side")
    after = reopened.snapshot()
    assert after.config == config and after.labels == before.labels and after.seeds == 2
    assert after.rows == before.rows  # every model's rows, evaluations included
    for saved, trained in zip(reopened.models(), run.models(), strict=True):
        assert saved.label == trained.label
        state = trained.model.state_dict()
        assert all(torch.equal(value, state[name]) for name, value in saved.model.state_dict().items())
    with pytest.raises(ValueError, match="fixed while it trains"):
        reopened.set_live({"lr": 0.01})

    fresh.delete(run.id)
    assert fresh.list() == [] and not run.run_dir.exists()


@pytest.mark.slow
def test_a_comparison_killed_after_a_save_is_listed_as_stopped_and_resumes_to_the_same_final_metrics(
        runs: RunRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder as a kill leaves it (copied right after a save, while the run trains on) opens in a new registry
    (the restarted server) as stopped at that save, and trains on to exactly the rows and weights of the run that
    was never interrupted."""
    killed = tmp_path / "after-a-kill"
    save = BackgroundRun.save

    def save_then_copy_once(run: BackgroundRun) -> str:
        problem = save(run)
        if not killed.exists() and run.step >= 30:
            shutil.copytree(run.run_dir, killed / run.id)
        return problem

    monkeypatch.setattr(BackgroundRun, "save", save_then_copy_once)
    monkeypatch.setattr(background, "SAVE_EVERY_SECONDS", 0.1)
    config = CompareConfig.build(TINY.replace(steps=200, eval_every=25, decay_steps=150), [0.0, 1.0], ["linear"])
    uninterrupted = runs.launch("never stopped", CompareEngine(config), config.base)
    uninterrupted.join(120)
    assert uninterrupted.status == RunStatus.FINISHED

    restarted = RunRegistry(killed)
    (summary,) = restarted.list()
    killed_at = load_checkpoint(killed / uninterrupted.id / CHECKPOINT_FILE).step
    assert (summary.id, summary.kind, summary.status, summary.step) == (
        uninterrupted.id, RunKind.COMPARE, RunStatus.STOPPED, killed_at)
    assert 30 <= killed_at < 200
    resumed = restarted.get(uninterrupted.id)
    resumed.train_on(200)
    resumed.join(120)
    assert resumed.status == RunStatus.FINISHED and resumed.step == 200

    def without_time(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{name: value for name, value in row.items() if name != "seconds"} for row in rows]

    assert [without_time(rows) for rows in resumed.snapshot().rows] == [
        without_time(rows) for rows in uninterrupted.snapshot().rows]
    for mine, theirs in zip(resumed.models(), uninterrupted.models(), strict=True):
        weights = theirs.model.state_dict()
        assert all(torch.equal(value, weights[name]) for name, value in mine.model.state_dict().items())


@pytest.mark.parametrize("left", ["running", "paused", "queued", "idle"])
def test_a_run_file_that_says_it_trains_is_a_stopped_run_that_resumes(runs: RunRegistry, left: str) -> None:
    """Only a process that is gone (or a hand) leaves such a run.json: it must neither hold a slot nor refuse to
    resume."""
    config = CompareConfig.build(TINY.replace(steps=4, eval_every=2), [0.0, 1.0])
    run = runs.launch("left behind", CompareEngine(config), config.base)
    run.join(60)
    info = json.loads((run.run_dir / RUN_FILE).read_text())
    (run.run_dir / RUN_FILE).write_text(json.dumps(info | {"status": left}))
    restarted = RunRegistry(runs.runs_dir, max_active=1)
    assert [(summary.id, summary.status) for summary in restarted.list()] == [(run.id, RunStatus.STOPPED)]
    reopened = restarted.get(run.id)
    assert reopened.status == RunStatus.STOPPED and not reopened.active
    reopened.train_on(6)
    reopened.join(60)
    assert (reopened.status, reopened.step) == (RunStatus.FINISHED, 6)


def test_unknown_run_is_a_clear_error(runs: RunRegistry) -> None:
    with pytest.raises(RunError, match="no run"):
        runs.get("nope")
    with pytest.raises(RunError, match="no run"):
        runs.delete("nope")


def test_a_damaged_run_on_disk_is_listed_renamed_and_deleted_without_loading(runs: RunRegistry) -> None:
    run = stepped(runs, "damaged")
    run.stop()
    run.join(10)
    (run.run_dir / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    fresh = RunRegistry(runs.runs_dir)
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        fresh.get(run.id)
    fresh.rename(run.id, "still listed")
    assert [s.name for s in fresh.list()] == ["still listed"]
    assert fresh.metrics_file(run.id).splitlines()[0].startswith(b"step,seconds,train_loss")
    assert fresh.checkpoint_file(run.id) == b"not a checkpoint"
    fresh.delete(run.id)
    assert fresh.list() == [] and not run.run_dir.exists()


def test_a_run_whose_run_file_is_damaged_is_still_listed(runs: RunRegistry) -> None:
    run = launch(runs, "broken run file", TINY.replace(steps=3))
    run.join(30)
    (run.run_dir / RUN_FILE).write_text("{")
    fresh = RunRegistry(runs.runs_dir)
    (summary,) = fresh.list()
    assert (summary.id, summary.kind, summary.status) == (run.id, "train", "failed")
    assert RUN_FILE in summary.name
    with pytest.raises(RunError, match="damaged"):
        fresh.get(run.id)
    fresh.delete(run.id)
    assert fresh.list() == []


def test_metrics_file_of_a_finished_run_has_every_row(runs: RunRegistry) -> None:
    run = launch(runs, "live")
    run.join(60)
    lines = runs.metrics_file(run.id).decode().splitlines()
    assert len(lines) == 1 + len(run.snapshot().rows)
    with pytest.raises(RunError, match=r"cannot read metrics\.csv"):
        runs.metrics_file("nope")


def test_save_writes_what_the_run_has_now(runs: RunRegistry) -> None:
    run = stepped(runs, "saved now")
    assert run.save() == ""
    assert load_checkpoint(run.run_dir / CHECKPOINT_FILE).step == 1
    assert json.loads((run.run_dir / RUN_FILE).read_text())["status"] == "stopped"  # a crash would leave it so


def test_stop_all_stops_every_run(runs: RunRegistry) -> None:
    started = [launch(runs, name, TINY.replace(steps=100_000)) for name in "ab"]
    runs.stop_all()
    assert [run.status for run in started] == ["stopped", "stopped"]


@pytest.mark.parametrize("run_id", ["", ".", "..", "../elsewhere", "a/b"])
def test_a_run_id_is_a_folder_name_never_a_path(runs: RunRegistry, run_id: str) -> None:
    with pytest.raises(RunError, match="not a run id"):
        runs.get(run_id)
    with pytest.raises(RunError, match="not a run id"):
        runs.delete(run_id)
