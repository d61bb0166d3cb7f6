"""Training runs in background threads, and the process-wide registry that finds them again.

The page never trains: it asks the registry for a run, presses its buttons and
reads `snapshot()`. A run owns an *engine* (anything with the `Engine` shape:
one model in `TrainingEngine`, K models in the comparison engine) and a thread
that calls `engine.advance()` until the engine is finished, stopped, paused,
diverged or failed. Whatever happens, the run saves what it has to its folder.
The registry is process-wide, so a reload or a second tab re-attaches; runs on
disk are listed again after a restart and load lazily when opened.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from playground.core.config import TrainConfig
from playground.analysis.states import StateCapture, capture_states
from playground.training.storage import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    create_run_dir,
    load_checkpoint,
    metrics_csv,
    read_config,
    read_metrics,
    save_checkpoint,
    write_config,
    write_metrics,
)
from playground.training.trainer import DivergedError, Trainer

RUN_FILE = "run.json"
SAVE_EVERY_SECONDS = 5.0
FINAL_STATUSES = ("stopped", "finished", "diverged", "failed")
PREDICTION_ROWS = 8


class RunError(RuntimeError):
    """A run cannot do what was asked (too many training at once, already finished, ...)."""


class Engine(Protocol):
    kind: str

    @property
    def finished(self) -> bool: ...

    def advance(self) -> None:
        """One training step, evaluating when due; records its own history."""

    def snapshot(self) -> Any:
        """A copy of what the pages draw, safe to hand to another thread."""

    def save(self, run_dir: Path) -> None:
        """Config, metrics and checkpoint into the run folder."""


@dataclass(frozen=True)
class LiveChange:
    step: int
    text: str


@dataclass
class TrainingSnapshot:
    rows: list[dict[str, float]]
    changes: list[LiveChange]
    predictions: list[dict[str, Any]]
    exact_by_length: dict[int, float]
    preview: StateCapture | None
    step: int
    total_steps: int
    seconds: float
    config: TrainConfig

    @property
    def steps_per_second(self) -> float:
        return self.step / self.seconds if self.seconds > 0 else 0.0


class TrainingEngine:
    """One model: a `Trainer` plus the history the Train page draws."""

    kind = "train"

    def __init__(self, trainer: Trainer, rows: list[dict[str, float]] | None = None) -> None:
        self.trainer = trainer
        self.rows: list[dict[str, float]] = rows or []
        self.changes: list[LiveChange] = []
        self.predictions: list[dict[str, Any]] = []
        self.exact_by_length: dict[int, float] = {}
        self.preview: StateCapture | None = None
        self.seconds = self.rows[-1].get("seconds", 0.0) if self.rows else 0.0

    @classmethod
    def load(cls, run_dir: Path) -> TrainingEngine:
        """A finished run from its folder: its checkpoint's weights and its metrics."""
        checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
        trainer = Trainer(read_config(run_dir))
        trainer.model.load_state_dict(checkpoint.model.state_dict())
        trainer.step = checkpoint.step
        engine = cls(trainer, read_metrics(run_dir))
        engine.exact_by_length = trainer.evaluate().exact_by_length
        engine.refresh_views()
        return engine

    @property
    def finished(self) -> bool:
        return self.trainer.step >= self.trainer.config.steps

    def advance(self) -> None:
        started = time.perf_counter()
        if not self.rows:  # where validation starts: near chance
            self.rows.append({"step": 0, "seconds": 0.0, "teacher_forcing_ratio": self.trainer.teacher_forcing_ratio(),
                              "lr": self.trainer.config.lr} | self.trainer.evaluate().metrics)
        row, evaluation = self.trainer.logged_step()
        self.seconds += time.perf_counter() - started
        self.rows.append(row | {"seconds": self.seconds})
        if evaluation:
            self.exact_by_length = evaluation.exact_by_length
            self.refresh_views()

    def refresh_views(self) -> None:
        """Predictions and the hidden-state preview of the first validation example (free-running)."""
        self.predictions = self.trainer.sample_predictions(PREDICTION_ROWS)
        task, (source, _) = self.trainer.task, self.trainer.data.val_pairs[0]
        self.preview = capture_states(self.trainer.model, task.src_vocab, task.tgt_vocab, source,
                                      max_len=task.max_tgt_len + 1)

    def set_live(self, lr: float | None = None, teacher_forcing_ratio: float | None = None) -> None:
        before = self.trainer.config
        self.trainer.set_live(lr=lr, teacher_forcing_ratio=teacher_forcing_ratio)
        after = self.trainer.config
        if after.lr != before.lr:
            self.changes.append(LiveChange(self.trainer.step, f"lr {after.lr:g}"))
        if after.teacher_forcing_ratio != before.teacher_forcing_ratio:
            self.changes.append(LiveChange(self.trainer.step, f"gamma {after.teacher_forcing_ratio:g}"))

    def snapshot(self) -> TrainingSnapshot:
        return TrainingSnapshot(list(self.rows), list(self.changes), list(self.predictions),
                                dict(self.exact_by_length), self.preview, self.trainer.step, self.trainer.config.steps,
                                self.seconds, self.trainer.config)

    def save(self, run_dir: Path) -> None:
        write_config(run_dir, self.trainer.config)
        write_metrics(run_dir, self.rows)
        save_checkpoint(run_dir / CHECKPOINT_FILE, self.trainer)


