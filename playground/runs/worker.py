"""A run's worker process: it builds the run's engine (from its plan, or from its folder), trains, saves, and tells
the process that started it what happened.

The server (the app, or the CLI) starts one worker per run with the standard library's forkserver, which has torch
and the library imported already, so a start costs a fork. The server keeps configs and what a worker publishes:
snapshots that carry only the rows not sent before, and the run's end. It steers the worker over a control
connection (pause, resume, step, stop, live settings, the run's name, save now). The worker holds the run folder's
lock while it trains (one writer per folder), caps its own address space from the run's estimate, and saves every
few seconds, so a worker that dies leaves a stopped run that resumes exactly. Nothing here imports the app: a Ray
actor can call `work` just as well."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing import spawn
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import filelock
import torch

from playground.core import interrupt
from playground.core.config import TrainConfig
from playground.experiments.comparison import CompareConfig
from playground.runs.protocol import Engine, RunError, RunPlan
from playground.training.metrics import DivergedError
from playground.training.run_folder import FINAL_STATUSES, RUN_FILE, RunKind, RunStatus, write_json

SAVE_EVERY_SECONDS = 5.0
PUBLISH_EVERY_SECONDS = 0.1  # the page polls every 0.25 s or more; the first step is published at once
LOCK_FILE = "train.lock"
MEMORY_HEADROOM = 2.0  # times the run's estimate, on top of the address space the worker starts with
MEMORY_SLACK_BYTES = 512 * 1024**2  # allocator arenas, a checkpoint's bytes while it is written
START_METHOD_ENV = "PLAYGROUND_WORKER_START"  # forkserver (default); fork lets a test's patches reach the worker
PRELOAD = ["torch", "torch._dynamo", "playground.runs.worker", "playground.runs.train_engine",
           "playground.runs.compare_engine"]
ELSEWHERE = "this run is training in another process (another app server or a command line): stop it there first"


@dataclass(frozen=True)
class RunOrder:
    """Everything a worker needs, picklable: it starts from a fresh fork with the server's environment."""

    run_dir: Path
    run_file: dict[str, Any]  # id, name, kind, owner, control: what run.json says besides the progress
    plan: RunPlan | None  # None: load the run from its folder
    total_steps: int  # train up to here (more than the saved run had: Resume, Train on)
    paused: bool = False  # start paused with one step to take (a page's Step from idle)
    memory_bytes: float = 0.0  # the run's estimated peak; 0: no cap
    environment: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    """What changed since the last publication: the snapshot with only new rows (`rows`: one list per model) and
    `heads`, a row per model that goes before every row sent (a training run scores step 0 one step late)."""

    snapshot: Any
    rows: list[list[dict[str, float]]]
    heads: list[dict[str, float] | None]
    step: int
    total_steps: int


@dataclass(frozen=True)
class Ended:
    status: RunStatus
    message: str
    step: int
    total_steps: int


@dataclass(frozen=True)
class Saved:
    """The answer to a "save" order: '' or what went wrong."""

    problem: str


def _keep_the_main_module(main_path: str) -> None:
    """A forked worker keeps the forkserver's `__main__`. multiprocessing would run the starting process's main
    script again in each child, and under Streamlit that is the page script (app.py): it must never run here."""


spawn._fixup_main_from_path = _keep_the_main_module  # this module is imported by the forkserver before any fork


def run_lock(run_dir: Path) -> filelock.BaseFileLock:
    """The lock its one writer holds while a run trains (an OS lock: released when that process ends)."""
    return filelock.FileLock(run_dir / LOCK_FILE, timeout=0)


def trained_elsewhere(run_dir: Path) -> bool:
    """Whether a process holds the run's lock now (in the app: a worker this process did not start)."""
    lock = run_lock(run_dir)
    try:
        lock.acquire()
    except filelock.Timeout:
        return True
    except OSError:  # a folder that cannot hold the lock file (read-only, gone) is not being trained
        return False
    lock.release()
    return False


