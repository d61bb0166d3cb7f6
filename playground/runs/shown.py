"""What the server shows of a run that no worker of its own trains: a new run's plan as its page draws it, and a
saved run read back by a short-lived worker (the server builds no model to read it), kept for the few runs shown
last; its models from the checkpoint for the inspection pages; whether another process trains it."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from playground.experiments.comparison import CompareSnapshot
from playground.runs.progress import saved_models
from playground.runs.protocol import RunError, RunPlan
from playground.runs.train_engine import TrainingSnapshot
from playground.runs.worker import LOCK_FILE, context, trained_elsewhere
from playground.runs.worker import describe as describe_in_worker
from playground.training.run_folder import (
    CHECKPOINT_FILE,
    COMPARE_FILE,
    CONFIG_FILE,
    CUSTOM_FILE,
    METRICS_FILE,
    RUN_FILE,
    STUDY_FILE,
    RunKind,
)
from playground.training.trainer import TrainedModel

SHOWN_RUNS = 8  # ended runs whose snapshot the server keeps (the ones pages showed last: a class page shows more)
SHOWN_MODELS = 2  # runs whose saved models the inspection pages keep loaded
DESCRIBE_SECONDS = 300.0  # a saved run's load and evaluation, on a busy machine


def plan_snapshot(plan: RunPlan) -> Any:
    """A run that has not trained yet, as its page draws it."""
    config = plan.config
    if plan.kind == RunKind.TRAIN:
        return TrainingSnapshot([], [], [], {}, None, 0, plan.base.steps, 0.0, plan.base)
    if plan.kind == RunKind.COMPARE:
        models = len(config.configs())
        return CompareSnapshot([arm.label for arm in config.arms()], config.seeds, [[] for _ in range(models)],
                               [{} for _ in range(models)], 0, plan.base.steps, 0.0, config)
    from playground.runs.study_engine import StudyEngine

    return StudyEngine(config, address=plan.address, num_cpus=plan.workers).snapshot()


_SHOWN: OrderedDict[Path, tuple[tuple[int, ...], Any]] = OrderedDict()
_SHOWN_LOCK = threading.Lock()


def _stamp(run_dir: Path) -> tuple[int, ...]:
    """When the files a snapshot is read from were last written: a newer one means a newer snapshot."""
    stamps = []
    for name in (RUN_FILE, CONFIG_FILE, COMPARE_FILE, CUSTOM_FILE, CHECKPOINT_FILE, METRICS_FILE, STUDY_FILE):
        try:
            stamps.append((run_dir / name).stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return tuple(stamps)


def remember(run_dir: Path, snapshot: Any) -> None:
    with _SHOWN_LOCK:
        _SHOWN[run_dir] = (_stamp(run_dir), snapshot)
        _SHOWN.move_to_end(run_dir)
        while len(_SHOWN) > SHOWN_RUNS:
            _SHOWN.popitem(last=False)


def shown_snapshot(kind: RunKind, run_dir: Path) -> Any:
    """A saved run's snapshot: kept for the few runs shown last, else read back by a short-lived worker."""
    with _SHOWN_LOCK:
        kept = _SHOWN.get(run_dir)
        if kept is not None and kept[0] == _stamp(run_dir):
            _SHOWN.move_to_end(run_dir)
            return kept[1]
    snapshot = describe(kind, run_dir)
    remember(run_dir, snapshot)
    return snapshot


def describe(kind: RunKind, run_dir: Path) -> Any:
    """Load a saved run in a worker of its own and take back its snapshot; ValueError or RunError if it cannot be
    opened (a damaged file)."""
    ctx = context()
    news, news_end = ctx.Pipe(duplex=False)
    process = ctx.Process(target=describe_in_worker, args=(kind, run_dir.resolve(), dict(os.environ), news_end),
                          name=f"describe-{run_dir.name}", daemon=True)
    process.start()
    news_end.close()
    try:
        answer = news.recv() if news.poll(DESCRIBE_SECONDS) else RunError(f"run {run_dir.name} took too long to open")
    except EOFError:
        answer = RunError(f"run {run_dir.name} could not be opened: its reader ended (exit {process.exitcode})")
    finally:
        news.close()
        process.join(10)
    if isinstance(answer, Exception):
        raise answer
    return answer


_MODELS: OrderedDict[Path, tuple[int, list[TrainedModel]]] = OrderedDict()
_MODELS_LOCK = threading.Lock()


def loaded_models(run_dir: Path) -> list[TrainedModel]:
    """A run's models from its checkpoint, kept for the runs inspected last and loaded again when it changes."""
    stamp = (run_dir / CHECKPOINT_FILE).stat().st_mtime_ns
    with _MODELS_LOCK:
        kept = _MODELS.get(run_dir)
        if kept is not None and kept[0] == stamp:
            _MODELS.move_to_end(run_dir)
            return kept[1]
    models = saved_models(run_dir)
    with _MODELS_LOCK:
        _MODELS[run_dir] = (stamp, models)
        while len(_MODELS) > SHOWN_MODELS:
            _MODELS.popitem(last=False)
    return models


def forget(run_dir: Path) -> None:
    """A deleted run: nothing of it stays."""
    with _SHOWN_LOCK:
        _SHOWN.pop(run_dir, None)
    with _MODELS_LOCK:
        _MODELS.pop(run_dir, None)


def locked_elsewhere(run_dir: Path) -> bool:
    """A folder some worker has trained has a lock file; only then can another process be training it."""
    return (run_dir / LOCK_FILE).exists() and trained_elsewhere(run_dir)