class BackgroundRun:
    """One engine, one thread, and the buttons: start, pause, resume, step_once, stop."""

    def __init__(self, run_id: str, name: str, engine: Engine, run_dir: Path, status: str = "idle",
                 message: str = "") -> None:
        self.id, self.name, self.engine, self.run_dir = run_id, name, engine, run_dir
        self.status, self.message = status, message
        self.lock = threading.Lock()  # guards the engine; held for one step at a time
        self._control = threading.Condition()
        self._stop_requested = False
        self._pending_steps = 0
        self._thread: threading.Thread | None = None
        self._can_start: Callable[[BackgroundRun], None] = lambda run: None

    @property
    def kind(self) -> str:
        return self.engine.kind

    @property
    def active(self) -> bool:
        return self.status in ("running", "paused")

    def start(self) -> None:
        """Train until done; status is 'running' when this returns, so the page polls at once."""
        with self._control:
            if self.status in FINAL_STATUSES:
                raise RunError(f"this run is {self.status}; press Reset to start a new one")
            if self.status == "running":
                return
            self._can_start(self)
            self.status = "running"
            self._ensure_thread()
            self._control.notify_all()

    def pause(self) -> None:
        with self._control:
            if self.status == "running":
                self.status = "paused"

    def resume(self) -> None:
        with self._control:
            if self.status == "paused":
                self.status = "running"
                self._control.notify_all()

    def step_once(self) -> None:
        """One step from idle or paused; the run stays paused afterwards."""
        with self._control:
            if self.status in FINAL_STATUSES or self.status == "running":
                return
            if self.status == "idle":
                self._can_start(self)
            self.status = "paused"
            self._pending_steps += 1
            self._ensure_thread()
            self._control.notify_all()

    def stop(self) -> None:
        """Takes effect within one step; the thread saves and sets 'stopped'."""
        with self._control:
            if self.status in FINAL_STATUSES:
                return
            if self._thread is None:
                self._finish("stopped", "")
                return
            self._stop_requested = True
            self._control.notify_all()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def set_live(self, **changes: Any) -> None:
        with self.lock:
            self.engine.set_live(**changes)  # type: ignore[attr-defined]

    def snapshot(self) -> Any:
        with self.lock:
            return self.engine.snapshot()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=f"run-{self.id}", daemon=True)
            self._thread.start()

    def _next_action(self) -> str:
        with self._control:
            while self.status == "paused" and not self._pending_steps and not self._stop_requested:
                self._control.wait(timeout=1.0)
            if self._stop_requested:
                return "stop"
            if self.status == "paused":
                self._pending_steps -= 1
            return "step"

    def _loop(self) -> None:
        torch.set_num_threads(1)  # leave the other core to the web server
        last_save = time.monotonic()
        final, message = "stopped", ""
        while True:
            if self._next_action() == "stop":
                break
            try:
                with self.lock:
                    self.engine.advance()
                    done = self.engine.finished
            except DivergedError as error:
                final, message = "diverged", str(error)
                break
            except Exception as error:  # keep what the run had; tell the page in one line
                traceback.print_exc(file=sys.stderr)
                final, message = "failed", f"{type(error).__name__}: {error}"
                break
            if done:
                final = "finished"
                break
            if time.monotonic() - last_save > SAVE_EVERY_SECONDS:
                self._save()
                last_save = time.monotonic()
        with self._control:
            self._finish(final, message)

    def _finish(self, status: str, message: str) -> None:
        self.status, self.message = status, message
        self._stop_requested = False
        self._save()

    def _save(self) -> None:
        with self.lock:
            try:
                self.engine.save(self.run_dir)
            except OSError as error:
                self.message = f"could not save the run: {error}"
        write_run_file(self)


def write_run_file(run: BackgroundRun) -> None:
    status = run.status if run.status in FINAL_STATUSES else "stopped"  # a crash leaves a stopped run
    (run.run_dir / RUN_FILE).write_text(json.dumps(
        {"id": run.id, "name": run.name, "kind": run.kind, "status": status, "message": run.message}))


@dataclass(frozen=True)
class RunSummary:
    id: str
    name: str
    kind: str
    status: str


