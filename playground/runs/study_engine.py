"""A study as a run: its conditions train on Ray in a driver process of its own; this side only reads JSON.

`StudyEngine` is the run's engine (`BackgroundRun` calls `advance()`), in the app's and the CLI's process alike.
Its first `advance()` starts the driver (`python -m playground.runs.ray_driver`, playground/runs/ray_driver.py) in
a session of its own, hands it the study as one JSON line, and from then on reads the driver's JSON lines: the
address it really ran on, then each condition's latest result. This process never imports Ray and never unpickles what
a cluster sends; Ray's processes (a local instance belongs to the driver) cannot take it down. A stop, or the run's
end, terminates the driver and then kills whatever is left of its process group, so no Ray process it started
outlives the study. The grid and every condition's latest result are saved in study.json; a reopened unfinished study
submits only the conditions that are not done (a condition stopped half-way trains again from step 0)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from playground.core.config import ConfigError, whole_number
from playground.core.files import DamagedFile
from playground.experiments.study_grid import Condition, ConditionResult, StudyConfig
from playground.reports.study_table import condition_summary
from playground.runs.background import RunError
from playground.training.cost import estimate
from playground.training.run_folder import STUDY_FILE, RunKind, read_json, write_json
from playground.training.trainer import TrainedModel, build_task

ROOT = Path(__file__).resolve().parents[2]  # where `playground` is imported from


ADDRESS_ENV = "PLAYGROUND_RAY_ADDRESS"


CONNECT_ENV = "PLAYGROUND_RAY_CONNECT_SECONDS"


CONNECT_SECONDS = 20.0  # to reach a cluster; a local Ray's own start is not bounded by it (see LOCAL_START_SECONDS)


LOCAL_START_SECONDS = 180.0  # a local Ray on a busy 2-core machine can take a minute to start


POLL_SECONDS = 0.2  # how long one advance() waits for a report: BackgroundRun holds the engine's lock meanwhile


DRIVER_EXIT_SECONDS = 15.0  # after SIGTERM, how long the driver may take to cancel its conditions and stop its Ray


MAX_LINE = 1_000_000  # one condition's result is a few KB; a longer line is not a result


ADDRESS_PATTERN = re.compile(r"[A-Za-z0-9._\-]{1,253}:[0-9]{1,5}|auto")


_ENDED = object()  # what the reader thread queues when the driver's stdout closes


def check_address(address: str | None) -> str | None:
    """A Ray address as `ray.init` takes it (HOST:PORT of a cluster's head, or auto), or None for a local Ray;
    ConfigError names what is allowed. Not ray://: Ray Client cannot stream a condition's results."""
    address = (address or "").strip()
    if not address:
        return None
    shown = address if len(address) <= 60 else f"{address[:60]}..."
    if address.startswith("ray://"):
        raise ConfigError([f"Ray address {shown!r} is not allowed: Ray Client (ray://) cannot stream a study's "
                           "results; make this machine a node of the cluster (`ray start --address HEAD:6379 "
                           "--num-cpus 0`) and give HEAD:6379"])
    if len(address) > 300 or not ADDRESS_PATTERN.fullmatch(address):
        raise ConfigError([f"Ray address {shown!r} is not allowed: give HOST:PORT of the cluster's head (e.g. "
                           "10.0.0.5:6379) or auto, from a machine that is a node of the cluster"])
    return address


def connect_seconds() -> float:
    """How long a driver may take to reach a cluster (PLAYGROUND_RAY_CONNECT_SECONDS, default 20)."""
    try:
        seconds = float(os.environ.get(CONNECT_ENV, CONNECT_SECONDS))
    except ValueError:
        raise ConfigError([f"{CONNECT_ENV} must be a number of seconds"]) from None
    return seconds if math.isfinite(seconds) and seconds > 0 else CONNECT_SECONDS


class StudyEngine:
    """The grid's conditions on Ray, in the `Engine` shape: steps are summed over conditions."""

    kind = RunKind.STUDY

    def __init__(self, config: StudyConfig, results: dict[int, ConditionResult] | None = None,
                 address: str | None = None, num_cpus: int | None = None) -> None:
        self.config = config
        self.conditions: list[Condition] = config.conditions()
        self.results: dict[int, ConditionResult] = results or {}
        self.address = check_address(address)  # the cluster asked for; None: a local Ray in the driver
        self.ran_on = ""  # the address the driver reports it runs on (what study.json records)
        self.num_cpus = num_cpus
        self.seconds = 0.0
        self._driver: subprocess.Popen[str] | None = None
        self._driver_folder: tempfile.TemporaryDirectory[str] | None = None
        self._lines: queue.Queue[object] = queue.Queue()
        self._last_words: deque[str] = deque(maxlen=20)
        self._connecting_since: float | None = None  # when the driver, started and imported, began to connect
        self._submitted = False  # this engine's conditions went to a driver (until it is halted)
        self.groups_run = self.groups_reused = 0  # conditions submitted, and conditions done before, in this session
        self.wants_save = False

    @classmethod
    def load(cls, run_dir: Path) -> StudyEngine:
        values = read_json(run_dir / STUDY_FILE)
        if not isinstance(values, dict) or not isinstance(values.get("results"), dict):
            raise DamagedFile(f"{STUDY_FILE} is damaged: it holds no results")
        num_cpus = values.get("num_cpus")
        engine = cls(StudyConfig.from_dict(values.get("config")),
                     num_cpus=num_cpus if isinstance(num_cpus, int) and not isinstance(num_cpus, bool)
                     and 0 < num_cpus <= 1024 else None)
        engine.ran_on = str(values.get("address", ""))
        for key, result in values["results"].items():
            if (condition := whole_number(str(key))) is None or condition >= len(engine.conditions):
                raise DamagedFile(f"{STUDY_FILE} names condition {key!r}, which this study does not have")
            engine.results[condition] = ConditionResult.from_dict(result)
        engine.seconds = float(values.get("seconds", 0.0))
        return engine

    @property
    def size(self) -> int:
        """The models that train in this machine's memory at once, counted in models of the study's base config
        (what admission multiplies a model's estimate by): the largest conditions, one per local worker; none when
        the conditions run on a cluster."""
        if self.address or os.environ.get(ADDRESS_ENV):
            return 0
        workers = self.workers
        base = self.config.base
        per_model = estimate(base, build_task(base)).peak_memory_bytes
        conditions = sorted((estimate(condition.compare.base, build_task(condition.compare.base)).peak_memory_bytes
                        * self.config.models_per_condition for condition in self.conditions), reverse=True)
        return math.ceil(sum(conditions[:workers]) / per_model)

    @property
    def workers(self) -> int:
        """The conditions that train on this machine at once, each in a Ray worker of its own (one per core unless
        `num_cpus` says fewer); one when the conditions run on a cluster."""
        if self.address or os.environ.get(ADDRESS_ENV):
            return 1
        return max(1, min(self.num_cpus or os.cpu_count() or 1, len(self.conditions) - self.conditions_done))

    @property
    def step(self) -> int:
        return sum(result.step for result in self.results.values())

    @property
    def total_steps(self) -> int:
        return len(self.conditions) * self.config.base.steps

    @property
    def conditions_done(self) -> int:
        return sum(result.done for result in self.results.values())

    @property
    def groups_failed(self) -> int:
        return sum(bool(result.failed) for result in self.results.values())

    @property
    def finished(self) -> bool:
        """Every condition done, or failed twice."""
        return all(self.results.get(condition.index, ConditionResult()).ended for condition in self.conditions)

    def advance(self) -> None:
        """Start the driver (first call), then take the lines it sends within POLL_SECONDS."""
        started = time.perf_counter()
        if not self._submitted:
            self._start_driver()
        try:
            line = self._lines.get(timeout=POLL_SECONDS)
        except queue.Empty:
            line = None
        while line is not None:
            self._take(line)
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                line = None
        waited = time.monotonic() - self._connecting_since if self._connecting_since and not self.ran_on else 0.0
        if self._driver is not None and waited > self._connect_deadline():
            self.halt()
            raise RunError(f"could not reach the Ray cluster at {self.address} within {self._connect_deadline():.0f}"
                           f" s ({CONNECT_ENV}); is `ray start --head` running there, with the same RAY_AUTH_TOKEN?")
        if self.finished and self.conditions and not self.conditions_done:
            first = next(result.failed for result in self.results.values() if result.failed)
            raise RunError(f"every condition failed; the first: {first}")
        self.seconds += time.perf_counter() - started

    def _connect_deadline(self) -> float:
        return connect_seconds() if self.address else LOCAL_START_SECONDS

    def _start_driver(self) -> None:
        pending = [condition for condition in self.conditions
                   if not self.results.get(condition.index, ConditionResult()).done]
        self.groups_reused = len(self.conditions) - len(pending)
        self.groups_run = len(pending)
        self._submitted = True
        if not pending:
            return
        for condition in pending:  # trained again from step 0 (a failed condition too: it gets its two attempts again)
            self.results[condition.index] = ConditionResult()
        command = [sys.executable, "-m", "playground.runs.ray_driver"]
        self.address = check_address(self.address or os.environ.get(ADDRESS_ENV))
        command += ["--address", self.address] if self.address else []
        command += ["--num-cpus", str(self.num_cpus)] if self.num_cpus else []
        self.ran_on, self._connecting_since = "", None
        self._lines, self._last_words = queue.Queue(), deque(maxlen=20)  # this driver's own: none of an earlier one
        # an empty folder as its working directory: Ray adds the driver's to its workers' import path, where this
        # checkout would hide a package that did not reach them whole
        self._driver_folder = tempfile.TemporaryDirectory(prefix="study-driver-")
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self._driver = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True,
                                        cwd=self._driver_folder.name, env=os.environ | {"PYTHONPATH": python_path})
        assert self._driver.stdin is not None and self._driver.stdout is not None and self._driver.stderr is not None
        self._driver.stdin.write(json.dumps({"config": self.config.as_dict(), "results": {
            str(k): r.as_dict() for k, r in self.results.items() if r.done}}) + "\n")
        self._driver.stdin.flush()  # stdin stays open: the driver stops when it closes (this process is gone)
        threading.Thread(target=_read, args=(self._driver.stdout, self._lines), name="study-driver-out",
                         daemon=True).start()
        threading.Thread(target=_keep_last_words, args=(self._driver.stderr, self._last_words),
                         name="study-driver-err", daemon=True).start()

    def _take(self, line: object) -> None:
        """One line from the driver: JSON with `connecting`, `address`, or `condition` and `result`; anything else ends
        the study."""
        if line is _ENDED:
            self._driver_ended()
            return
        try:
            message = json.loads(str(line))
            if "connecting" in message:
                self._connecting_since = time.monotonic()
                return
            if "address" in message:
                self.ran_on = str(message["address"])[:300]
                self.wants_save = True
                return
            index = int(message["condition"])
            if not 0 <= index < len(self.conditions):
                raise ValueError(f"condition {index} is not in this study")
            self.results[index] = ConditionResult.from_dict(message["result"])
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            self.halt()
            raise RunError(f"the study's driver sent something that is not a result ({error})") from None
        self.wants_save = True

    def _driver_ended(self) -> None:
        """The driver's output closed: fine when every condition ended; otherwise it failed, with its last words."""
        code = self._driver.wait() if self._driver is not None else 0
        self.halt()
        if self.finished:
            return
        last = self._last_words[-1] if self._last_words else ""
        raise RunError(f"the study's driver process ended (exit {code}) with conditions not done"
                       + (f": {last}" if last else ""))

    def halt(self) -> None:
        """End the driver (it cancels its conditions and stops its Ray), then kill what is left of its process group.
        A later advance() (Resume) starts a new driver for the conditions not done."""
        self._submitted = False
        driver, self._driver = self._driver, None
        if driver is None:
            return
        if driver.poll() is None:
            driver.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                driver.wait(DRIVER_EXIT_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # Ray's local processes live in the driver's session
        driver.wait()
        if driver.stdin is not None:
            driver.stdin.close()
        if self._driver_folder is not None:
            self._driver_folder.cleanup()

    def snapshot(self) -> StudySnapshot:
        summaries = [condition_summary(condition, self.results.get(condition.index)) for condition in self.conditions]
        return StudySnapshot(self.config, summaries,
                             self.conditions_done, len(self.conditions), self.step, self.total_steps, self.seconds,
                             self.groups_run, self.groups_reused, self.groups_failed, self.ran_on)

    def set_live(self, changes: Mapping[str, float]) -> None:
        raise ValueError("a study's settings are fixed while it trains")

    def extend(self, total_steps: int) -> None:
        """Resuming trains the conditions not done to the study's own step budget; the budget itself stays."""

    def models(self) -> list[TrainedModel]:
        return []  # the models live and die in the workers; a study keeps their numbers

    def save(self, run_dir: Path) -> None:
        self.wants_save = False
        write_json(run_dir / STUDY_FILE, {"config": self.config.as_dict(), "address": self.ran_on,
                                          "seconds": self.seconds, "num_cpus": self.num_cpus,
                                          "results": {str(k): r.as_dict() for k, r in self.results.items()}})


def _read(stdout: IO[str], lines: queue.Queue[object]) -> None:
    for line in iter(lambda: stdout.readline(MAX_LINE), ""):
        lines.put(line)
    lines.put(_ENDED)


def _keep_last_words(stderr: IO[str], last_words: deque[str]) -> None:
    """Ray's and the driver's messages: the last few lines say why a driver ended."""
    for line in iter(lambda: stderr.readline(MAX_LINE), ""):
        if line.strip():
            last_words.append(line.strip()[:300])


@dataclass
class StudySnapshot:
    """What the page and the CLI show: every condition's summary (means, CIs, paired tests) and the progress."""

    config: StudyConfig
    summaries: list[dict[str, Any]]
    conditions_done: int
    conditions_total: int
    step: int
    total_steps: int
    seconds: float
    groups_run: int = 0  # conditions trained in this session (the rest were done before it)
    groups_reused: int = 0
    groups_failed: int = 0
    address: str = ""  # where the conditions ran: the Ray cluster's address ("" before the driver connected)

    @property
    def eta_seconds(self) -> float | None:
        """Time left at the pace so far (steps summed over conditions); None before the first report."""
        if self.step == 0 or self.seconds <= 0:
            return None
        return self.seconds * (self.total_steps - self.step) / self.step
