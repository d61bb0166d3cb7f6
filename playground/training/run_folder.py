"""The run folder's vocabulary, in one place: its file names, run kinds and statuses, and reading and writing
its small files (config, metrics, run.json).

Runs, exports and the CLI all read a run folder through this module, so what a folder holds is said once."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import time
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any

from playground.core.config import ConfigError, TrainConfig
from playground.core.files import DamagedFile, FileTooLarge, atomic_write, read_bounded
from playground.core.tasks import MAX_CUSTOM_BYTES, CustomPairs, TaskError
from playground.training.checkpoints import (
    portable,
)
from playground.training.metrics import METRIC_COLUMNS, length_columns


class RunKind(StrEnum):
    TRAIN = "train"
    COMPARE = "compare"
    STUDY = "study"


class RunStatus(StrEnum):
    IDLE = "idle"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"
    DIVERGED = "diverged"
    FAILED = "failed"


FINAL_STATUSES = frozenset({RunStatus.STOPPED, RunStatus.FINISHED, RunStatus.DIVERGED, RunStatus.FAILED})


ACTIVE_STATUSES = frozenset({RunStatus.RUNNING, RunStatus.PAUSED})


RUN_FILE = "run.json"


def read_run_file(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's run.json, or None when it is missing, damaged or not a regular file. A status that says
    the run trains (written by a process that died, or by hand) reads as stopped: it can be resumed and holds no
    slot."""
    try:
        info = read_json(run_dir / RUN_FILE)
    except ValueError:
        return None
    if not isinstance(info, dict) or not {"name", "kind", "status"} <= info.keys():
        return None
    if info["kind"] not in set(RunKind) or info["status"] not in set(RunStatus):
        return None
    if info["status"] not in FINAL_STATUSES:  # no process trains a run it reads from disk: it was stopped
        info["status"] = RunStatus.STOPPED
    return info


COMPARE_FILE = "compare.json"


MODEL_COLUMN = "model"  # a comparison's metrics.csv: which model (arm-major, seed-minor) a row belongs to


STUDY_FILE = "study.json"


CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, CUSTOM_FILE = (
    "config.json", "metrics.csv", "checkpoint.pt", "custom_pairs.json")


MAX_SMALL_FILE_BYTES = 1024**2  # config.json, run.json, compare.json


MAX_METRICS_BYTES = 256 * 1024**2


MAX_RUN_ID = 120  # a folder name: far below the file system's 255 bytes, far above the ids the registry makes


WHOLE_COLUMNS = ("step", "model")  # read back as they were written, so a resumed run's file equals a fresh one's


def create_run_dir(runs_dir: Path, name: str) -> Path:
    """A new, unique folder: time, the run's name, then 64 random bits, so that an id cannot be guessed (in shared
    mode a run's id is what a link to it holds)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:60] or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(runs_dir) / f"{stamp}-{slug}-{secrets.token_hex(8)}"
    path.mkdir(parents=True)
    return path


def run_folder(runs_dir: Path, run_id: str) -> Path:
    """A run's folder by id, or ValueError: an id is a plain folder name (it may come from a URL), never a path,
    and names a real folder inside the runs folder, never a link to one elsewhere (whose files would be read and
    deleted there) nor a file."""
    if (not run_id or len(run_id) > MAX_RUN_ID or not run_id.isprintable() or Path(run_id).name != run_id
            or run_id in (".", "..")):
        shown = run_id if len(run_id) <= MAX_RUN_ID else f"{run_id[:40]}... ({len(run_id):,} characters)"
        raise ValueError(f"{shown!r} is not a run id (a folder name of at most {MAX_RUN_ID} characters)")
    path = Path(runs_dir) / run_id
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ValueError(f"run {run_id} is not a real folder inside the runs folder (a link or a file is never "
                         "opened)")
    return path


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, json.dumps(value, indent=2).encode())


def read_json(path: Path, limit: int = MAX_SMALL_FILE_BYTES) -> Any:
    """A small JSON file; ValueError names the file when it is missing, too large or not JSON."""
    try:
        return json.loads(read_bounded(path, limit, path.name).decode("utf-8"))
    except FileTooLarge as error:
        raise DamagedFile(str(error)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedFile(f"cannot read {path.name}: {getattr(error, 'strerror', None) or error}") from None


def write_config(run_dir: Path, config: TrainConfig, custom: CustomPairs | None = None) -> None:
    write_json(run_dir / CONFIG_FILE, config.as_dict())
    if custom is not None:
        atomic_write(run_dir / CUSTOM_FILE, custom.to_json())


def read_config(run_dir: Path) -> TrainConfig:
    """The run's validated config; a missing or unreadable file is a ConfigError like a bad value."""
    try:
        values = read_json(Path(run_dir) / CONFIG_FILE)
    except ValueError as error:
        raise ConfigError([str(error)]) from None
    if not isinstance(values, dict):
        raise ConfigError([f"{CONFIG_FILE} must hold a JSON object of settings"])
    return TrainConfig.from_dict(portable(values))


def runs_folder() -> Path:
    """Where runs live unless a command names a folder: $PLAYGROUND_RUNS_DIR, else ./runs; the app and the CLI
    read it here, so both list and write the same runs."""
    return Path(os.environ.get("PLAYGROUND_RUNS_DIR", "runs"))


def read_custom(run_dir: Path, config: TrainConfig) -> CustomPairs | None:
    """A custom run's pairs, kept in its folder; None for a generated task."""
    if config.task != "custom":
        return None
    try:
        return CustomPairs.from_json(read_bounded(Path(run_dir) / CUSTOM_FILE, 4 * MAX_CUSTOM_BYTES, CUSTOM_FILE))
    except (OSError, FileTooLarge) as error:
        raise TaskError(f"cannot read the run's custom pairs ({CUSTOM_FILE}): {error}") from None


def metrics_csv(rows: Iterable[dict[str, Any]], columns: tuple[str, ...] = ()) -> str:
    """One row per logged step, blank where not evaluated; `columns` lead, exact match by size follows (by default
    all the metrics)."""
    rows = list(rows)
    columns = (*(columns or METRIC_COLUMNS), *length_columns(rows))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_metrics(run_dir: Path, rows: Iterable[dict[str, Any]], columns: tuple[str, ...] = ()) -> None:
    atomic_write(run_dir / METRICS_FILE, metrics_csv(rows, columns).encode())


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The rows of metrics.csv as numbers; a damaged file is a DamagedFile naming it."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    try:
        text = read_bounded(path, MAX_METRICS_BYTES, METRICS_FILE).decode("utf-8")
        return [{key: int(value) if key in WHOLE_COLUMNS else float(value) for key, value in row.items()
                 if value not in ("", None)} for row in csv.DictReader(io.StringIO(text))]
    except (OSError, FileTooLarge, UnicodeDecodeError, ValueError, TypeError, AttributeError) as error:
        raise DamagedFile(f"{METRICS_FILE} is damaged: {error}") from None
