"""What the training and comparison engines share: progress over steps, the checkpoint of a run folder, and
the rows of a history up to a saved step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from playground.core.tasks import TaskData
from playground.training.checkpoints import (
    CheckpointError,
    LoadedCheckpoint,
    load_checkpoint,
)
from playground.training.metrics import Metric
from playground.training.run_folder import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
)
from playground.training.stacked import StackedTrainer
from playground.training.trainer import TrainedModel, Trainer, build_task


def run_checkpoint(run_dir: Path) -> LoadedCheckpoint:
    try:
        return load_checkpoint(run_dir / CHECKPOINT_FILE)
    except CheckpointError as error:
        raise CheckpointError(f"{CHECKPOINT_FILE}: {error}") from None


def saved_models(run_dir: Path) -> list[TrainedModel]:
    """A run's models as its checkpoint holds them, in eval mode, with what the inspection views decode them by."""
    checkpoint = run_checkpoint(run_dir)
    first = checkpoint.config  # a comparison's models share the first one's task and data, as they trained
    task = build_task(first, checkpoint.custom)
    val_pairs = TaskData(task, first.seed, first.val_size).val_pairs
    return [TrainedModel(saved.label, saved.model.eval(), saved.config, task, val_pairs, checkpoint.step)
            for saved in checkpoint.models]


@contextlib.contextmanager
def mismatch_is_damage() -> Iterator[None]:
    """A checkpoint that does not fit the folder's config (torch's many-line RuntimeError, a missing optimizer
    state) is a damaged run folder: one line, bad input."""
    try:
        yield
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        raise CheckpointError(f"{CONFIG_FILE} does not match {CHECKPOINT_FILE}: {' '.join(lines[:2])}") from None


def rows_up_to(rows: list[dict[str, float]], step: int) -> list[dict[str, float]]:
    """Rows a kill may have saved after the checkpoint's step are dropped: a resumed run logs them again."""
    return [row for row in rows if row.get(Metric.STEP, 0) <= step]


class Progress:
    """How far an engine is, from its trainer (one model or K): the same for every kind."""

    wants_save = False  # a training run's news is its steps: saved every few seconds
    trainer: Trainer | StackedTrainer

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
