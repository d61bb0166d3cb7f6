"""A run as the server sees it: its plan, its status, the buttons, and what its worker process publishes.

The run trains in a worker process of its own (`worker.py`), started when it starts and gone when it ends; the
server holds no model, optimizer or engine. While the worker trains, a thread here reads what it publishes (new
rows, the latest views) into the view the page polls, and the buttons go to the worker over a control connection.
A run that is not training is its run folder: its snapshot is read back by a short-lived worker and kept only for
the few runs shown last. Pages and the CLI use only the public methods below."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Generic

from playground.runs.protocol import RunError, RunPlan, SnapshotT
from playground.runs.shown import loaded_models, locked_elsewhere, plan_snapshot, remember, shown_snapshot
from playground.runs.worker import ELSEWHERE, Ended, Published, RunOrder, Saved, context, work
from playground.training.run_folder import (
    ACTIVE_STATUSES,
    CHECKPOINT_FILE,
    FINAL_STATUSES,
    RUN_FILE,
    STUDY_FILE,
    RunKind,
    RunStatus,
    read_run_file,
    write_json,
)
from playground.training.trainer import TrainedModel

__all__ = ["BackgroundRun", "RunError"]

SAVE_SECONDS = 60.0


class BackgroundRun(Generic[SnapshotT]):
    """One run: start, pause, resume, step_once, stop; its worker process trains it."""

    def __init__(self, run_id: str, name: str, kind: RunKind, run_dir: Path, plan: RunPlan | None = None,
                 status: RunStatus = RunStatus.IDLE, message: str = "", owner: str = "", control_key: str = "",
                 step: int = 0, total_steps: int = 0, size: int = 1, lesson: str = "", workers: int = 1) -> None:
        self.id, self.name, self.kind, self.run_dir, self.owner = run_id, name, kind, run_dir, owner
        self.lesson = lesson  # the lesson this run is, recorded at its start (a name is the student's to choose)
        self.control_key = control_key  # shared mode: a second secret whose link grants control (the owner's choice)
        self.last_control = time.monotonic()  # when a button last moved it: shared mode expires idle paused runs
        self.plan = plan  # a new run's configs, until its worker has saved it
        self._status, self.message = RunStatus(status), message
        self._seen_elsewhere = False
        self._step, self._total_steps = step, total_steps or (plan_snapshot(plan).total_steps if plan else 0)
        self.size = size  # models it trains: what admission control multiplies a model's cost by
        self.workers = workers  # processes or cores it trains on: what it counts against the slots
        self._control = threading.RLock()
        self._worker: BaseProcess | None = None
        self._orders: Connection | None = None
        self._view: LiveView | None = None
        self._ended = threading.Event()
        self._ended.set()
        self._saved: tuple[threading.Event, list[str]] = (threading.Event(), [])
        self.admit: Callable[[BackgroundRun[Any]], None] = lambda run: None  # raises RunError to refuse a start
        self.peak_memory_bytes = 0.0  # the estimate admission control counts while the run trains
        self.on_end: Callable[[BackgroundRun[Any]], None] = lambda run: None  # the registry starts a queued run

    @property
    def status(self) -> RunStatus:
        """What the run does; a run another process trains (the lock of its folder is held) says so, and once that
        process lets go, the run is what its folder says."""
        if self._worker is None and self._status != RunStatus.QUEUED and locked_elsewhere(self.run_dir):
            self._seen_elsewhere = True
            return RunStatus.ELSEWHERE
        if self._seen_elsewhere and self._worker is None:
            self._seen_elsewhere = False
            if info := read_run_file(self.run_dir):
                self._status, self.message = RunStatus(info["status"]), str(info.get("message", ""))
                self._step, self._total_steps = int(info.get("step", 0)), int(info.get("total_steps", 0))
        return self._status

    @status.setter
    def status(self, status: RunStatus) -> None:
        self._status = status

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def training(self) -> bool:
        """Whether this process has a worker training it now."""
        return self._worker is not None

    @property
    def step(self) -> int:
        view = self._view
        return view.step if view is not None and view.step >= 0 else self._step

    @property
    def total_steps(self) -> int:
        view = self._view
        return view.total_steps if view is not None and view.step >= 0 else self._total_steps

    def start(self) -> None:
        """Train until done; status is 'running' when this returns, so the page polls at once."""
        with self._control:
            if self._status in FINAL_STATUSES:
                raise RunError(f"this run is {self._status}; press Resume to train on, or Reset to start a new one")
            if self._status == RunStatus.RUNNING:
                return
            if self._worker is not None:  # paused
                self._move(RunStatus.PAUSED, RunStatus.RUNNING, "resume")
                return
            self._refuse_if_elsewhere()
            self.admit(self)
            self._status, self.last_control = RunStatus.RUNNING, time.monotonic()
            self._spawn(paused=False)

    def pause(self) -> None:
        self._move(RunStatus.RUNNING, RunStatus.PAUSED, "pause")

    def resume(self) -> None:
        self._move(RunStatus.PAUSED, RunStatus.RUNNING, "resume")

    def step_once(self) -> None:
        """One step from idle or paused; the run stays paused afterwards."""
        with self._control:
            if self._status in FINAL_STATUSES or self._status == RunStatus.RUNNING:
                return
            self.last_control = time.monotonic()
            if self._worker is not None:
                self._status = RunStatus.PAUSED
                self._order("step")
                return
            self._refuse_if_elsewhere()
            self.admit(self)
            self._status = RunStatus.PAUSED
            self._spawn(paused=True)

    def queue(self) -> None:
        """Wait for a free slot (shared mode): the registry starts the run when one frees."""
        with self._control:
            if self._status == RunStatus.IDLE:
                self._status, self.last_control = RunStatus.QUEUED, time.monotonic()

    def _move(self, before: RunStatus, after: RunStatus, order: str) -> None:
        """From `before` to `after`, telling the worker; from any other status, nothing."""
        with self._control:
            if self._status == before and self._worker is not None:
                self._status, self.last_control = after, time.monotonic()
                self._order(order)

    def stop(self, wait: float = 0.0) -> None:
        """Takes effect at the next time step: the step in progress is undone (`interrupt`); the worker saves and
        ends, and the run is 'stopped' (a queued run leaves the queue).
        With `wait`, returns once the run has ended or after that many seconds (so a page redraws in the new
        state)."""
        with self._control:
            if self._status in FINAL_STATUSES:
                return
            if self._worker is None:
                self._status, self.message = RunStatus.STOPPED, ""
                self.write_run_file()
                return
            self._order("stop")
        if wait > 0:
            self.join(wait)

    def train_on(self, total_steps: int) -> None:
        """`continue_to`, then `start`: what a page's Resume or Train on does."""
        self.continue_to(total_steps)
        self.start()

    def continue_to(self, total_steps: int) -> None:
        """Make an ended run trainable again up to `total_steps` (more than it has done); Start then resumes it."""
        with self._control:
            if self.active or self._worker is not None:
                raise RunError("this run is still training")
            self._refuse_if_elsewhere()
            if total_steps <= self.step:
                raise RunError(f"the run has done {self.step:,} steps already: give more steps than that")
            if self.kind != RunKind.STUDY:
                self._total_steps = total_steps
            self._status, self.message = RunStatus.IDLE, ""
            self.write_run_file()

    def join(self, timeout: float | None = None) -> None:
        self._ended.wait(timeout)

    def set_live(self, changes: Mapping[str, float]) -> None:
        """Settings that may move while a training run trains (config.LIVE_SETTINGS), from its next step on;
        ValueError (a ConfigError) for a value out of range or a run whose settings are fixed."""
        if self.kind != RunKind.TRAIN:
            raise ValueError(f"a {'comparison' if self.kind == RunKind.COMPARE else 'study'}'s settings are "
                             "fixed while it trains")
        with self._control:
            view = self._view
            if self._worker is None or view is None:
                return
            config = self.snapshot().config.replace(**changes)  # validates before anything is sent
            view.configure(config)
            self._order("live", dict(changes))

    def snapshot(self) -> SnapshotT:
        """What the pages draw: the worker's latest publication while it trains, else the run folder's."""
        view = self._view
        if view is not None and view.published:
            return view.snapshot()
        if self.plan is not None and not self._saved_state_exists():
            return plan_snapshot(self.plan)
        return shown_snapshot(self.kind, self.run_dir)

    def models(self) -> list[TrainedModel]:
        """The trained models as last saved (a run saves every few seconds; one that has not saved yet is asked
        to), for the inspection views."""
        if self.kind == RunKind.STUDY:
            return []
        if not (self.run_dir / CHECKPOINT_FILE).is_file() and self._worker is not None:
            self.save()
        if not (self.run_dir / CHECKPOINT_FILE).is_file():
            return []
        return loaded_models(self.run_dir)

    def save(self) -> str:
        """Save now; '' or what went wrong."""
        with self._control:
            if self._worker is None:
                return self.write_run_file()
            return self._ask("save")

    def rename(self, name: str) -> str:
        """A new display name, written into run.json (by the worker, when one trains the run); '' or what went
        wrong."""
        with self._control:
            self.name = name
            if self._worker is None:
                return self.write_run_file()
            return self._ask("name", name)

    def _ask(self, *order: Any) -> str:
        """An order the worker answers once it has written the run folder (between two steps)."""
        event, answers = self._saved
        event.clear()
        self._order(*order)
        if not event.wait(SAVE_SECONDS) or not answers:
            return "could not save the run: its process did not answer"
        return answers.pop()

    def write_run_file(self) -> str:
        status = self._status if self._status in FINAL_STATUSES else RunStatus.STOPPED  # a crash leaves it so
        try:
            write_json(self.run_dir / RUN_FILE, self.run_file() | {
                "status": status, "message": self.message, "step": self.step, "total_steps": self.total_steps})
        except OSError as error:
            return f"could not save the run: {error.strerror or error}"
        return ""

    def run_file(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "owner": self.owner,
                "control": self.control_key, "lesson": self.lesson}

    def _refuse_if_elsewhere(self) -> None:
        if locked_elsewhere(self.run_dir):
            raise RunError(ELSEWHERE)

    def _saved_state_exists(self) -> bool:
        return (self.run_dir / (STUDY_FILE if self.kind == RunKind.STUDY else CHECKPOINT_FILE)).is_file()

    def _order(self, *order: Any) -> None:
        if self._orders is not None:
            with contextlib.suppress(OSError):  # the worker is gone; its end is being read
                self._orders.send(order)

    def _spawn(self, paused: bool) -> None:
        ctx = context()
        news, news_end = ctx.Pipe(duplex=False)
        orders_end, orders = ctx.Pipe(duplex=False)
        plan = self.plan if self.plan is not None and not self._saved_state_exists() else None
        order = RunOrder(self.run_dir.resolve(), self.run_file(), plan, self._total_steps, paused,
                         self.peak_memory_bytes, dict(os.environ))
        process = ctx.Process(target=work, args=(order, orders_end, news_end), name=f"run-{self.id}",
                              daemon=True)
        self._view = LiveView(self.kind, plan_snapshot(plan) if plan is not None else None)
        self._ended.clear()
        process.start()
        news_end.close()  # the worker's copies are the only ones left: its end closes the connection
        orders_end.close()
        self._worker, self._orders = process, orders
        threading.Thread(target=self._listen, args=(news, process), name=f"run-{self.id}", daemon=True).start()

    def _listen(self, news: Connection, process: BaseProcess) -> None:
        """Read the worker's news until it ends; then the run takes its final status."""
        ended: Ended | None = None
        view = self._view
        while ended is None:
            try:
                message = news.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, Published) and view is not None:
                view.take(message)
            elif isinstance(message, Saved):
                self._saved[1].append(message.problem)
                self._saved[0].set()
            elif isinstance(message, Ended):
                ended = message
        process.join(30)
        news.close()
        with self._control:
            self._end(ended, process.exitcode, view)
        self.on_end(self)

    def _end(self, ended: Ended | None, exit_code: int | None, view: LiveView | None) -> None:
        """The worker's end: its own account of it, or (it died) the run as its folder says, stopped."""
        if self._orders is not None:
            self._orders.close()
        self._worker = self._orders = self._view = None
        if ended is not None and ended.step >= 0:
            self._status, self.message = ended.status, ended.message
            self._step, self._total_steps = ended.step, ended.total_steps
            if view is not None and view.published:
                remember(self.run_dir, view.snapshot())
        elif ended is not None:  # refused before it loaded anything: another process trains it, or it is damaged
            self._status, self.message = ended.status, ended.message
        else:  # it died: the run is what it saved last (its checkpoint may be newer than its run.json)
            how = f"was killed (signal {-exit_code})" if exit_code and exit_code < 0 else f"exit {exit_code}"
            self._status = RunStatus.STOPPED
            self.message = f"the run's process ended ({how}); it resumes from its last save"
            try:
                saved = shown_snapshot(self.kind, self.run_dir)
                self._step, self._total_steps = saved.step, saved.total_steps
            except (RunError, ValueError):  # nothing loadable was saved: the run is as its run.json says
                info = read_run_file(self.run_dir) or {}
                self._step = int(info.get("step", self._step))
            self.write_run_file()
        self._saved[0].set()
        self._ended.set()


