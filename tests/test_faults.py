"""Fault injection: real training processes (one model, a comparison) killed at random moments, run files damaged
one at a time, a full disk. After each, the run list opens, every run is listed, damaged files are named and
nothing saved is lost."""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from playground.cli.common import strict
from playground.core.config import TrainConfig
from playground.reports.comparison_table import summary_rows
from playground.runs import worker
from playground.runs.background import RunError
from playground.runs.compare_engine import CompareEngine
from playground.runs.protocol import RunPlan
from playground.runs.registry import RunRegistry
from playground.training import checkpoints, run_folder
from playground.training.checkpoints import load_checkpoint
from playground.training.run_folder import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, RUN_FILE, RunStatus

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "8", "--emb", "4", "--val-size", "32", "--batch-size", "8", "--eval-every", "25"]
KILL_AFTER = random.Random(15).uniform(0.0, 3.0)  # seconds after the first save: a seeded random moment


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "playground", "--threads", "1", *args]


def ctrl_c_stops() -> None:
    """In the child: Ctrl-C as a terminal gives it (pytest-xdist's workers ignore SIGINT, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), cwd=ROOT, capture_output=True, text=True, timeout=300)


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / METRICS_FILE).open() as file:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(file)]


@pytest.mark.slow
def test_a_killed_cli_run_keeps_its_files_is_listed_and_resumes_exactly(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    process = subprocess.Popen(cli("train", *TINY, "--steps", "100000", "--quiet", "--runs-dir", str(runs_dir)),
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(runs_dir.glob(f"*/{CHECKPOINT_FILE}")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(KILL_AFTER)
    os.killpg(process.pid, signal.SIGKILL)  # the command and its run's worker: the one that trains
    process.wait()
    (run_dir,) = runs_dir.iterdir()
    assert {RUN_FILE, CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE} <= {path.name for path in run_dir.iterdir()}
    listed = json.loads(run_cli("runs", "--runs-dir", str(runs_dir), "--json").stdout.splitlines()[-1])
    assert [(run["id"], run["kind"], run["status"]) for run in listed] == [(run_dir.name, "train", "stopped")]
    saved_step = load_checkpoint(run_dir / CHECKPOINT_FILE).step
    assert saved_step > 0 and listed[0]["step"] == saved_step
    total = str(saved_step + 40)
    resumed = run_cli("train", "--resume", str(run_dir), "--steps", total, "--quiet", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1])["total_steps"] == int(total)
    fresh = run_cli("train", *TINY, "--steps", total, "--quiet", "--json", "--runs-dir", str(tmp_path / "fresh"))
    fresh_dir = Path(json.loads(fresh.stdout.splitlines()[-1])["run_dir"])
    fresh_dir = fresh_dir if fresh_dir.is_absolute() else ROOT / fresh_dir
    assert metric_rows(run_dir) == metric_rows(fresh_dir)
    resumed_weights = load_checkpoint(run_dir / CHECKPOINT_FILE).model.state_dict()
    fresh_weights = load_checkpoint(fresh_dir / CHECKPOINT_FILE).model.state_dict()
    assert all(torch.equal(resumed_weights[name], fresh_weights[name]) for name in fresh_weights)


@pytest.mark.slow
def test_a_killed_cli_comparison_is_listed_as_stopped_and_resumes_to_the_same_final_metrics(tmp_path: Path) -> None:
    """Killed by SIGKILL, resumed by `compare --resume`, against the same comparison trained here uninterrupted."""
    runs_dir, arms = tmp_path / "runs", ["--ratios", "0,1", "--schedules", "linear", "--decay-steps", "200"]
    process = subprocess.Popen(cli("compare", *TINY, *arms, "--steps", "100000", "--quiet", "--runs-dir",
                                   str(runs_dir)), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(runs_dir.glob(f"*/{CHECKPOINT_FILE}")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(KILL_AFTER)
    os.killpg(process.pid, signal.SIGKILL)  # the command and its run's worker: the one that trains
    process.wait()
    (run_dir,) = runs_dir.iterdir()
    saved_step = load_checkpoint(run_dir / CHECKPOINT_FILE).step
    (listed,) = RunRegistry(runs_dir).list()
    assert (listed.id, listed.kind, listed.status, listed.step) == (run_dir.name, "compare", "stopped", saved_step)
    assert saved_step > 0
    total = saved_step + 40
    resumed = run_cli("compare", "--resume", str(run_dir), "--steps", str(total), "--quiet", "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.splitlines()[-1])
    assert (summary["status"], summary["steps"]) == ("finished", total)

    uninterrupted = CompareEngine(CompareEngine.load(run_dir).snapshot().config)
    assert uninterrupted.config.base.steps == total
    uninterrupted.run_to_end()
    (tmp_path / "uninterrupted").mkdir()
    uninterrupted.save(tmp_path / "uninterrupted")

    def without_time(rows: list[dict]) -> list[dict]:  # as the CLI prints them (strict JSON: no NaN)
        return [{key: value for key, value in row.items() if key != "wall_seconds"} for row in strict(rows)]

    assert without_time(summary["rows"]) == without_time(summary_rows(uninterrupted.snapshot()))  # final metrics
    assert len(summary["rows"]) == 3
    assert metric_rows(run_dir) == metric_rows(tmp_path / "uninterrupted")  # and every row before them
    weights = [model.model.state_dict() for model in uninterrupted.models()]
    for mine, theirs in zip(load_checkpoint(run_dir / CHECKPOINT_FILE).models, weights, strict=True):
        assert all(torch.equal(value, theirs[name]) for name, value in mine.model.state_dict().items())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = TrainConfig(hidden_dim=8, emb_dim=4, val_size=32, batch_size=8, steps=30, eval_every=10)
    registry = RunRegistry(tmp_path_factory.mktemp("runs"))
    run = registry.launch("intact", RunPlan.train(config))
    run.join(60)
    return run.run_dir


@pytest.mark.parametrize(("damaged", "named"), [
    (RUN_FILE, RUN_FILE), (CONFIG_FILE, CONFIG_FILE), (METRICS_FILE, METRICS_FILE),
    (CHECKPOINT_FILE, CHECKPOINT_FILE)])
def test_a_damaged_file_is_named_and_the_other_runs_stay_listed(finished_run: Path, tmp_path: Path,
                                                                 damaged: str, named: str) -> None:
    runs_dir = tmp_path / "runs"
    for name in ("intact", "damaged"):
        shutil.copytree(finished_run, runs_dir / name)
    (runs_dir / "damaged" / damaged).write_bytes(b"\x00\xffnot what it should be" * 3)
    registry = RunRegistry(runs_dir)
    assert sorted(summary.id for summary in registry.list()) == ["damaged", "intact"]
    with pytest.raises((RunError, ValueError)) as refused:
        registry.get("damaged")
    assert named in str(refused.value)
    assert registry.get("intact").snapshot().step == 30
    registry.delete("damaged")
    assert [summary.id for summary in registry.list()] == ["intact"]


def test_a_full_disk_fails_the_run_and_keeps_what_was_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = TrainConfig(hidden_dim=8, emb_dim=4, val_size=32, batch_size=8, steps=100_000, eval_every=10)
    full = tmp_path / "the disk is full now"

    def disk_full(path: Path, data: bytes, original=run_folder.atomic_write) -> None:
        if full.exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        original(path, data)

    monkeypatch.setenv(worker.START_METHOD_ENV, "fork")  # the worker writes through these patches
    monkeypatch.setattr(run_folder, "atomic_write", disk_full)
    monkeypatch.setattr(checkpoints, "atomic_write", disk_full)
    registry = RunRegistry(tmp_path / "runs")
    run = registry.launch("filling", RunPlan.train(config))
    while run.step < 20:
        time.sleep(0.05)
    assert run.save() == ""
    saved_step = load_checkpoint(run.run_dir / CHECKPOINT_FILE).step
    full.touch()
    run.stop()
    run.join(30)
    assert run.status == "failed" and "No space left on device" in run.message and not run.active
    assert run.snapshot().step >= saved_step and len(run.snapshot().rows) > 1  # the history stays on the page
    assert load_checkpoint(run.run_dir / CHECKPOINT_FILE).step == saved_step
    assert [summary.id for summary in RunRegistry(tmp_path / "runs").list()] == [run.id]


def test_a_run_another_process_trains_is_refused_to_a_second_one_and_its_files_stay_intact(tmp_path: Path) -> None:
    """One writer per run folder: a second command line may not resume it (exit 2), an app may not start, resume
    or delete it and lists it as training elsewhere; the first process trains on and saves a whole run."""
    runs_dir = tmp_path / "runs"
    first = subprocess.Popen(cli("train", *TINY, "--steps", "100000", "--quiet", "--runs-dir", str(runs_dir)),
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                             preexec_fn=ctrl_c_stops)
    try:
        deadline = time.monotonic() + 120
        while not list(runs_dir.glob(f"*/{CHECKPOINT_FILE}")) and time.monotonic() < deadline:
            time.sleep(0.1)
        (run_dir,) = runs_dir.iterdir()
        second = run_cli("train", "--resume", str(run_dir), "--steps", "200000", "--quiet", "--json")
        assert second.returncode == 2 and first.poll() is None

        app = RunRegistry(runs_dir)
        (listed,) = app.list()
        assert listed.status == RunStatus.ELSEWHERE
        run = app.get(run_dir.name)
        assert run.status == RunStatus.ELSEWHERE and not run.active
        for action in (run.start, lambda: run.train_on(200_000), lambda: app.delete(run_dir.name)):
            with pytest.raises(RunError):
                action()
        assert run_dir.is_dir()
        first.send_signal(signal.SIGINT)  # the first process stops its run: it saves and ends
        assert first.wait(120) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
    info = json.loads((run_dir / RUN_FILE).read_text())
    saved = load_checkpoint(run_dir / CHECKPOINT_FILE)
    assert info["status"] == RunStatus.STOPPED and info["step"] == saved.step > 0
    assert [int(row["step"]) for row in metric_rows(run_dir)] == list(range(saved.step + 1))
    assert app.get(run_dir.name).status == RunStatus.STOPPED