def start_method() -> str:
    return os.environ.get(START_METHOD_ENV, "forkserver")


def context() -> multiprocessing.context.BaseContext:
    """The start method's context; the forkserver imports torch and the library once, before its first fork."""
    ctx = multiprocessing.get_context(start_method())
    if isinstance(ctx, multiprocessing.context.ForkServerContext):
        ctx.set_forkserver_preload(PRELOAD)
    return ctx


def warm_up() -> None:
    """Start the forkserver now (a server's first page), so the first Start does not wait for torch's import."""
    if start_method() == "forkserver":
        context()
        from multiprocessing import forkserver

        threading.Thread(target=forkserver.ensure_running, name="forkserver-start", daemon=True).start()


def build_engine(plan: RunPlan) -> Engine[Any]:
    """A new run's engine, in the worker (a study's module is imported only for a study)."""
    config = plan.config
    if isinstance(config, TrainConfig):
        from playground.runs.train_engine import TrainingEngine

        return TrainingEngine.create(config, plan.custom)
    if isinstance(config, CompareConfig):
        from playground.runs.compare_engine import CompareEngine

        return CompareEngine(config, plan.custom)
    from playground.runs.study_engine import StudyEngine

    return StudyEngine(config, address=plan.address, num_cpus=plan.workers)


def load_engine(kind: RunKind, run_dir: Path) -> Engine[Any]:
    """A saved run's engine, with everything it needs to resume exactly."""
    if kind == RunKind.TRAIN:
        from playground.runs.train_engine import TrainingEngine

        return TrainingEngine.load(run_dir)
    if kind == RunKind.COMPARE:
        from playground.runs.compare_engine import CompareEngine

        return CompareEngine.load(run_dir)
    from playground.runs.study_engine import StudyEngine

    return StudyEngine.load(run_dir)


class Controls:
    """What the server asked for, as the training loop reads it between steps; a thread of its own listens."""

    def __init__(self, paused: bool, name: str) -> None:
        self.condition = threading.Condition()
        self.paused, self.pending_steps = paused, int(paused)
        self.stop_requested = threading.Event()  # also reaches into a step in progress (`interrupt`)
        self.live: dict[str, float] = {}
        self.name = name
        self.save_requested = self.rename_requested = False

    def listen(self, control: Connection) -> None:
        """Until "stop", or until the server is gone (its end of the connection closed): then the run stops too."""
        while not self.stop_requested.is_set():
            try:
                order, *values = control.recv()
            except (EOFError, OSError):
                order, values = "stop", []
            with self.condition:
                if order == "stop":
                    self.stop_requested.set()
                elif order == "pause":
                    self.paused = True
                elif order == "resume":
                    self.paused = False
                elif order == "step":
                    self.paused, self.pending_steps = True, self.pending_steps + 1
                elif order == "live":
                    self.live.update(values[0])
                elif order == "name":
                    self.name, self.rename_requested = str(values[0]), True
                elif order == "save":
                    self.save_requested = True
                self.condition.notify_all()

    def next_action(self) -> str:
        """"step", "save", "rename" or "stop", waiting while paused."""
        with self.condition:
            while (self.paused and not self.pending_steps and not self.stop_requested.is_set()
                   and not self.save_requested and not self.rename_requested):
                self.condition.wait(timeout=1.0)
            if self.stop_requested.is_set():
                return "stop"
            if self.rename_requested:
                self.rename_requested = False
                return "rename"
            if self.save_requested:
                self.save_requested = False
                return "save"
            if self.paused:
                self.pending_steps -= 1
            return "step"

    def take_live(self) -> dict[str, float]:
        with self.condition:
            live, self.live = self.live, {}
            return live


