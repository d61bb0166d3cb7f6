"""A study on Ray: one Ray task per cell, its evaluations streamed back while it trains.

Ray runs on this machine (started on demand, one worker per core) unless an address is given (`--address`, or
PLAYGROUND_RAY_ADDRESS), then on that cluster. Each task trains one cell's arms x seeds as a `CompareEngine`
in a Ray worker process (never in the app's process) and yields a `CellResult` at every evaluation: a streaming
generator task, so the driver polls with `ray.wait` and a stop cancels it. `StudyEngine` is the run's engine:
`BackgroundRun` calls `advance()`, which polls; it saves the grid and every cell's latest result, and a reopened
unfinished study submits only the cells that are not done (a cell stopped half-way trains again from step 0).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray
import torch
from ray.exceptions import RayError, RayTaskError

from playground.analysis.compare import CompareConfig
from playground.analysis.study import Cell, CellResult, StudyConfig, cell_summary
from playground.core.config import whole_number
from playground.core.files import DamagedFile
from playground.runs.engine import RunKind
from playground.runs.engines import CompareEngine
from playground.training.storage import read_json, write_json
from playground.training.trainer import TrainedModel

ADDRESS_ENV = "PLAYGROUND_RAY_ADDRESS"
STUDY_FILE = "study.json"
ATTEMPTS = 2  # a failing cell is trained again once, then recorded as failed
POLL_SECONDS = 0.2  # how long one advance() waits for a report: BackgroundRun holds the engine's lock meanwhile
ROOT = Path(__file__).resolve().parents[2]
# what a cluster's workers need of this folder (the code); environments, runs and caches stay here
UPLOAD_EXCLUDES = [".venv", ".git", "runs", "**/__pycache__", ".pytest_cache", ".ruff_cache", "tests/browser"]
_RAY_HOST = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ray-host")  # its one thread never ends
_CONNECTING = threading.Lock()


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Ray on this machine (`num_cpus` workers, default one per core), or the cluster at `address` (else
    PLAYGROUND_RAY_ADDRESS); once per process.

    `ray.init` runs on a thread that lives as long as this process: the local instance's processes get Linux's
    parent-death signal when the *thread* that started them ends, and the driver exits a minute after they die.
    Started from a run's thread, the first study to end would take the whole app server down with it.
    """
    with _CONNECTING:
        if ray.is_initialized():
            return
        address = address or os.environ.get(ADDRESS_ENV) or None
        if address:  # the code travels with the job; torch and the requirements must be installed on every node
            options = {"address": address, "runtime_env": {"working_dir": str(ROOT), "excludes": UPLOAD_EXCLUDES}}
        else:
            options = {"num_cpus": num_cpus or os.cpu_count(), "include_dashboard": False,
                       "runtime_env": {"env_vars": {"PYTHONPATH": str(ROOT)}}}
        _RAY_HOST.submit(ray.init, log_to_driver=False, ignore_reinit_error=True, **options).result()


def cell_reports(compare: CompareConfig) -> Iterator[dict[str, Any]]:
    """Train one cell's models together; yield each model's latest evaluation at every evaluation."""
    torch.set_num_threads(1)  # this worker process's setting: one core per task
    # only evaluations are reported; one thread of models, as Ray counts this task as one CPU
    engine = CompareEngine(compare, log_every=compare.base.steps, workers=1)
    while not engine.finished:
        engine.advance()
        if engine.step % compare.base.eval_every == 0 or engine.finished:
            yield CellResult.from_rows(engine.rows, engine.step, engine.finished, engine.seconds).as_dict()


# Ray retries nothing itself: the engine trains a failed cell once more, then records why it failed
train_cell = ray.remote(num_cpus=1, num_returns="streaming", max_retries=0)(cell_reports)


