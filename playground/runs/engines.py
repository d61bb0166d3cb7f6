"""The two engines: one model (`TrainingEngine`) and K models side by side (`CompareEngine`), and their loaders.

Each keeps the history its page draws, saves itself into a run folder and loads back from one, weights,
metrics and training state included, so a run reopens, resumes and deletes after a restart whatever its kind.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.analysis.compare import CompareConfig, CompareSnapshot
from playground.analysis.states import StateCapture, capture_states
from playground.core.config import TrainConfig, label
from playground.core.files import DamagedFile
from playground.core.model import Seq2Seq
from playground.core.tasks import CustomPairs
from playground.runs.engine import LiveChange, RunKind
from playground.training.batched import BatchedTrainer
from playground.training.rules import Metric
from playground.training.storage import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    CheckpointError,
    LoadedCheckpoint,
    load_checkpoint,
    portable,
    read_config,
    read_custom,
    read_json,
    read_metrics,
    save_checkpoint,
    write_json,
    write_metrics,
)
from playground.training.trainer import TrainedModel, Trainer, build_model

PREDICTION_ROWS = 8
COMPARE_FILE = "compare.json"
MODEL_COLUMN = "model"  # a comparison's metrics.csv: which model (arm-major, seed-minor) a row belongs to


@dataclass
class TrainingSnapshot:
    rows: list[dict[str, float]]
    changes: list[LiveChange]
    predictions: list[dict[str, Any]]
    exact_by_length: dict[int, float]
    preview: StateCapture | None
    step: int
    total_steps: int
    seconds: float
    config: TrainConfig

    @property
    def steps_per_second(self) -> float:
        return self.step / self.seconds if self.seconds > 0 else 0.0


def _checkpoint(run_dir: Path) -> LoadedCheckpoint:
    try:
        return load_checkpoint(run_dir / CHECKPOINT_FILE)
    except CheckpointError as error:
        raise CheckpointError(f"{CHECKPOINT_FILE}: {error}") from None


@contextlib.contextmanager
def _mismatch_is_damage() -> Iterator[None]:
    """A checkpoint that does not fit the folder's config (torch's many-line RuntimeError, a missing optimizer
    state) is a damaged run folder: one line, bad input."""
    try:
        yield
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        raise CheckpointError(f"{CONFIG_FILE} does not match {CHECKPOINT_FILE}: {' '.join(lines[:2])}") from None


def _rows_up_to(rows: list[dict[str, float]], step: int) -> list[dict[str, float]]:
    """Rows a kill may have saved after the checkpoint's step are dropped: a resumed run logs them again."""
    return [row for row in rows if row.get(Metric.STEP, 0) <= step]


class _Progress:
    """How far an engine is, from its trainer (one model or K): the same for every kind."""

    wants_save = False  # a training run's news is its steps: saved every few seconds
    trainer: Trainer | BatchedTrainer

    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def total_steps(self) -> int:
        return self.trainer.config.steps

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    def halt(self) -> None:
        """Nothing runs outside this process."""


