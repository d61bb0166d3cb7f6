"""The engine of one model: trains it, keeps the history its page draws, saves into a run folder and loads
back from one, weights, metrics and training state included."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.core.config import TrainConfig, label
from playground.core.tasks import CustomPairs
from playground.inspection.states import StateCapture, capture_states
from playground.model.seq2seq import Seq2Seq
from playground.runs.progress import Progress, mismatch_is_damage, rows_up_to, run_checkpoint
from playground.runs.protocol import LiveChange
from playground.training.checkpoints import (
    save_checkpoint,
)
from playground.training.metrics import Metric
from playground.training.run_folder import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    RunKind,
    read_config,
    read_custom,
    read_metrics,
    write_json,
    write_metrics,
)
from playground.training.trainer import TrainedModel, Trainer

PREDICTION_ROWS = 8


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


class TrainingEngine(Progress):
    """One model: a `Trainer` plus the history the Train page draws."""

    kind = RunKind.TRAIN
    size = 1
    workers = 1

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
        checkpoint = run_checkpoint(run_dir)
        trainer = Trainer(config, read_custom(run_dir, config))
        with mismatch_is_damage():
            trainer.restore(checkpoint.model.state_dict(), checkpoint.step, checkpoint.resume)
        engine = cls(trainer, rows_up_to(read_metrics(run_dir), checkpoint.step))
        engine.exact_by_length = trainer.evaluate().exact_by_length
        engine.refresh_views()
        return engine

    def advance(self) -> None:
        """One step and its row. Step 0's evaluation (where validation starts: near chance) scores a copy of the
        initial weights one call later, so the chart's first point waits for one step, not for a validation pass;
        the row keeps its place and meaning."""
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
