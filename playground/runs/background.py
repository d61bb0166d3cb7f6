"""A run: one engine, one thread, the buttons, and its run.json.

The thread calls `engine.advance()` until the engine is finished or the run is stopped, paused, diverged or
failed, and saves what it has every few seconds and at the end. Pages and the CLI use only the public methods
below; the engine and the lock that guards it stay inside."""

from __future__ import annotations

import copy
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic

from playground.core import interrupt
from playground.runs.protocol import Engine, SnapshotT
from playground.training.metrics import DivergedError
from playground.training.run_folder import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    RUN_FILE,
    RunKind,
    RunStatus,
    write_json,
)
from playground.training.trainer import TrainedModel

SAVE_EVERY_SECONDS = 5.0


class RunError(RuntimeError):
    """A run cannot do what was asked (too many training at once, already finished, ...)."""


class BackgroundRun(Generic[SnapshotT]):
    """One engine, one thread, and the buttons: start, pause, resume, step_once, stop."""

    def __init__(self, run_id: str, name: str, engine: Engine[SnapshotT], run_dir: Path,
                 status: RunStatus = RunStatus.IDLE, message: str = "", owner: str = "",
                 control_key: str = "", lesson: str = "") -> None:
        self.id, self.name, self.run_dir, self.owner = run_id, name, run_dir, owner
        self.lesson = lesson  # the lesson this run is, recorded at its start (a name is the student's to choose)
        self.control_key = control_key  # shared mode: a second secret whose link grants control (the owner's choice)
        self.last_control = time.monotonic()  # when a button last moved it: shared mode expires idle paused runs
        self.status, self.message = RunStatus(status), message
        self._engine = engine
        self.kind: RunKind = engine.kind
        self.size = engine.size  # models it trains: what admission control multiplies a model's cost by
        self.workers = engine.workers  # processes or cores it trains on: what it counts against the slots
        self._lock = threading.Lock()  # guards the engine; held for one step at a time
        self._control = threading.Condition()
        self._stop_requested = threading.Event()  # also reaches into a step in progress (`interrupt`)
        self._pending_steps = 0
        self._thread: threading.Thread | None = None
        self._models: tuple[int, list[TrainedModel]] | None = None
        self.admit: Callable[[BackgroundRun[Any]], None] = lambda run: None  # raises RunError to refuse a start
        self.peak_memory_bytes = 0.0  # the estimate admission control counts while the run trains
        self.on_end: Callable[[BackgroundRun[Any]], None] = lambda run: None  # the registry starts a queued run

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def step(self) -> int:
        return self._engine.step

    @property
    def total_steps(self) -> int:
        return self._engine.total_steps

    def start(self) -> None:
        """Train until done; status is 'running' when this returns, so the page polls at once."""
        with self._control:
            if self.status in FINAL_STATUSES:
                raise RunError(f"this run is {self.status}; press Resume to train on, or Reset to start a new one")
            if self.status == RunStatus.RUNNING:
                return
            self.admit(self)
            self.status, self.last_control = RunStatus.RUNNING, time.monotonic()
            self._ensure_thread()
            self._control.notify_all()

    def pause(self) -> None:
        self._move(RunStatus.RUNNING, RunStatus.PAUSED)

    def resume(self) -> None:
        self._move(RunStatus.PAUSED, RunStatus.RUNNING)

    def step_once(self) -> None:
        """One step from idle or paused; the run stays paused afterwards."""
        with self._control:
            if self.status in FINAL_STATUSES or self.status == RunStatus.RUNNING:
                return
            if self.status == RunStatus.IDLE:
                self.admit(self)
            self.status, self.last_control = RunStatus.PAUSED, time.monotonic()
            self._pending_steps += 1
            self._ensure_thread()
            self._control.notify_all()

    def queue(self) -> None:
        """Wait for a free slot (shared mode): the registry starts the run when one frees."""
        self._move(RunStatus.IDLE, RunStatus.QUEUED)

    def _move(self, before: RunStatus, after: RunStatus) -> None:
        """From `before` to `after`, waking the thread; from any other status, nothing."""
        with self._control:
            if self.status == before:
                self.status, self.last_control = after, time.monotonic()
                self._control.notify_all()

    def stop(self, wait: float = 0.0) -> None:
        """Takes effect at the next time step: the step in progress is undone (`interrupt`); the thread saves and
        sets 'stopped' (a queued run leaves the queue).
        With `wait`, returns once the run has ended or after that many seconds (so a page redraws in the new
        state)."""
        with self._control:
            if self.status in FINAL_STATUSES:
                return
            if self.status == RunStatus.QUEUED:
                self.status = RunStatus.IDLE
            if self._thread is None or not self._thread.is_alive():
                self._finish(RunStatus.STOPPED, "")
                return
            self._stop_requested.set()
            self._control.notify_all()
        if wait > 0:
            self.join(wait)

    def train_on(self, total_steps: int) -> None:
        """`continue_to`, then `start`: what a page's Resume or Train on does."""
        self.continue_to(total_steps)
        self.start()

    def continue_to(self, total_steps: int) -> None:
        """Make an ended run trainable again up to `total_steps` (more than it has done); Start then resumes it."""
        with self._control:
            if self.active:
                raise RunError("this run is still training")
            if total_steps <= self.step:
                raise RunError(f"the run has done {self.step:,} steps already: give more steps than that")
            with self._lock:
                self._engine.extend(total_steps)
            self.status, self.message = RunStatus.IDLE, ""
            self.write_run_file()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def set_live(self, changes: Mapping[str, float]) -> None:
        with self._lock:
            self._engine.set_live(changes)

    def snapshot(self) -> SnapshotT:
        with self._lock:
            return self._engine.snapshot()

    def models(self) -> list[TrainedModel]:
        """Copies of the trained models, safe to run beside the training thread; copied once per step."""
        with self._lock:
            if self._models is None or self._models[0] != self.step:
                copies = [copy.deepcopy(model) for model in self._engine.models()]
                for trained in copies:
                    trained.model.eval()
                self._models = (self.step, copies)
            return self._models[1]

    def save(self) -> str:
        """Save now; '' or what went wrong."""
        with self._lock:
            try:
                self._engine.save(self.run_dir)
            except OSError as error:
                return f"could not save the run: {error.strerror or error}"
        return self.write_run_file()

    def write_run_file(self) -> str:
        status = self.status if self.status in FINAL_STATUSES else RunStatus.STOPPED  # a crash leaves it stopped
        try:
            write_json(self.run_dir / RUN_FILE, {"id": self.id, "name": self.name, "kind": self.kind,
                                                 "status": status, "message": self.message, "step": self.step,
                                                 "total_steps": self.total_steps, "owner": self.owner,
                                                 "control": self.control_key, "lesson": self.lesson})
        except OSError as error:
            return f"could not save the run: {error.strerror or error}"
        return ""

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=f"run-{self.id}", daemon=True)
            self._thread.start()

    def _next_action(self) -> str:
        with self._control:
            while self.status == RunStatus.PAUSED and not self._pending_steps and not self._stop_requested.is_set():
                self._control.wait(timeout=1.0)
            if self._stop_requested.is_set():
                return "stop"
            if self.status == RunStatus.PAUSED:
                self._pending_steps -= 1
            return "step"

    def _loop(self) -> None:
        last_save = time.monotonic()
        final, message = RunStatus.STOPPED, ""
        while self._next_action() == "step":
            try:
                with self._lock, interrupt.requests(self._stop_requested):
                    self._engine.advance()
                    done = self._engine.finished
            except interrupt.Interrupted:  # the step in progress was undone
                break
            except DivergedError as error:
                final, message = RunStatus.DIVERGED, str(error)
                break
            except RunError as error:  # the engine's own account of why it cannot go on (a study's driver ended)
                final, message = RunStatus.FAILED, str(error)
                break
            except Exception as error:  # keep what the run had; tell the page in one line
                traceback.print_exc(file=sys.stderr)
                final, message = RunStatus.FAILED, f"{type(error).__name__}: {error}"
                break
            if done:
                final = RunStatus.FINISHED
                break
            if self._engine.wants_save or time.monotonic() - last_save > SAVE_EVERY_SECONDS:
                if problem := self.save():
                    final, message = RunStatus.FAILED, problem
                    break
                last_save = time.monotonic()
        with self._control:
            self._finish(final, message)
        self.on_end(self)

    def _finish(self, status: RunStatus, message: str) -> None:
        """The final status; a save that fails marks the run failed (what it had stays in memory)."""
        self.status, self.message = status, message
        self._stop_requested.clear()
        with self._lock:
            self._engine.halt()
        if (problem := self.save()) and problem != message:
            self.status, self.message = RunStatus.FAILED, problem if not message else f"{message}; {problem}"