class TrainingEngine(_Progress):
    """One model: a `Trainer` plus the history the Train page draws."""

    kind = RunKind.TRAIN
    size = 1

    def __init__(self, trainer: Trainer, rows: list[dict[str, float]] | None = None) -> None:
        self.trainer = trainer
        self.rows: list[dict[str, float]] = rows or []
        self.changes: list[LiveChange] = []
        self.predictions: list[dict[str, Any]] = []
        self.exact_by_length: dict[int, float] = {}
        self.preview: StateCapture | None = None
        self.seconds = self.rows[-1].get(Metric.SECONDS, 0.0) if self.rows else 0.0
        self.start_row: tuple[dict[str, float], Seq2Seq] | None = None  # step 0's row, not yet evaluated

    @classmethod
    def create(cls, config: TrainConfig, custom: CustomPairs | None = None) -> TrainingEngine:
        return cls(Trainer(config, custom))

    @classmethod
    def load(cls, run_dir: Path) -> TrainingEngine:
        """A run from its folder: weights, optimizer and random-number states, metrics up to the checkpoint."""
        config = read_config(run_dir)
        checkpoint = _checkpoint(run_dir)
        trainer = Trainer(config, read_custom(run_dir, config))
        with _mismatch_is_damage():
            trainer.restore(checkpoint.model.state_dict(), checkpoint.step, checkpoint.resume)
        engine = cls(trainer, _rows_up_to(read_metrics(run_dir), checkpoint.step))
        engine.exact_by_length = trainer.evaluate().exact_by_length
        engine.refresh_views()
        return engine

    def advance(self) -> None:
        """One step and its row. Step 0's evaluation (where validation starts: near chance) scores a copy of the
        initial weights one call later, so the chart's first point waits for one step, not for a validation pass
        (issue #12); the row keeps its place and meaning."""
        started = time.perf_counter()
        if self.start_row is not None:
            self._evaluate_start(*self.start_row)
        elif not self.rows:
            trainer = self.trainer
            self.start_row = ({Metric.STEP: 0, Metric.SECONDS: 0.0, Metric.GAMMA: trainer.teacher_forcing_ratio(),
                               Metric.LR: trainer.config.lr}, copy.deepcopy(trainer.model))
        row, evaluation = self.trainer.logged_step()
        if self.finished and self.start_row is not None:
            self._evaluate_start(*self.start_row)
        self.seconds += time.perf_counter() - started
        self.rows.append(row | {Metric.SECONDS: self.seconds})
        if evaluation:
            self.exact_by_length = evaluation.exact_by_length
            self.refresh_views()

    def _evaluate_start(self, row: dict[str, float], model: Seq2Seq) -> None:
        self.rows.insert(0, row | self.trainer.evaluate(model).metrics)
        self.start_row = None

    def refresh_views(self) -> None:
        """Predictions and the hidden-state preview of the first validation example (free-running)."""
        self.predictions = self.trainer.sample_predictions(PREDICTION_ROWS)
        task, (source, _) = self.trainer.task, self.trainer.data.val_pairs[0]
        self.preview = capture_states(self.trainer.model, task.src_vocab, task.tgt_vocab, source,
                                      max_len=task.decode_limit(len(source)))

    def set_live(self, changes: Mapping[str, float]) -> None:
        before = self.trainer.config
        self.trainer.set_live(**changes)
        self.changes += [LiveChange(self.step, f"{label(name)} {value:g}") for name, value in changes.items()
                         if getattr(before, name) != value]

    def extend(self, total_steps: int) -> None:
        self.trainer.config = self.trainer.config.replace(steps=total_steps)

    def models(self) -> list[TrainedModel]:
        return [self.trainer.trained_model()]

    def snapshot(self) -> TrainingSnapshot:
        return TrainingSnapshot(list(self.rows), list(self.changes), list(self.predictions),
                                dict(self.exact_by_length), self.preview, self.step, self.total_steps,
                                self.seconds, self.trainer.config)

    def save(self, run_dir: Path) -> None:
        write_json(run_dir / CONFIG_FILE, self.trainer.config.as_dict())
        write_metrics(run_dir, self.rows)
        trainer = self.trainer
        save_checkpoint(run_dir / CHECKPOINT_FILE, [("", trainer.config, trainer.model.state_dict())], trainer.task,
                        trainer.step, trainer.custom, trainer.resume_state())