class StudyEngine:
    """The grid's cells on Ray, in the `Engine` shape: steps are summed over cells."""

    kind = RunKind.STUDY
    size = 0  # its models train in Ray workers, never in this process: nothing here for admission to count

    def __init__(self, config: StudyConfig, results: dict[int, CellResult] | None = None,
                 address: str | None = None) -> None:
        self.config = config
        self.cells: list[Cell] = config.cells()
        self.results: dict[int, CellResult] = results or {}
        self.address = address
        self.seconds = 0.0
        self._running: dict[Any, int] = {}  # streaming generator -> cell index
        self._attempts: dict[int, int] = {}
        self._submitted = False  # this engine's cells went to Ray (once: a resumed study gets a new engine)
        self.groups_run = self.groups_reused = 0  # cells submitted, and cells done before, in this session
        self.wants_save = False

    @classmethod
    def load(cls, run_dir: Path) -> StudyEngine:
        values = read_json(run_dir / STUDY_FILE)
        if not isinstance(values, dict) or not isinstance(values.get("results"), dict):
            raise DamagedFile(f"{STUDY_FILE} is damaged: it holds no results")
        engine = cls(StudyConfig.from_dict(values.get("config")), address=values.get("address") or None)
        for key, result in values["results"].items():
            if (cell := whole_number(str(key))) is None or cell >= len(engine.cells):
                raise DamagedFile(f"{STUDY_FILE} names cell {key!r}, which this study does not have")
            engine.results[cell] = CellResult.from_dict(result)
        engine.seconds = float(values.get("seconds", 0.0))
        return engine

    @property
    def step(self) -> int:
        return sum(result.step for result in self.results.values())

    @property
    def total_steps(self) -> int:
        return len(self.cells) * self.config.base.steps

    @property
    def cells_done(self) -> int:
        return sum(result.done for result in self.results.values())

    @property
    def groups_failed(self) -> int:
        return sum(bool(result.failed) for result in self.results.values())

    @property
    def finished(self) -> bool:
        """Every cell done, or failed twice."""
        return all(self.results.get(cell.index, CellResult()).ended for cell in self.cells)

    def advance(self) -> None:
        """Submit the cells not done (first call), then take whatever reports arrive within POLL_SECONDS."""
        started = time.perf_counter()
        if not self._submitted:
            connect(self.address)
            pending = [cell for cell in self.cells if not self.results.get(cell.index, CellResult()).done]
            self.groups_reused = len(self.cells) - len(pending)
            for cell in pending:
                self._submit(cell)
            self.groups_run = len(pending)
            self._submitted = True
        ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=POLL_SECONDS)
        for generator in ready:
            index = self._running[generator]
            try:
                report = ray.get(next(generator))
            except StopIteration:
                del self._running[generator]
                continue
            except RayError as error:  # the cell's own exception (DivergedError...), a lost worker, out of memory
                del self._running[generator]
                self._failed(self.cells[index], error)
                continue
            self.results[index] = CellResult.from_dict(report)
            self.wants_save = True  # results are written as they arrive
        self.seconds += time.perf_counter() - started

    def _submit(self, cell: Cell) -> None:
        self.results[cell.index] = CellResult()
        self._attempts[cell.index] = self._attempts.get(cell.index, 0) + 1
        self._running[train_cell.remote(cell.compare)] = cell.index

    def _failed(self, cell: Cell, error: RayError) -> None:
        """Once: train the cell again from step 0. Twice: record why, keep what it reported, go on."""
        if self._attempts.get(cell.index, 0) < ATTEMPTS:
            self._submit(cell)
            return
        cause = error.cause if isinstance(error, RayTaskError) else None
        reason = str(cause) if cause is not None else f"{type(error).__name__}: {str(error).splitlines()[0]}"
        self.results[cell.index] = replace(self.results.get(cell.index, CellResult()), failed=reason)

    def halt(self) -> None:
        """Cancel the cells still training (a stop)."""
        for generator in self._running:
            ray.cancel(generator, force=True)
        self._running.clear()

    def snapshot(self) -> StudySnapshot:
        return StudySnapshot(self.config, [cell_summary(cell, self.results.get(cell.index)) for cell in self.cells],
                             self.cells_done, len(self.cells), self.step, self.total_steps, self.seconds,
                             self.groups_run, self.groups_reused, self.groups_failed)

    def set_live(self, changes: Mapping[str, float]) -> None:
        raise ValueError("a study's settings are fixed while it trains")

    def extend(self, total_steps: int) -> None:
        """Resuming trains the cells not done to the study's own step budget; the budget itself stays."""

    def models(self) -> list[TrainedModel]:
        return []  # the models live and die in the workers; a study keeps their numbers

    def save(self, run_dir: Path) -> None:
        self.wants_save = False
        write_json(run_dir / STUDY_FILE, {"config": self.config.as_dict(), "address": self.address or "",
                                          "seconds": self.seconds,
                                          "results": {str(k): r.as_dict() for k, r in self.results.items()}})


@dataclass
class StudySnapshot:
    """What the page and the CLI show: every cell's summary (means, CIs, paired tests) and the progress."""

    config: StudyConfig
    summaries: list[dict[str, Any]]
    cells_done: int
    cells_total: int
    step: int
    total_steps: int
    seconds: float
    groups_run: int = 0  # cells trained in this session (the rest were done before it)
    groups_reused: int = 0
    groups_failed: int = 0

    @property
    def eta_seconds(self) -> float | None:
        """Time left at the pace so far (steps summed over cells); None before the first report."""
        if self.step == 0 or self.seconds <= 0:
            return None
        return self.seconds * (self.total_steps - self.step) / self.step
