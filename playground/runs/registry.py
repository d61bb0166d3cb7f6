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

from playground.core.config import TrainConfig
from playground.core.files import FileTooLarge, read_bounded
from playground.core.tasks import CustomPairs
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.export.experiment import read_experiment
from playground.export.script import pytorch_script
from playground.runs import worker
from playground.runs.background import BackgroundRun, RunError
from playground.runs.protocol import RunPlan
from playground.runs.shown import forget, locked_elsewhere, shown_snapshot
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
    owner: str = ""  # shared mode: the person who started it (a secret identity: never in a page or a JSON line)

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
    """Every run of this process and of the runs folder; at most `max_active` train at once."""

    runs_dir: Path
    max_active: int = 4
    memory_budget: float = field(default_factory=memory_budget)
    shared: bool = False  # people see only their own runs (and runs opened by a link); starts past a limit queue
    max_per_session: int = 1  # shared mode: runs one person may have training (or paused) at once
    max_queued_per_person: int = 1  # shared mode: runs one person may have waiting in the queue
    idle_seconds: float = 600.0  # shared mode: a paused run (or a queued one whose owner left) frees its slot after
    _runs: dict[str, BackgroundRun[Any]] = field(default_factory=dict)
    _seen: dict[str, float] = field(default_factory=dict)  # person -> when one of their pages last ran
    _queue: list[BackgroundRun[Any]] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    # more rules a start must pass (seats, quotas): each raises RunError to refuse the start it is shown
    admission_checks: list[Callable[[Admission], None]] = field(default_factory=list)

    def launch(self, name: str, plan: RunPlan, one_step: bool = False, owner: str = "") -> BackgroundRun[Any]:
        """A new run of `plan`, started (or stepped once) in a worker. When it may not start, nothing is created,
        except in shared mode, where it waits in the queue (`queue_position`), a plan only, and starts when a slot
        frees."""
        size = plan_size(plan)
        peak = _peak_memory(plan.base, plan.custom, size)
        self.release_idle()
        with self._lock:
            try:
                self._admit(None, peak, owner)
            except RunError:
                if not self.shared:
                    raise
                waiting = sum(queued.owner == owner and queued.status == RunStatus.QUEUED for queued in self._queue)
                if waiting >= self.max_queued_per_person:
                    raise RunError(f"you have {waiting} run(s) waiting in the queue already, the most one person "
                                   "may: stop one or wait for it to start") from None
                run = self._create(name, plan, size, owner)
                run.peak_memory_bytes = peak
                run.queue()
                self._queue.append(run)
                return run
            run = self._create(name, plan, size, owner)
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

    def _create(self, name: str, plan: RunPlan, size: int, owner: str = "") -> BackgroundRun[Any]:
        run_dir = create_run_dir(self.runs_dir, name or plan.base.task)
        try:
            write_config(run_dir, plan.base, plan.custom)
            run = BackgroundRun(run_dir.name, (name or run_dir.name)[:MAX_NAME], plan.kind, run_dir, plan,
                                owner=owner, control_key=secrets.token_urlsafe(16), size=size)
            if problem := run.write_run_file():
                raise OSError(problem)
        except OSError:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        run.admit = self._admit
        run.on_end = self._start_queued
        self._runs[run.id] = run
        return run

    def _admit(self, starting: BackgroundRun[Any] | None, peak: float | None = None, owner: str = "") -> None:
        """Refuse a start past `max_active` runs, past a session's share in shared mode, or past the memory
        budget (the estimates of the runs training)."""
        with self._lock:
            active = [run for run in self._runs.values() if run.active and run is not starting]
        if len(active) >= self.max_active:
            raise RunError(f"{len(active)} runs are training already (at most {self.max_active} at once); "
                           "stop or pause one first")
        owner = starting.owner if starting is not None else owner
        if self.shared and sum(run.owner == owner for run in active) >= self.max_per_session:
            raise RunError(f"you have {self.max_per_session} run(s) training or paused already, the most one person "
                           "may at once")
        needed = peak if peak is not None else starting.peak_memory_bytes if starting is not None else 0.0
        in_use = sum(run.peak_memory_bytes for run in active)
        if in_use + needed > self.memory_budget:
            raise RunError(f"this run needs about {gigabytes(needed)} of memory and the runs training now about "
                           f"{gigabytes(in_use)}: together more than the budget of {gigabytes(self.memory_budget)} "
                           "(PLAYGROUND_MEMORY_BUDGET_GB); stop a run or choose a smaller model, batch or length")
        for check in self.admission_checks:
            check(Admission(owner, needed, starting, active))

    def release_idle(self) -> None:
        """Shared mode: a run paused for `idle_seconds` is stopped (saved: Train on continues it), and a queued run
        whose owner has shown no page for that long leaves the queue, so nobody holds a slot with zero CPU."""
        if not self.shared:
            return
        now = time.monotonic()
        with self._lock:
            runs = list(self._runs.values())
            seen = dict(self._seen)
        for run in runs:
            if run.status == RunStatus.PAUSED and now - run.last_control > self.idle_seconds:
                run.stop(wait=10.0)
            elif (run.status == RunStatus.QUEUED
                  and now - max(run.last_control, seen.get(run.owner, 0.0)) > self.idle_seconds):
                run.stop()

    def seen(self, person: str) -> None:
        """A page of `person` ran now (their queued runs keep their place)."""
        with self._lock:
            self._seen[person] = time.monotonic()

    def present(self, person: str) -> bool:
        """Whether `person` has opened a page since this server started (else their runs can be handed back)."""
        with self._lock:
            return person in self._seen

    def may_control(self, run_id: str, person: str, keys: Collection[str] = ()) -> bool:
        """Stop, pause, resume, rename, delete: anyone outside shared mode; in shared mode the run's owner, or
        whoever holds its control key (the link its owner chose to hand out)."""
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
                                         run.owner), run.owner) for run in self._runs.values()}
        if self.runs_dir.is_dir():
            for path in self.runs_dir.iterdir():
                if path.name in found or path.is_symlink() or not path.is_dir():  # only real run folders
                    continue
                if info := read_run_file(path):
                    owner = str(info.get("owner", ""))
                    found[path.name] = (RunSummary(path.name, str(info["name"]), RunKind(info["kind"]),
                                                   RunStatus(info["status"]), _count(info.get("step")),
                                                   _count(info.get("total_steps")), owner), owner)
                elif (path / CONFIG_FILE).is_file():  # a run whose run.json is damaged is still shown, as such
                    kind = RunKind.COMPARE if (path / COMPARE_FILE).is_file() else RunKind.TRAIN
                    found[path.name] = (RunSummary(path.name, f"{path.name} ({RUN_FILE} is damaged)", kind,
                                                   RunStatus.FAILED, 0, 0), "")
        found = {run_id: (dataclasses.replace(summary, status=RunStatus.ELSEWHERE), owner)
                 if summary.status in FINAL_STATUSES and locked_elsewhere(self.runs_dir / run_id)
                 else (summary, owner) for run_id, (summary, owner) in found.items()}
        shown = [summary for summary, owner in found.values()
                 if not self.shared or everyone or owner == viewer or summary.id in opened]
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
            run = BackgroundRun(run_id, str(info["name"]), kind, run_dir, None, RunStatus(info["status"]),
                                str(info.get("message", "")), str(info.get("owner", "")),
                                str(info.get("control", "")), _count(info.get("step")),
                                _count(info.get("total_steps")), snapshot_size(kind, snapshot))
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
        name = name.strip()[:MAX_NAME]
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
                raise RunError(worker.ELSEWHERE)
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

    def script_file(self, run_id: str, cell: int | None = None) -> bytes:
        """The run (a study: its `cell`) as a standalone PyTorch script (`export.script`)."""
        try:
            return pytorch_script(read_experiment(self._folder(run_id), cell)).encode()
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