class LiveView:
    """What the worker of a training run has published: its rows so far and its latest views."""

    def __init__(self, kind: RunKind, initial: Any | None) -> None:
        self.kind = kind
        self.latest = initial
        self.published = initial is not None
        self.rows: list[list[dict[str, float]]] = []
        self.step = self.total_steps = -1
        self._lock = threading.Lock()

    def take(self, news: Published) -> None:
        with self._lock:
            if not self.rows:
                self.rows = [[] for _ in news.rows]
            for rows, head, new in zip(self.rows, news.heads, news.rows, strict=True):
                if head is not None:
                    rows.insert(0, head)
                rows.extend(new)
            self.latest, self.published = news.snapshot, True
            self.step, self.total_steps = news.step, news.total_steps

    def configure(self, config: Any) -> None:
        """A live change shows at once; the worker's next publication confirms it."""
        with self._lock:
            if self.latest is not None:
                self.latest = dataclasses.replace(self.latest, config=config)

    def snapshot(self) -> Any:
        with self._lock:
            if self.kind == RunKind.STUDY or not self.rows:
                return self.latest
            rows: Any = list(self.rows[0]) if self.kind == RunKind.TRAIN else [list(rows) for rows in self.rows]
            return dataclasses.replace(self.latest, rows=rows)
