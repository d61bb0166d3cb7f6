"""Every run of this process and of its runs folder, found again by id.

The page never trains: it asks the registry for a run, presses its buttons and reads `snapshot()`; each run
trains in a worker process of its own. The registry is process-wide, so a reload or a second tab re-attaches; run
folders on disk (the app's and the CLI's alike) are listed after a restart and opened, when asked for, by a
short-lived worker that reads them back. Admission (`_admit`) is the one place that decides whether a run may
start now.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground.core.config import ConfigError, TrainConfig, visible_name
from playground.core.files import FileTooLarge, read_bounded
from playground.core.tasks import CustomPairs
from playground.experiments.comparison import CompareConfig
from playground.export.experiment import read_experiment
from playground.export.script import pytorch_script
from playground.runs.background import BackgroundRun, RunError
from playground.runs.protocol import RunPlan
from playground.runs.seats import SEATS_FILE, Classroom, SeatBook
from playground.runs.shown import forget, locked_elsewhere, shown_snapshot
from playground.runs.worker import ELSEWHERE, warm_up
from playground.training.checkpoints import MAX_CHECKPOINT_BYTES
from playground.training.cost import estimate, gigabytes, memory_budget
from playground.training.run_folder import (
    CHECKPOINT_FILE,
    COMPARE_FILE,
    CONFIG_FILE,
    FINAL_STATUSES,
    MAX_METRICS_BYTES,
    METRICS_FILE,
    RUN_FILE,
    RunKind,
    RunStatus,
    create_run_dir,
    read_config,
    read_custom,
    read_run_file,
    run_folder,
    runs_folder,
    write_config,
    write_json,
)
from playground.training.trainer import build_task

MAX_NAME = 80


@dataclass(frozen=True)
class RunSummary:
    id: str
    name: str
    kind: RunKind
    status: RunStatus
    step: int
    total_steps: int
    owner: str = ""  # shared mode: the seat that started it (never in a JSON line)
    lesson: str = ""  # the lesson whose run it is, as the server recorded at its start ('' for any other run)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": str(self.kind), "status": str(self.status),
                "step": self.step, "total_steps": self.total_steps}


@dataclass(frozen=True)
class Admission:
    """A start as the registry's admission checks see it: who starts what, and what trains already."""

    owner: str
    peak_memory_bytes: float
    run: BackgroundRun[Any] | None  # None: a new run, created only if every check passes
    active: list[BackgroundRun[Any]]