class CompareEngine(_Progress):
    """All arms x seeds in one `BatchedTrainer`, with the history the Compare page draws."""

    kind = RunKind.COMPARE

    @property
    def size(self) -> int:
        return self.trainer.size

    def __init__(self, config: CompareConfig, custom: CustomPairs | None = None, log_every: int = 5,
                 workers: int | None = None) -> None:
        self.config = config
        self.trainer = BatchedTrainer(config.configs(), custom, workers=workers)
        self.custom = custom
        self.labels = [arm.label for arm in config.arms()]
        self.rows: list[list[dict[str, float]]] = [[] for _ in range(self.trainer.size)]
        self.exact_by_length: list[dict[int, float]] = [{} for _ in range(self.trainer.size)]
        self.seconds = 0.0
        self.log_every = log_every  # training loss is logged every few steps: the page re-sends every curve

    @classmethod
    def load(cls, run_dir: Path) -> CompareEngine:
        values = read_json(run_dir / COMPARE_FILE)
        if not isinstance(values, dict) or not isinstance(values.get("base"), dict):
            raise DamagedFile(f"{COMPARE_FILE} is damaged: it holds no base config")
        base = TrainConfig.from_dict(portable(values["base"]))
        config = CompareConfig.from_dict(values, base)
        checkpoint = _checkpoint(run_dir)
        engine = cls(config, read_custom(run_dir, base))
        with _mismatch_is_damage():
            engine.trainer.restore([saved.model.state_dict() for saved in checkpoint.models], checkpoint.step,
                                   checkpoint.resume)
        for row in _rows_up_to(read_metrics(run_dir), checkpoint.step):
            model = int(row.pop(MODEL_COLUMN, -1))
            if not 0 <= model < engine.trainer.size:
                raise DamagedFile(f"metrics.csv names model {model}, which this comparison does not have")
            engine.rows[model].append(row)
        engine.seconds = max((rows[-1].get(Metric.SECONDS, 0.0) for rows in engine.rows if rows), default=0.0)
        engine.exact_by_length = [evaluation.exact_by_length for evaluation in engine.trainer.evaluate()]
        return engine

    def advance(self) -> None:
        started = time.perf_counter()
        if not self.rows[0]:
            self._evaluate({Metric.STEP: 0})
        result = self.trainer.train_step()
        self.seconds += time.perf_counter() - started
        step, base = result.step, self.config.base
        due = step % base.eval_every == 0 or step == base.steps
        if due or step % self.log_every == 0 or step == 1:
            extra = [{Metric.TRAIN_LOSS: loss, Metric.GAMMA: ratio}
                     for loss, ratio in zip(result.losses, result.ratios, strict=True)]
            if due:
                self._evaluate({Metric.STEP: step}, extra)
            else:
                for rows, values in zip(self.rows, extra, strict=True):
                    rows.append({Metric.STEP: step, Metric.SECONDS: self.seconds} | values)

    def _evaluate(self, row: dict[str, float], extra: list[dict[str, float]] | None = None) -> None:
        started = time.perf_counter()
        evaluations = self.trainer.evaluate()
        self.seconds += time.perf_counter() - started
        for k, evaluation in enumerate(evaluations):
            self.rows[k].append(row | {Metric.SECONDS: self.seconds} | (extra[k] if extra else {})
                                | evaluation.metrics)
            self.exact_by_length[k] = evaluation.exact_by_length

    def set_live(self, changes: Mapping[str, float]) -> None:
        raise ValueError("a comparison's settings are fixed while it trains")

    def extend(self, total_steps: int) -> None:
        self.config = self.config.with_base(self.config.base.replace(steps=total_steps))
        self.trainer.config = self.config.base

    def model_label(self, k: int) -> str:
        return self.config.model_labels()[k]

    def models(self) -> list[TrainedModel]:
        trainer = self.trainer
        built = []
        for k, config in enumerate(trainer.configs):
            model = build_model(config, len(trainer.task.src_vocab), len(trainer.task.tgt_vocab))
            model.load_state_dict(trainer.model_state(k))
            built.append(TrainedModel(self.model_label(k), model.to(trainer.device).eval(), config, trainer.task,
                                      trainer.data.val_pairs, trainer.step))
        return built

    def snapshot(self) -> CompareSnapshot:
        return CompareSnapshot(list(self.labels), self.config.seeds, [list(rows) for rows in self.rows],
                               [dict(d) for d in self.exact_by_length], self.step, self.total_steps, self.seconds,
                               self.config)

    def save(self, run_dir: Path) -> None:
        write_json(run_dir / CONFIG_FILE, self.config.base.as_dict())
        write_json(run_dir / COMPARE_FILE, self.config.as_dict())
        write_metrics(run_dir, ({MODEL_COLUMN: k} | row for k, rows in enumerate(self.rows) for row in rows),
                      (MODEL_COLUMN, *METRIC_COLUMNS_OF_COMPARE))
        trainer = self.trainer
        save_checkpoint(run_dir / CHECKPOINT_FILE,
                        [(self.model_label(k), config, trainer.model_state(k)) for k, config in
                         enumerate(trainer.configs)], trainer.task, trainer.step, self.custom, trainer.resume_state())

    def run_to_end(self) -> CompareSnapshot:
        """Headless without a run folder (tests, benchmarks): train every step."""
        while not self.finished:
            self.advance()
        return self.snapshot()


METRIC_COLUMNS_OF_COMPARE = tuple(metric for metric in Metric if metric != Metric.LR)
