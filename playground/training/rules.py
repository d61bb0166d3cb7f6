"""The rules every trainer follows, written once: coins, the finiteness check, scoring and the metric names.

The one-model `Trainer` and the K-model `BatchedTrainer` both draw their coins, refuse a non-finite step, and
score validation logits here, so a comparison's model k and a single run with the same seed and ratio give the
same numbers under the same names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import torch

from playground.core import interrupt
from playground.core.model import sequence_loss
from playground.core.tasks import PAD_ID, TaskData

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


def draw_coins(generator: torch.Generator, coin: str, tgt_shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform draws behind one step's coins: one per decoder step, or one per target token.

    Drawn every step whatever the ratio, so the stream never shifts and models that share a generator share coins.
    """
    shape = (tgt_shape[1],) if coin == "step" else tuple(tgt_shape)
    return torch.rand(shape, generator=generator)


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


def resume_state(optimizer: torch.optim.Optimizer, coins: torch.Generator, data: TaskData) -> dict[str, Any]:
    """Everything besides the weights that the next step depends on (dropout's draws excepted: they come from
    torch's process-wide generator, which concurrent runs share)."""
    return {"optimizer": optimizer.state_dict(), "coins": coins.get_state(), "data": data.stream_state()}


@contextmanager
def undone_if_interrupted(optimizer: torch.optim.Optimizer, coins: torch.Generator, data: TaskData) -> Iterator[None]:
    """The work of a step before it touches the weights: a stop may interrupt it (`interrupt`), and then its draws
    (batch, coins, dropout) are taken back and its gradients dropped, as if it had never started."""
    batches, coin_draws, dropout = data.stream_state(), coins.get_state(), torch.get_rng_state()
    try:
        with interrupt.undoable():
            yield
    except interrupt.Interrupted:
        optimizer.zero_grad(set_to_none=True)
        data.restore_stream(batches)
        coins.set_state(coin_draws)
        torch.set_rng_state(dropout)
        raise


def restore_state(state: dict[str, Any], optimizer: torch.optim.Optimizer, coins: torch.Generator,
                  data: TaskData) -> None:
    """The inverse of `resume_state`; ValueError when the state does not fit these models."""
    try:
        optimizer.load_state_dict(state["optimizer"])
        coins.set_state(state["coins"])
        data.restore_stream(state["data"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"the saved training state does not fit this run: {error}") from None
