"""A run's metrics as TensorBoard event files: one folder per model, its metrics as scalars, its settings as
hyperparameters (the HParams view), so `tensorboard --logdir DIR` lays runs, arms and seeds side by side.

`tensorboard` is a development requirement (requirements-dev.txt), imported only here and only when an export
or a logging run asks for it: the app's set-up stays torch, Streamlit, plotly, pandas, scipy and Ray.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from playground.export.experiment import Experiment, read_experiment
from playground.training.metrics import LENGTH_COLUMN, METRIC_COLUMNS, Metric, length_columns
from playground.training.run_folder import MODEL_COLUMN, read_metrics

NOT_SCALARS = (Metric.STEP,)
SCALARS = tuple(name for name in METRIC_COLUMNS if name not in NOT_SCALARS)
FINAL_FIGURES = tuple(name for name in SCALARS if name.startswith("val_"))  # what the HParams table shows


class TensorBoardMissing(RuntimeError):
    """The `tensorboard` package is not installed (it is a development requirement)."""


def scalar_tag(name: str) -> str:
    """A metric's TensorBoard tag: exact match by size grouped in one section per mode (val_fr_exact_by_length/9)."""
    match = LENGTH_COLUMN.fullmatch(name)
    return f"{match[1]}_exact_by_length/{match[2]}" if match else name


def folder_name(text: str) -> str:
    """A folder name TensorBoard shows as is: 'γ = 0.5' -> 'gamma=0.5'."""
    return re.sub(r"[^\w.=+-]+", "_", re.sub(r"\s+", "", text.replace("γ", "gamma"))).strip("_") or "run"


def _free_folder(path: Path) -> Path:
    """`path`, or path-2, path-3, ... where a run of the same name has logged before (TensorBoard would mix them)."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


class TensorBoardLog:
    """Event files for every model of an experiment under log_dir/<run>/<kk-label>; rows may come in any order
    and more than once (a live run is polled), each step is written once per model."""

    def __init__(self, log_dir: Path, experiment: Experiment) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams
        except ImportError:
            raise TensorBoardMissing("TensorBoard export needs the tensorboard package: "
                                     "pip install -r requirements-dev.txt") from None
        root = _free_folder(Path(log_dir) / folder_name(experiment.name))
        self.folders = [root / f"{k:02d}-{folder_name(label)}" for k, label in enumerate(experiment.labels)]
        self._writers = [SummaryWriter(log_dir=str(folder)) for folder in self.folders]
        self._written: list[set[int]] = [set() for _ in self.folders]
        for writer, label, config in zip(self._writers, experiment.labels, experiment.configs, strict=True):
            settings: dict[str, Any] = {"run": experiment.name, "model": label, **config.as_dict()}
            for summary in hparams(settings, dict.fromkeys(FINAL_FIGURES, 0.0)):
                writer.file_writer.add_summary(summary)

    def write(self, model: int, rows: Iterable[Mapping[str, float]]) -> None:
        """Every metric of the rows not yet written, as scalars at the row's step."""
        writer, written = self._writers[model], self._written[model]
        for row in rows:
            step = int(row[Metric.STEP])
            if step in written:
                continue
            written.add(step)
            for name in (*SCALARS, *length_columns([row])):
                value = row.get(name)
                if value is not None and math.isfinite(value):
                    writer.add_scalar(scalar_tag(name), value, step)
        writer.flush()

    def write_models(self, rows_by_model: list[list[dict[str, float]]]) -> None:
        for model, rows in enumerate(rows_by_model):
            self.write(model, rows)

    def close(self) -> None:
        for writer in self._writers:
            writer.close()


def rows_by_model(run_dir: Path, models: int) -> list[list[dict[str, float]]]:
    """A run's metrics.csv split by model (a comparison's rows name theirs; a training run's are model 0)."""
    by_model: list[list[dict[str, float]]] = [[] for _ in range(models)]
    for row in read_metrics(run_dir):
        model = int(row.pop(MODEL_COLUMN, 0))
        if not 0 <= model < models:
            raise ValueError(f"metrics.csv names model {model}, which this run does not have")
        by_model[model].append(row)
    return by_model


def export_tensorboard(run_dir: Path, log_dir: Path) -> list[Path]:
    """A finished (or stopped) training run or comparison as event files; the folders written, one per model."""
    experiment = read_experiment(run_dir)
    log = TensorBoardLog(log_dir, experiment)
    try:
        log.write_models(rows_by_model(run_dir, len(experiment.configs)))
    finally:
        log.close()
    return log.folders