@dataclass
class RunRegistry:
    """Every run of this process and of the runs folder; at most `max_active` workers train at once."""

    runs_dir: Path
    max_active: int = 4
    memory_budget: float = field(default_factory=memory_budget)
    classroom: Classroom | None = None  # shared mode: seats, their quotas, the queue's bound, the idle rule
    _runs: dict[str, BackgroundRun[Any]] = field(default_factory=dict)
    _queue: list[BackgroundRun[Any]] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    # more rules a start must pass (seats, quotas): each raises RunError to refuse the start it is shown
    admission_checks: list[Callable[[Admission], None]] = field(default_factory=list)

    @property
    def shared(self) -> bool:
        """People see only their own runs (and runs opened by a link); training needs a seat; starts past a limit
        queue."""
        return self.classroom is not None

    def launch(self, name: str, plan: RunPlan, one_step: bool = False, owner: str = "", lesson: str = ""
               ) -> BackgroundRun[Any]:
        """A new run of `plan`, started (or stepped once) in a worker. When it may not start, nothing is created,
        except in shared mode, where a seat's run waits in the queue (`queue_position`), a plan only, and starts
        when a slot frees. `lesson` records what the run is, for the pages that look for a lesson's runs."""
        size, workers = footprint(plan.kind, plan.config, plan.address, plan.workers)
        peak = _peak_memory(plan.base, plan.custom, size)
        self.release_idle()
        with self._lock:
            if self.classroom is not None:
                self.classroom.check_start(owner, workers, self.max_active)
            try:
                self._admit(None, peak, owner, workers)
            except RunError:
                if self.classroom is None:
                    raise
                self.classroom.check_queue(owner, [run for run in self._queue if run.status == RunStatus.QUEUED])
                run = self._create(name, plan, size, owner, lesson, workers)
                run.peak_memory_bytes = peak
                run.queue()
                self._queue.append(run)
                return run
            run = self._create(name, plan, size, owner, lesson, workers)
            run.peak_memory_bytes = peak
            (run.step_once if one_step else run.start)()
        return run

    def queue_position(self, run: BackgroundRun[Any]) -> tuple[int, int]:
        """(1-based place, queue length); (0, length) for a run that does not wait. Asked by every waiting page,
        so it is also when idle runs release their slots."""
        self.release_idle()
        with self._lock:
            waiting = [queued for queued in self._queue if queued.status == RunStatus.QUEUED]
            return (waiting.index(run) + 1 if run in waiting else 0), len(waiting)

    def _start_queued(self, ended: BackgroundRun[Any] | None = None) -> None:
        """A run ended: start the queued runs that now fit, first come first served."""
        with self._lock:
            self._queue = [run for run in self._queue if run.status == RunStatus.QUEUED]
            for run in list(self._queue):
                try:
                    self._admit(run, owner=run.owner)
                except RunError:
                    continue
                self._queue.remove(run)
                run.status = RunStatus.IDLE
                run.start()

    def _create(self, name: str, plan: RunPlan, size: int, owner: str = "", lesson: str = "", workers: int = 1
                ) -> BackgroundRun[Any]:
        run_dir = create_run_dir(self.runs_dir, name or plan.base.task)
        try:
            write_config(run_dir, plan.base, plan.custom)
            run = BackgroundRun(run_dir.name, visible_name(name, MAX_NAME) or run_dir.name, plan.kind, run_dir, plan,
                                owner=owner, control_key=secrets.token_urlsafe(16), size=size, lesson=lesson,
                                workers=workers)
            if problem := run.write_run_file():
                raise OSError(problem)
        except OSError:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        run.admit = self._admit
        run.on_end = self._start_queued
        self._runs[run.id] = run
        return run

    def _admit(self, starting: BackgroundRun[Any] | None, peak: float | None = None, owner: str = "",
               workers: int = 1) -> None:
        """Refuse a start past `max_active` workers, past a seat's share in shared mode, or past the memory
        budget (the estimates of the runs training)."""
        with self._lock:
            active = [run for run in self._runs.values() if run.active and run is not starting]
        owner, workers = (starting.owner, starting.workers) if starting is not None else (owner, workers)
        if (busy := sum(run.workers for run in active)) + workers > self.max_active:
            raise RunError(f"{busy} workers are training already (at most {self.max_active} at once); "
                           "stop or pause a run first")
        if self.classroom is not None:
            self.classroom.check_start(owner, workers, self.max_active)
            self.classroom.check_quota(owner, workers, active)
        needed = peak if peak is not None else starting.peak_memory_bytes if starting is not None else 0.0
        in_use = sum(run.peak_memory_bytes for run in active)
        if in_use + needed > self.memory_budget:
            raise RunError(f"this run needs about {gigabytes(needed)} of memory and the runs training now about "
                           f"{gigabytes(in_use)}: together more than the budget of {gigabytes(self.memory_budget)} "
                           "(PLAYGROUND_MEMORY_BUDGET_GB); stop a run or choose a smaller model, batch or length")
        for check in self.admission_checks:
            check(Admission(owner, needed, starting, active))

    def release_idle(self) -> None:
        """Shared mode: stop and save the runs the classroom's idle rule names (`Classroom.idle`), so nobody holds
        a slot or a queue place while away; Train on continues them."""
        if self.classroom is None:
            return
        with self._lock:
            runs = list(self._runs.values())
        for run in self.classroom.idle(runs):
            run.stop(wait=10.0 if run.status == RunStatus.PAUSED else 0.0)

    def may_control(self, run_id: str, person: str, keys: Collection[str] = ()) -> bool:
        """Stop, pause, resume, rename, delete: anyone outside shared mode; in shared mode the run's owner (a seat),
        or whoever holds its control key (the link its owner chose to hand out)."""
        if not self.shared:
            return True
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None:
            owner, key = run.owner, run.control_key
        else:
            try:
                info = read_run_file(self._folder(run_id)) or {}
            except RunError:
                return False
            owner, key = str(info.get("owner", "")), str(info.get("control", ""))
        return (bool(person) and owner == person) or (bool(key) and key in keys)

    def list(self, viewer: str = "", opened: frozenset[str] = frozenset(), everyone: bool = False
             ) -> list[RunSummary]:
        """Newest first: runs in memory and run folders on disk; in shared mode only the viewer's own runs and
        those it opened by a link (`everyone`: the teacher's view)."""
        with self._lock:
            found = {run.id: (RunSummary(run.id, run.name, run.kind, run.status, run.step, run.total_steps,
                                         run.owner, run.lesson), run.owner) for run in self._runs.values()}
        if self.runs_dir.is_dir():
            for path in self.runs_dir.iterdir():
                if path.name in found or path.is_symlink() or not path.is_dir():  # only real run folders
                    continue
                if info := read_run_file(path):
                    owner = str(info.get("owner", ""))
                    found[path.name] = (RunSummary(path.name, str(info["name"]), RunKind(info["kind"]),
                                                   RunStatus(info["status"]), _count(info.get("step")),
                                                   _count(info.get("total_steps")), owner, _lesson(info)), owner)
                elif (path / CONFIG_FILE).is_file():  # a run whose run.json is damaged is still shown, as such
                    kind = RunKind.COMPARE if (path / COMPARE_FILE).is_file() else RunKind.TRAIN
                    found[path.name] = (RunSummary(path.name, f"{path.name} ({RUN_FILE} is damaged)", kind,
                                                   RunStatus.FAILED, 0, 0), "")
        found = {run_id: (dataclasses.replace(summary, status=RunStatus.ELSEWHERE), owner)
                 if summary.status in FINAL_STATUSES and locked_elsewhere(self.runs_dir / run_id)
                 else (summary, owner) for run_id, (summary, owner) in found.items()}
        shown = [summary for summary, owner in found.values()
                 if not self.shared or everyone or (viewer and owner == viewer) or summary.id in opened]
        return sorted(shown, key=lambda summary: summary.id, reverse=True)

    def get(self, run_id: str) -> BackgroundRun[Any]:
        """A run by id; a folder from disk is read back (by a worker: the server builds no model) the first time
        it is opened. ValueError if it is damaged."""
        with self._lock:
            if run_id in self._runs:
                return self._runs[run_id]
            run_dir = self._folder(run_id)
            info = read_run_file(run_dir)
            if info is None:
                damaged = (run_dir / CONFIG_FILE).is_file()
                raise RunError(f"{RUN_FILE} of run {run_id} is damaged" if damaged else f"no run {run_id!r}")
            kind = RunKind(info["kind"])
            snapshot = shown_snapshot(kind, run_dir)  # refuses a damaged folder, as loading it would
            size, workers = footprint(kind, snapshot.config)
            run = BackgroundRun(run_id, str(info["name"]), kind, run_dir, None, RunStatus(info["status"]),
                                str(info.get("message", "")), str(info.get("owner", "")),
                                str(info.get("control", "")), _count(info.get("step")),
                                _count(info.get("total_steps")), size, _lesson(info), workers)
            run.admit = self._admit
            run.on_end = self._start_queued
            config = read_config(run_dir)
            run.peak_memory_bytes = _peak_memory(config, read_custom(run_dir, config), run.size)
            self._runs[run_id] = run
            return run

    def _folder(self, run_id: str) -> Path:
        """A run's real folder (`run_folder.run_folder`); an id may come from a URL."""
        try:
            return run_folder(self.runs_dir, run_id)
        except ValueError as error:
            raise RunError(str(error)) from None

    def rename(self, run_id: str, name: str) -> None:
        """A new display name; a run on disk is renamed in its run.json without being loaded."""
        name = visible_name(name, MAX_NAME)
        if not name:
            raise RunError("a run's name cannot be empty")
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None:
            run.rename(name)
            return
        info = read_run_file(self._folder(run_id))
        if info is None:
            raise RunError(f"no run {run_id!r}")
        write_json(self._folder(run_id) / RUN_FILE, info | {"name": name})

    def delete(self, run_id: str) -> None:
        """Stop the run if it trains and remove its folder; a folder that cannot be opened can still go. A run that
        another process trains is refused."""
        with self._lock:
            run = self._runs.get(run_id)
            if (run is None or not run.training) and locked_elsewhere(self._folder(run_id)):
                raise RunError(ELSEWHERE)
            self._runs.pop(run_id, None)
        forget(self._folder(run_id))
        if run is not None:
            run.stop()
            run.join(timeout=10)
        elif read_run_file(self._folder(run_id)) is None and not (self._folder(run_id) / CONFIG_FILE).is_file():
            raise RunError(f"no run {run_id!r}")
        try:
            shutil.rmtree(self._folder(run_id))
        except OSError as error:
            raise RunError(f"run {run_id} could not be deleted: {error.strerror or error}") from None

    def metrics_file(self, run_id: str) -> bytes:
        """A run's metrics.csv as saved last (a run saves every few seconds)."""
        return self._file(run_id, METRICS_FILE, MAX_METRICS_BYTES)

    def checkpoint_file(self, run_id: str) -> bytes:
        return self._file(run_id, CHECKPOINT_FILE, MAX_CHECKPOINT_BYTES)

    def script_file(self, run_id: str, condition: int | None = None) -> bytes:
        """The run (a study: its `condition`) as a standalone PyTorch script (`export.script`)."""
        try:
            return pytorch_script(read_experiment(self._folder(run_id), condition)).encode()
        except ValueError as error:
            raise RunError(f"cannot export run {run_id}: {error}") from None

    def _file(self, run_id: str, name: str, limit: int) -> bytes:
        try:
            return read_bounded(self._folder(run_id) / name, limit, name)
        except FileTooLarge as error:
            raise RunError(f"cannot read {name} of run {run_id}: {error}") from None
        except OSError as error:  # its strerror, not its str: that names the server's path
            raise RunError(f"cannot read {name} of run {run_id}: {error.strerror or 'not readable'}") from None

    def stop_all(self) -> None:
        for run in list(self._runs.values()):
            run.stop()
            run.join(timeout=10)


