"""The metric names and how validation logits are scored, written once for every trainer.

The one-model `Trainer` and the K-model `StackedTrainer` score validation logits and refuse a non-finite step
here, so a comparison's model k and a single run with the same seed and ratio give the same numbers under the
same names."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import torch

from playground.model.seq2seq import sequence_loss
from playground.model.tokens import PAD_ID

EVAL_CHUNK = 1024  # validation rows per forward pass


class Metric(StrEnum):
    """Column names of a metrics row (metrics.csv, snapshots, charts); a StrEnum, so each is its own string."""

    STEP = "step"
    SECONDS = "seconds"
    TRAIN_LOSS = "train_loss"
    GAMMA = "teacher_forcing_ratio"
    LR = "lr"
    TF_LOSS = "val_tf_loss"
    TF_PPL = "val_tf_ppl"
    TF_TOKEN_ACC = "val_tf_token_acc"
    TF_EXACT = "val_tf_exact"
    FR_LOSS = "val_fr_loss"
    FR_PPL = "val_fr_ppl"
    FR_TOKEN_ACC = "val_fr_token_acc"
    FR_EXACT = "val_fr_exact"


METRIC_COLUMNS = tuple(Metric)


EVALUATED = Metric.FR_EXACT  # present in a row exactly when the row holds an evaluation


# validation is scored teacher-forced (gamma = 1) and free-running (greedy), under these prefixes
MODES = {"val_tf": 1.0, "val_fr": 0.0}


class DivergedError(RuntimeError):
    """The loss or its gradients became NaN or infinite; the weights are those of the last finite step."""


@dataclass(frozen=True)
class Evaluation:
    """Validation metrics both ways, and free-running exact match by target length."""

    metrics: dict[str, float]
    exact_by_length: dict[int, float] = field(default_factory=dict)


def check_finite(step: int, numbers: Iterable[tuple[str, float]], who: str = "") -> None:
    """Raise DivergedError naming the first non-finite number (e.g. ("training loss", inf))."""
    for what, number in numbers:
        if not math.isfinite(number):
            raise DivergedError(f"the {what}{who} became {number} at step {step}")


def score(logits: torch.Tensor, tgt: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """Mean non-pad loss, token accuracy, and a per-row exact-match mask."""
    mask = tgt != PAD_ID
    correct = (logits.argmax(-1) == tgt) & mask
    exact = correct.sum(1) == mask.sum(1)
    token_acc = correct.sum().item() / mask.sum().item()
    return sequence_loss(logits, tgt).item(), token_acc, exact


def evaluation(logits_by_mode: dict[str, torch.Tensor], tgt: torch.Tensor) -> Evaluation:
    """The metrics of validation logits scored teacher-forced and free-running (keys of `MODES`)."""
    metrics: dict[str, float] = {}
    exact_by_length: dict[int, float] = {}
    for prefix, logits in logits_by_mode.items():
        loss, token_acc, exact = score(logits, tgt)
        metrics |= {f"{prefix}_loss": loss, f"{prefix}_ppl": math.exp(min(loss, 50.0)),
                    f"{prefix}_token_acc": token_acc, f"{prefix}_exact": float(exact.float().mean())}
        if prefix == "val_fr":
            exact_by_length = mean_by_length(exact, (tgt != PAD_ID).sum(1) - 1)
    return Evaluation(metrics, exact_by_length)


def mean_by_length(values: torch.Tensor, lengths: torch.Tensor) -> dict[int, float]:
    return {int(n): float(values[lengths == n].float().mean()) for n in lengths.unique().tolist()}


def step_row(step: int, loss: float, ratio: float, lr: float) -> dict[str, float]:
    return {Metric.STEP: step, Metric.TRAIN_LOSS: loss, Metric.GAMMA: ratio, Metric.LR: lr}