class RowFeed:
    """Sends each row once: a publication carries the rows added since the one before."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.first: list[object | None] = []

    def split(self, kind: RunKind, snapshot: Any) -> Published:
        if kind == RunKind.STUDY:
            return Published(snapshot, [], [], snapshot.step, snapshot.total_steps)
        per_model: list[list[dict[str, float]]] = [snapshot.rows] if kind == RunKind.TRAIN else snapshot.rows
        if not self.sent:
            self.sent, self.first = [0] * len(per_model), [None] * len(per_model)
        heads: list[dict[str, float] | None] = []
        new: list[list[dict[str, float]]] = []
        for k, rows in enumerate(per_model):
            head = None
            if self.sent[k] and rows[0] is not self.first[k]:  # a row went in before the ones already sent
                head, self.sent[k] = rows[0], self.sent[k] + 1
            heads.append(head)
            new.append(rows[self.sent[k]:])
            self.sent[k], self.first[k] = len(rows), rows[0] if rows else None
        empty = [] if kind == RunKind.TRAIN else [[] for _ in per_model]
        return Published(dataclasses.replace(snapshot, rows=empty), new, heads, snapshot.step,
                         snapshot.total_steps)


def cap_memory(estimate_bytes: float) -> None:
    """Bound this process's address space: what it has now (torch and the library, mapped) plus the run's estimate
    with headroom. Past it an allocation fails (MemoryError, or the run fails) instead of the machine swapping."""
    if estimate_bytes <= 0:
        return
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    limit = pages * os.sysconf("SC_PAGE_SIZE") + int(MEMORY_HEADROOM * estimate_bytes) + MEMORY_SLACK_BYTES
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def uses_cuda(order: RunOrder) -> bool:
    """CUDA reserves far more address space than it uses: an address-space cap would refuse its start."""
    config = order.plan.base if order.plan is not None else None
    return torch.cuda.is_available() and (config is None or config.device != "cpu")


def work(order: RunOrder, control: Connection, news: Connection) -> None:
    """The worker's entry point: train the run of `order`, publishing to `news` and obeying `control`."""
    os.environ.clear()
    os.environ.update(order.environment)
    torch.set_num_threads(int(os.environ.get("PLAYGROUND_TORCH_THREADS", "1")))
    lock = run_lock(order.run_dir)
    try:
        lock.acquire()
    except filelock.Timeout:
        news.send(Ended(RunStatus.STOPPED, ELSEWHERE, -1, -1))
        return
    try:
        if order.run_file["kind"] != RunKind.STUDY and not uses_cuda(order):
            cap_memory(order.memory_bytes)  # a study's driver is a process of its own (Ray): not capped here
        controls = Controls(order.paused, str(order.run_file["name"]))
        signal.signal(signal.SIGTERM, lambda signum, frame: controls.stop_requested.set())  # saves, then ends
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the server, which stops the run
        threading.Thread(target=controls.listen, args=(control,), name="controls", daemon=True).start()
        Training(order, controls, news).run()
    finally:
        lock.release()