ENGINE_LOADERS: dict[str, Callable[[Path], Engine]] = {"train": TrainingEngine.load}


@dataclass
class RunRegistry:
    """Every run of this process and of the runs folder; at most `max_active` train at once."""

    runs_dir: Path
    max_active: int = 4
    _runs: dict[str, BackgroundRun] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def create(self, name: str, engine: Engine, config: TrainConfig) -> BackgroundRun:
        run_dir = create_run_dir(self.runs_dir, name or config.task)
        write_config(run_dir, config)
        run = BackgroundRun(run_dir.name, name or run_dir.name, engine, run_dir)
        run._can_start = self._check_capacity
        with self._lock:
            self._runs[run.id] = run
        write_run_file(run)
        return run

    def create_training(self, name: str, config: TrainConfig) -> BackgroundRun:
        return self.create(name, TrainingEngine(Trainer(config)), config)

    def _check_capacity(self, starting: BackgroundRun) -> None:
        with self._lock:
            active = [run for run in self._runs.values() if run.active and run is not starting]
        if len(active) >= self.max_active:
            raise RunError(f"{len(active)} runs are training already (at most {self.max_active} at once); "
                           "stop or pause one first")

    def list(self) -> list[RunSummary]:
        """Newest first: runs in memory and run folders on disk."""
        with self._lock:
            summaries = {run.id: RunSummary(run.id, run.name, run.kind, run.status) for run in self._runs.values()}
        if self.runs_dir.is_dir():
            for path in self.runs_dir.iterdir():
                if path.name not in summaries and (info := _read_run_file(path)):
                    summaries[path.name] = RunSummary(path.name, info["name"], info["kind"], info["status"])
        return sorted(summaries.values(), key=lambda summary: summary.id, reverse=True)

    def get(self, run_id: str) -> BackgroundRun:
        """A run by id, loading a folder from disk the first time it is opened."""
        with self._lock:
            if run_id in self._runs:
                return self._runs[run_id]
            run_dir = self._folder(run_id)
            info = _read_run_file(run_dir)
            if info is None or info["kind"] not in ENGINE_LOADERS:
                raise RunError(f"no run {run_id!r} in {self.runs_dir}")
            run = BackgroundRun(run_id, info["name"], ENGINE_LOADERS[info["kind"]](run_dir), run_dir,
                                info["status"], info.get("message", ""))
            self._runs[run_id] = run
            return run

    def _folder(self, run_id: str) -> Path:
        """A run's folder; an id is a plain folder name (it may come from a URL), never a path."""
        if not run_id or Path(run_id).name != run_id or run_id in (".", ".."):
            raise RunError(f"{run_id!r} is not a run id")
        return self.runs_dir / run_id

    def rename(self, run_id: str, name: str) -> None:
        """A new display name; a run on disk is renamed in its run.json without being loaded."""
        name = name.strip()[:80]
        if not name:
            raise RunError("a run's name cannot be empty")
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None:
            run.name = name
            write_run_file(run)
            return
        info = _read_run_file(self._folder(run_id))
        if info is None:
            raise RunError(f"no run {run_id!r} in {self.runs_dir}")
        (self._folder(run_id) / RUN_FILE).write_text(json.dumps(info | {"name": name}))

    def delete(self, run_id: str) -> None:
        """Stop the run if it trains and remove its folder; a folder that cannot be opened can still go."""
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is not None:
            run.stop()
            run.join(timeout=10)
        elif _read_run_file(self._folder(run_id)) is None:
            raise RunError(f"no run {run_id!r} in {self.runs_dir}")
        shutil.rmtree(self._folder(run_id), ignore_errors=True)

    def metrics_csv(self, run_id: str) -> str:
        """A run's metrics: the live rows of a run in memory, else the folder's file (complete once saved)."""
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None and run.kind == "train":
            return metrics_csv(run.snapshot().rows)
        path = self._folder(run_id) / METRICS_FILE
        return path.read_text() if path.is_file() else metrics_csv([])

    def stop_all(self) -> None:
        for run in list(self._runs.values()):
            run.stop()
            run.join(timeout=10)


def _read_run_file(run_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and {"name", "kind", "status"} <= info.keys() else None


_REGISTRY: RunRegistry | None = None
_REGISTRY_LOCK = threading.Lock()


def registry() -> RunRegistry:
    """The process-wide registry over PLAYGROUND_RUNS_DIR (default: runs)."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            _REGISTRY = RunRegistry(Path(os.environ.get("PLAYGROUND_RUNS_DIR", "runs")))
        return _REGISTRY


def reset_registry() -> None:
    """Stop every run and forget them (tests; a fresh PLAYGROUND_RUNS_DIR)."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is not None:
            _REGISTRY.stop_all()
        _REGISTRY = None
