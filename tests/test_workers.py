"""Runs train in worker processes: the server keeps configs and what a worker publishes, never a model; the OS caps
a worker's memory; a worker that is killed leaves a run that resumes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from playground.core.config import TrainConfig
from playground.runs.protocol import RunError, RunPlan
from playground.runs.registry import Admission, RunRegistry
from playground.runs.seats import SEATS_FILE, Classroom, SeatBook
from playground.training.checkpoints import load_checkpoint
from playground.training.run_folder import CHECKPOINT_FILE, CONFIG_FILE, RUN_FILE, RunStatus
from playground.training.trainer import Trainer
from tests.processes import command_line, descendants, tree_resident_bytes

TINY = TrainConfig(hidden_dim=16, emb_dim=8, max_len=5, steps=60, eval_every=20, val_size=32, batch_size=16)
LARGE = TrainConfig(hidden_dim=1024, num_layers=2, emb_dim=128, max_len=8, batch_size=16, val_size=32,
                    steps=100_000, eval_every=1000)  # about 22 million parameters: 0.4 GB with its optimizer
ALICE, BOB = "a" * 32, "b" * 32


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def forkserver_children() -> list[int]:
    """The workers the forkserver this process started has forked (runs, and readers of saved runs)."""
    servers = [pid for pid in descendants(os.getpid()) if "forkserver" in command_line(pid)]
    return [child for server in servers for child in descendants(server)]


def test_a_queued_run_is_its_plan_until_a_slot_frees(tmp_path: Path) -> None:
    book = SeatBook(tmp_path / "runs" / SEATS_FILE)
    registry = RunRegistry(tmp_path / "runs", max_active=1, classroom=Classroom(book))  # shared mode queues starts
    alice, bob = book.issue("Alice")[0].id, book.issue("Bob")[0].id
    first = registry.launch("first", RunPlan.train(TINY.replace(steps=100_000)), owner=alice)
    queued = registry.launch("queued", RunPlan.train(TINY), owner=bob)
    assert (first.status, queued.status) == (RunStatus.RUNNING, RunStatus.QUEUED)
    assert first.training and not queued.training
    assert sorted(path.name for path in queued.run_dir.iterdir()) == [CONFIG_FILE, RUN_FILE]
    snapshot = queued.snapshot()
    assert (snapshot.rows, snapshot.step, snapshot.config) == ([], 0, TINY)
    first.stop(wait=60)
    wait_for(lambda: queued.status == RunStatus.FINISHED)
    assert not first.training and not queued.training
    assert load_checkpoint(queued.run_dir / CHECKPOINT_FILE).step == 60


def test_an_admission_check_refuses_a_start_before_anything_is_created(tmp_path: Path) -> None:
    registry = RunRegistry(tmp_path / "runs")
    seen = []

    def only_alice(admission: Admission) -> None:
        seen.append((admission.owner, admission.run is None, len(admission.active)))
        if admission.owner != ALICE:
            raise RunError("no seat")

    registry.admission_checks.append(only_alice)
    with pytest.raises(RunError, match="no seat"):
        registry.launch("refused", RunPlan.train(TINY), owner=BOB)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
    run = registry.launch("admitted", RunPlan.train(TINY), owner=ALICE)
    run.join(60)
    assert run.status == RunStatus.FINISHED
    assert seen == [(BOB, True, 0), (ALICE, True, 0), (ALICE, False, 0)]  # the new run, then its start


def test_a_worker_past_its_memory_cap_fails_its_run_and_keeps_what_it_saved(tmp_path: Path,
                                                                            forked: pytest.MonkeyPatch) -> None:
    config = TINY.replace(steps=100_000)

    def greedy(trainer: Trainer, original=Trainer.train_step):
        if trainer.step == 3 and trainer.config == config:
            torch.empty(8 * 1024**3, dtype=torch.uint8)  # address space only: no page of it is touched
        return original(trainer)

    forked.setattr(Trainer, "train_step", greedy)
    run = RunRegistry(tmp_path / "runs").launch("greedy", RunPlan.train(config))
    run.join(120)
    assert (run.status, run.step) == (RunStatus.FAILED, 3)
    assert load_checkpoint(run.run_dir / CHECKPOINT_FILE).step == 3


def test_a_killed_worker_leaves_a_stopped_run_that_resumes(tmp_path: Path) -> None:
    registry = RunRegistry(tmp_path / "runs")
    before = set(forkserver_children())  # workers other tests in this process left
    run = registry.launch("killed", RunPlan.train(TINY.replace(steps=100_000)))
    wait_for(lambda: (run.run_dir / CHECKPOINT_FILE).is_file() and run.step > 5)
    (worker,) = set(forkserver_children()) - before
    os.kill(worker, signal.SIGKILL)
    run.join(60)
    saved = load_checkpoint(run.run_dir / CHECKPOINT_FILE).step
    assert (run.status, run.step) == (RunStatus.STOPPED, saved) and not run.training
    run.train_on(saved + 5)
    run.join(60)
    assert (run.status, run.step) == (RunStatus.FINISHED, saved + 5)


@pytest.mark.slow
def test_start_stop_cycles_of_a_large_model_leave_the_server_as_large_as_before(tmp_path: Path) -> None:
    """Three start/stop cycles of a large model: the server's process tree (this process, the forkserver, any
    worker) stays within 400 MB of its size after a first run, as after a first page load."""
    registry = RunRegistry(tmp_path / "runs", memory_budget=float("inf"))
    registry.launch("first", RunPlan.train(TINY.replace(steps=2))).join(120)  # the forkserver is up
    before = tree_resident_bytes(os.getpid())
    for cycle in range(3):
        run = registry.launch(f"large {cycle}", RunPlan.train(LARGE))
        wait_for(lambda run=run: run.step >= 1, timeout=300)
        run.stop(wait=120)
        assert run.status == RunStatus.STOPPED and not run.training
        assert run.snapshot().step >= 1  # what the page draws once it stopped
    growth = tree_resident_bytes(os.getpid()) - before
    assert growth < 400 * 1024**2, growth / 1024**2
