"""The metric names and how validation logits are scored, written once for every trainer.

The one-model `Trainer` and the K-model `StackedTrainer` score validation logits and refuse a non-finite step
here, so a comparison's model k and a single run with the same seed and ratio give the same numbers under the
same names."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import torch
import torch.nn.functional as F

from playground.model.seq2seq import sequence_loss
from playground.model.tokens import EOS_ID, PAD_ID

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
    BEYOND_EXACT = "beyond_exact"


METRIC_COLUMNS = tuple(Metric)
LENGTH_COLUMN = re.compile(r"(val_tf|val_fr)_exact_len_(\d+)")  # exact match at one size, e.g. val_fr_exact_len_9


def length_column(prefix: str, size: int) -> str:
    return f"{prefix}_exact_len_{size}"


def by_length(row: Mapping[str, float], prefix: str = "val_fr") -> dict[int, float]:
    """Exact match by size in a metrics row (teacher-forced with prefix val_tf); empty for rows of older runs."""
    return {int(match[2]): value for name, value in row.items()
            if (match := LENGTH_COLUMN.fullmatch(name)) and match[1] == prefix}


def length_columns(rows: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The columns of exact match by size that the rows hold, by mode and size (metrics.csv's last columns)."""
    sizes = {(match[1], int(match[2])) for row in rows for name in row if (match := LENGTH_COLUMN.fullmatch(name))}
    return tuple(length_column(prefix, size) for prefix, size in sorted(sizes))


EVALUATED = Metric.FR_EXACT  # present in a row exactly when the row holds an evaluation


# validation is scored teacher-forced (gamma = 1) and free-running (greedy), under these prefixes
MODES = {"val_tf": 1.0, "val_fr": 0.0}


class DivergedError(RuntimeError):
    """The loss or its gradients became NaN or infinite; the weights are those of the last finite step."""


@dataclass(frozen=True)
class Evaluation:
    """Validation metrics both ways, and exact match by size (source length, or digits) both ways."""

    metrics: dict[str, float]
    exact_by_length: dict[int, float] = field(default_factory=dict)
    tf_exact_by_length: dict[int, float] = field(default_factory=dict)


def joined(parts: list[torch.Tensor], length: int, dim: int) -> torch.Tensor:
    """Logits of validation parts padded on their own, as one tensor: each part's steps padded to `length` (what
    the padding adds lies on <pad> targets, which nothing scores), the parts one after another along `dim`."""
    return torch.cat([F.pad(part, (0, 0, 0, length - part.shape[dim + 1])) for part in parts], dim=dim)


def scored_target(tgt: torch.Tensor, eos: str) -> torch.Tensor:
    """The target the loss and the scores read: with eos = oracle, <eos> is left out (as <pad>), so the model is
    neither taught nor scored on when to stop, and free-running runs the target's own length."""
    return tgt.masked_fill(tgt == EOS_ID, PAD_ID) if eos == "oracle" else tgt


def check_finite(step: int, numbers: Iterable[tuple[str, float]], who: str = "") -> None:
    """Raise DivergedError naming the first non-finite number (e.g. ("training loss", inf))."""
    for what, number in numbers:
        if not math.isfinite(number):
            raise DivergedError(f"the {what}{who} became {number} at step {step}")


def score(logits: torch.Tensor, tgt: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """Mean non-pad loss, token accuracy, and a per-row exact-match mask."""
    mask = tgt != PAD_ID
    correct = (logits.argmax(-1) == tgt) & mask
    token_acc = correct.sum().item() / mask.sum().item()
    return sequence_loss(logits, tgt).item(), token_acc, exact_match(logits, tgt)


def evaluation(logits_by_mode: dict[str, torch.Tensor], tgt: torch.Tensor, sizes: torch.Tensor,
               trained_largest: int) -> Evaluation:
    """The metrics of validation logits scored teacher-forced and free-running (keys of `MODES`): the headline
    figures over the rows of training sizes (`sizes` of each row at most `trained_largest`), exact match by size
    over every row, and `beyond_exact`, the mean over the sizes above training, when validation has them."""
    metrics: dict[str, float] = {}
    by_size: dict[str, dict[int, float]] = {}
    sizes = sizes.to(tgt.device)
    trained = sizes <= trained_largest
    everything = bool(trained.all())
    for prefix, logits in logits_by_mode.items():
        exact_all = exact_match(logits, tgt)
        loss, token_acc, exact = score(logits, tgt) if everything else score(logits[trained], tgt[trained])
        metrics |= {f"{prefix}_loss": loss, f"{prefix}_ppl": math.exp(min(loss, 50.0)),
                    f"{prefix}_token_acc": token_acc, f"{prefix}_exact": float(exact.float().mean())}
        by_size[prefix] = mean_by_length(exact_all, sizes)
        metrics |= {length_column(prefix, size): value for size, value in by_size[prefix].items()}
    beyond = [value for size, value in by_size["val_fr"].items() if size > trained_largest]
    if beyond:
        metrics[Metric.BEYOND_EXACT] = statistics.fmean(beyond)
    return Evaluation(metrics, by_size["val_fr"], by_size["val_tf"])


def exact_match(logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Per row: is every non-pad token's argmax right."""
    mask = tgt != PAD_ID
    return (((logits.argmax(-1) == tgt) & mask).sum(1) == mask.sum(1))


def mean_by_length(values: torch.Tensor, lengths: torch.Tensor) -> dict[int, float]:
    return {int(n): float(values[lengths == n].float().mean()) for n in lengths.unique().tolist()}


def step_row(step: int, loss: float, ratio: float, lr: float) -> dict[str, float]:
    return {Metric.STEP: step, Metric.TRAIN_LOSS: loss, Metric.GAMMA: ratio, Metric.LR: lr}