def plan_size(plan: RunPlan) -> int:
    """The models a plan trains at once on this machine (what admission multiplies a model's estimate by)."""
    if isinstance(plan.config, CompareConfig):
        return len(plan.config.configs())
    if plan.kind == RunKind.STUDY:
        from playground.runs.study_engine import StudyEngine

        return StudyEngine(plan.config, address=plan.address, num_cpus=plan.workers).size
    return 1


def snapshot_size(kind: RunKind, snapshot: Any) -> int:
    """The models of a saved run, from its snapshot (a comparison: one list of rows per model)."""
    if isinstance(snapshot, CompareSnapshot):
        return len(snapshot.rows)
    if kind == RunKind.STUDY:
        from playground.runs.study_engine import StudyEngine

        return StudyEngine(snapshot.config).size
    return 1


def _peak_memory(config: TrainConfig, custom: CustomPairs | None, models: int) -> float:
    return estimate(config, build_task(config, custom)).peak_memory_bytes * models


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


_REGISTRY: RunRegistry | None = None
_REGISTRY_LOCK = threading.Lock()


def registry() -> RunRegistry:
    """The process-wide registry over PLAYGROUND_RUNS_DIR (default: runs); PLAYGROUND_SHARED=1 serves a class:
    each person sees their own runs, at most PLAYGROUND_RUNS_PER_SESSION (default 1) train per person, starts past
    a limit wait in a queue (PLAYGROUND_QUEUED_PER_PERSON, default 1, each), and idle runs release their slots
    after PLAYGROUND_IDLE_MINUTES (default 10). PLAYGROUND_MAX_ACTIVE (default 4) caps the runs training at once."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            worker.warm_up()
            _REGISTRY = RunRegistry(Path(os.environ.get("PLAYGROUND_RUNS_DIR", "runs")),
                                    max_active=int(os.environ.get("PLAYGROUND_MAX_ACTIVE", "4")),
                                    shared=os.environ.get("PLAYGROUND_SHARED", "") == "1",
                                    max_per_session=int(os.environ.get("PLAYGROUND_RUNS_PER_SESSION", "1")),
                                    max_queued_per_person=int(os.environ.get("PLAYGROUND_QUEUED_PER_PERSON", "1")),
                                    idle_seconds=60 * float(os.environ.get("PLAYGROUND_IDLE_MINUTES", "10")))
        return _REGISTRY


def reset_registry() -> None:
    """Stop every run and forget them (tests; a fresh PLAYGROUND_RUNS_DIR)."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is not None:
            _REGISTRY.stop_all()
        _REGISTRY = None