class Training:
    """The loop: advance until finished, stopped, diverged or failed; save every few seconds and at the end."""

    def __init__(self, order: RunOrder, controls: Controls, news: Connection) -> None:
        self.order, self.controls, self.news = order, controls, news
        self.engine: Engine[Any] | None = None
        self.feed = RowFeed()
        self.status, self.message = RunStatus.STOPPED, ""

    def run(self) -> None:
        order = self.order
        try:
            kind = RunKind(order.run_file["kind"])
            self.engine = build_engine(order.plan) if order.plan is not None else load_engine(kind, order.run_dir)
            if kind != RunKind.STUDY and order.total_steps != self.engine.total_steps:
                self.engine.extend(order.total_steps)
        except Exception as error:  # a damaged folder, a config that no longer builds: the run fails, said once
            self.news.send(Ended(RunStatus.FAILED, _one_line(error), -1, -1))
            return
        final, message = self.loop(self.engine)
        self.finish(self.engine, final, message)

    def loop(self, engine: Engine[Any]) -> tuple[RunStatus, str]:
        last_save = last_publish = time.monotonic()
        unpublished = False
        while True:
            if unpublished and self.controls.paused:  # what a paused page shows is the step it paused at
                self.publish(engine)
                unpublished, last_publish = False, time.monotonic()
            action = self.controls.next_action()
            if action == "stop":
                return RunStatus.STOPPED, ""
            if action in ("save", "rename"):  # the server waits for the answer
                self.news.send(Saved(self.save(engine) if action == "save" else self.write_run_file(engine)))
                continue
            if live := self.controls.take_live():
                try:
                    engine.set_live(live)
                except ValueError as error:  # the server checked it; a run's own limits may still refuse it
                    print(f"live change refused: {error}", file=sys.stderr)
            try:
                with interrupt.requests(self.controls.stop_requested):
                    engine.advance()
            except interrupt.Interrupted:  # the step in progress was undone
                return RunStatus.STOPPED, ""
            except DivergedError as error:
                return RunStatus.DIVERGED, str(error)
            except RunError as error:  # the engine's own account of why it cannot go on (a study's driver ended)
                return RunStatus.FAILED, str(error)
            except Exception as error:  # keep what the run had; tell the page in one line
                traceback.print_exc(file=sys.stderr)
                return RunStatus.FAILED, f"{type(error).__name__}: {error}"
            if engine.finished:
                return RunStatus.FINISHED, ""
            now = time.monotonic()
            unpublished = True
            if engine.step <= 1 or now - last_publish >= PUBLISH_EVERY_SECONDS:  # the first loss point at once
                self.publish(engine)
                unpublished, last_publish = False, now
            if engine.wants_save or now - last_save > SAVE_EVERY_SECONDS:
                if problem := self.save(engine):
                    return RunStatus.FAILED, problem
                last_save = time.monotonic()

    def publish(self, engine: Engine[Any]) -> None:
        self.news.send(self.feed.split(RunKind(self.order.run_file["kind"]), engine.snapshot()))

    def save(self, engine: Engine[Any]) -> str:
        """Config, metrics, checkpoint, then run.json; '' or what went wrong."""
        try:
            save_run(engine, self.order.run_dir)
        except OSError as error:
            return f"could not save the run: {error.strerror or error}"
        return self.write_run_file(engine)

    def write_run_file(self, engine: Engine[Any]) -> str:
        status = self.status if self.status in FINAL_STATUSES else RunStatus.STOPPED  # a crash leaves it stopped
        try:
            write_json(self.order.run_dir / RUN_FILE, self.order.run_file | {
                "name": self.controls.name, "status": status, "message": self.message, "step": engine.step,
                "total_steps": engine.total_steps})
        except OSError as error:
            return f"could not save the run: {error.strerror or error}"
        return ""

    def finish(self, engine: Engine[Any], status: RunStatus, message: str) -> None:
        """The final status; a save that fails marks the run failed (what it had stays in the server's view)."""
        self.status, self.message = status, message
        engine.halt()
        if (problem := self.save(engine)) and problem != message:
            self.status = RunStatus.FAILED
            self.message = problem if not message else f"{message}; {problem}"
        self.publish(engine)
        self.news.send(Ended(self.status, self.message, engine.step, engine.total_steps))


def save_run(engine: Engine[Any], run_dir: Path) -> None:
    engine.save(run_dir)


def describe(kind: RunKind, run_dir: Path, environment: Mapping[str, str], news: Connection) -> None:
    """A short-lived worker's entry point: load a saved run and send its snapshot (or why it cannot be opened), so
    the server shows a run without building its model."""
    os.environ.clear()
    os.environ.update(environment)
    torch.set_num_threads(int(os.environ.get("PLAYGROUND_TORCH_THREADS", "1")))
    try:
        engine = load_engine(kind, run_dir)
        news.send(engine.snapshot())
    except ValueError as error:  # a damaged file: the page says which, in one line
        news.send(ValueError(_one_line(error)))
    except Exception as error:
        news.send(RunError(_one_line(error)))


def _one_line(error: Exception) -> str:
    return next(iter(str(error).strip().splitlines()), type(error).__name__)