def footprint(kind: RunKind, config: Any, address: str | None = None, cores: int | None = None) -> tuple[int, int]:
    """What a run of this kind and config costs when it trains: the models trained at once on this machine (what
    admission multiplies a model's estimate by) and the workers counted against the slots and a seat's quota. A
    comparison trains its models in one worker; a study its local conditions on Ray's workers (a saved study counts
    as local: it may resume on this machine)."""
    if kind == RunKind.STUDY:
        from playground.runs.study_engine import StudyEngine

        engine = StudyEngine(config, address=address, num_cpus=cores)
        return engine.size, engine.workers
    return (len(config.configs()) if isinstance(config, CompareConfig) else 1), 1


def _peak_memory(config: TrainConfig, custom: CustomPairs | None, models: int) -> float:
    return estimate(config, build_task(config, custom)).peak_memory_bytes * models


def _lesson(info: dict[str, Any]) -> str:
    """The lesson a run.json records (written by the server at the run's start, never taken from a name)."""
    lesson = info.get("lesson", "")
    return lesson if isinstance(lesson, str) and len(lesson) <= MAX_NAME else ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


_REGISTRY: RunRegistry | None = None
_REGISTRY_LOCK = threading.Lock()


def registry() -> RunRegistry:
    """The process-wide registry over PLAYGROUND_RUNS_DIR (default: runs); PLAYGROUND_MAX_ACTIVE (default 4) caps
    the workers training at once. PLAYGROUND_SHARED=1 serves a class (`seats.Classroom`): training needs a seat,
    each seat sees its own runs, trains on at most PLAYGROUND_RUNS_PER_SESSION workers (default 1) and queues at
    most PLAYGROUND_QUEUED_PER_PERSON runs (default 1); the queue holds at most PLAYGROUND_MAX_QUEUED runs (default
    16); the runs of a seat with no page open for PLAYGROUND_IDLE_MINUTES (default 10) stop."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            warm_up()
            runs_dir = runs_folder()
            classroom = None
            if os.environ.get("PLAYGROUND_SHARED", "") == "1":
                runs_dir.mkdir(parents=True, exist_ok=True)
                classroom = Classroom(SeatBook(runs_dir / SEATS_FILE),
                                      per_seat=_setting("PLAYGROUND_RUNS_PER_SESSION", 1),
                                      queued_per_seat=_setting("PLAYGROUND_QUEUED_PER_PERSON", 1),
                                      max_queued=_setting("PLAYGROUND_MAX_QUEUED", 16),
                                      idle_seconds=60 * _setting("PLAYGROUND_IDLE_MINUTES", 10.0))
            _REGISTRY = RunRegistry(runs_dir, max_active=_setting("PLAYGROUND_MAX_ACTIVE", 4), classroom=classroom)
            if classroom is not None:
                threading.Thread(target=_release_idle_runs, args=(_REGISTRY, classroom), name="idle-runs",
                                 daemon=True).start()
        return _REGISTRY


def _setting(name: str, default: Any) -> Any:
    """A number from the environment, of `default`'s type and above zero; a wrong one stops the server with what
    is allowed."""
    text = os.environ.get(name, "")
    try:
        value = type(default)(text) if text else default
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        raise ConfigError([f"{name}={text!r} is not allowed: give a {type(default).__name__} above 0 "
                           f"(default {default})"])
    return value


def _release_idle_runs(runs: RunRegistry, classroom: Classroom) -> None:
    """Stop the runs of absent seats even while no page asks (`release_idle`), until the registry is replaced."""
    while _REGISTRY is runs:
        runs.release_idle()
        time.sleep(min(30.0, classroom.idle_seconds / 4))


def reset_registry() -> None:
    """Stop every run and forget them (tests; a fresh PLAYGROUND_RUNS_DIR)."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is not None:
            _REGISTRY.stop_all()
        _REGISTRY = None
