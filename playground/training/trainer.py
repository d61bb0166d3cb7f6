"""One training step and the evaluation that shows the exposure-bias gap.

A `Trainer` owns the model, optimizer, data stream and coin generator of one
run. It knows nothing of threads or pages: `runs.py` drives it in a thread,
the CLI drives it in a loop.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from playground.core.config import TrainConfig
from playground.core.devices import resolve_device
from playground.core.model import Seq2Seq, sequence_loss
from playground.core.tasks import PAD_ID, Batch, Task, TaskData, TaskError, make_task, parse_custom_csv

EVAL_CHUNK = 1024
_SEEDED_INIT = threading.Lock()  # model init draws from torch's global RNG


class DivergedError(RuntimeError):
    """The loss or its gradients became NaN or infinite; the weights are those of the last finite step."""


def build_task(config: TrainConfig) -> Task:
    pairs, separator = None, ""
    if config.task == "custom":
        try:
            data = Path(config.custom_csv).read_bytes()
        except OSError as error:
            raise TaskError(f"cannot read the CSV file {config.custom_csv!r}: {error.strerror}") from None
        pairs = parse_custom_csv(data, config.custom_tokenization)
        separator = " " if config.custom_tokenization == "space" else ""
    return make_task(config.task, config.min_len, config.max_len, config.alphabet_size,
                     config.max_digits, pairs, separator)


def build_model(config: TrainConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    """The model with the weights `config.seed` gives, whatever other threads draw."""
    with _SEEDED_INIT, torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return Seq2Seq(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size,
                       emb_dim=config.emb_dim, hidden_dim=config.hidden_dim,
                       num_layers=config.num_layers, dropout=config.dropout)


def build_optimizer(config: TrainConfig, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    optimizer = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer(parameters, lr=config.lr, weight_decay=config.weight_decay)


@dataclass(frozen=True)
class StepResult:
    step: int
    loss: float
    teacher_forcing_ratio: float
    lr: float


@dataclass(frozen=True)
class Evaluation:
    """Validation metrics, teacher-forced (tf, gamma = 1) and free-running (fr, greedy)."""

    metrics: dict[str, float]
    exact_by_length: dict[int, float] = field(default_factory=dict)  # free-running, by target length


class Trainer:
    def __init__(self, config: TrainConfig, task: Task | None = None) -> None:
        self.config = config.validate()
        self.device = resolve_device(config.device)
        self.task = task or build_task(config)
        self.data = TaskData(self.task, config.seed, config.val_size)
        self.model = build_model(config, len(self.task.src_vocab), len(self.task.tgt_vocab)).to(self.device)
        self.optimizer = build_optimizer(config, list(self.model.parameters()))
        self.coins = torch.Generator().manual_seed(config.seed + 1)
        self.batches = self.data.train_batches(config.batch_size)
        self.validation = self._to_device(self.data.validation)
        self.step = 0

    def _to_device(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return batch.src.to(self.device, non_blocking=True), batch.tgt.to(self.device, non_blocking=True)

    def teacher_forcing_ratio(self) -> float:
        return self.config.forcing_schedule().ratio(self.step)

    def set_live(self, lr: float | None = None, teacher_forcing_ratio: float | None = None) -> None:
        """Change the learning rate or the ratio (a schedule's start) from the next step on."""
        changes = {k: v for k, v in (("lr", lr), ("teacher_forcing_ratio", teacher_forcing_ratio)) if v is not None}
        self.config = self.config.replace(**changes)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr

    def draw_coins(self, batch: Batch) -> torch.Tensor:
        """Uniform draws behind this step's coins; drawn every step, so the stream never shifts."""
        shape = (batch.tgt.shape[1],) if self.config.coin == "step" else tuple(batch.tgt.shape)
        return torch.rand(shape, generator=self.coins)

    def train_step(self) -> StepResult:
        batch = next(self.batches)
        src, tgt = self._to_device(batch)
        ratio = self.teacher_forcing_ratio()
        self.model.train()
        logits = self.model(src, tgt, ratio, self.config.coin, self.draw_coins(batch))
        loss = sequence_loss(logits, tgt)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
        # One host sync for both checks; a finite loss can still have overflowing gradients.
        value, grad_norm = torch.stack([loss.detach(), norm.to(loss.device)]).tolist()
        for what, number in (("training loss", value), ("gradient norm", grad_norm)):
            if not math.isfinite(number):
                self.optimizer.zero_grad(set_to_none=True)
                raise DivergedError(f"the {what} became {number} at step {self.step + 1}")
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(self.model.parameters(), self.config.grad_clip, norm)
        self.optimizer.step()
        self.step += 1
        return StepResult(self.step, value, ratio, self.config.lr)

    def logged_step(self) -> tuple[dict[str, float], Evaluation | None]:
        """One step and its metrics row; evaluates every `eval_every` steps and at the last step."""
        result = self.train_step()
        row = {"step": result.step, "train_loss": result.loss,
               "teacher_forcing_ratio": result.teacher_forcing_ratio, "lr": result.lr}
        if result.step % self.config.eval_every and result.step != self.config.steps:
            return row, None
        evaluation = self.evaluate()
        return row | evaluation.metrics, evaluation

    @torch.inference_mode()
    def evaluate(self) -> Evaluation:
        self.model.eval()
        src, tgt = self.validation
        metrics: dict[str, float] = {}
        exact_by_length: dict[int, float] = {}
        for prefix, ratio in (("val_tf", 1.0), ("val_fr", 0.0)):
            logits = torch.cat([self.model(s, t, ratio) for s, t in
                                zip(src.split(EVAL_CHUNK), tgt.split(EVAL_CHUNK), strict=True)])
            loss, token_acc, exact = score(logits, tgt)
            metrics |= {f"{prefix}_loss": loss, f"{prefix}_ppl": math.exp(min(loss, 50.0)),
                        f"{prefix}_token_acc": token_acc, f"{prefix}_exact": float(exact.float().mean())}
            if prefix == "val_fr":
                exact_by_length = _mean_by_length(exact, (tgt != PAD_ID).sum(1) - 1)
        self.model.train()
        return Evaluation(metrics, exact_by_length)

    @torch.inference_mode()
    def sample_predictions(self, count: int = 8) -> list[dict[str, str | bool]]:
        """Greedy predictions for the first `count` validation examples."""
        self.model.eval()
        src = self.validation[0][:count]
        predicted = self.model.greedy_decode(src, self.task.max_tgt_len + 1).cpu().tolist()
        self.model.train()
        source_vocab, target_vocab = self.task.src_vocab, self.task.tgt_vocab
        rows: list[dict[str, str | bool]] = []
        for (source, target), ids in zip(self.data.val_pairs[:count], predicted, strict=True):
            prediction = target_vocab.decode(ids)
            rows.append({"source": source_vocab.join(source), "target": target_vocab.join(target),
                         "prediction": target_vocab.join(prediction), "correct": prediction == target})
        return rows


def score(logits: torch.Tensor, tgt: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """Mean non-pad loss, token accuracy, and a per-row exact-match mask."""
    mask = tgt != PAD_ID
    correct = (logits.argmax(-1) == tgt) & mask
    exact = correct.sum(1) == mask.sum(1)
    token_acc = correct.sum().item() / mask.sum().item()
    return sequence_loss(logits, tgt).item(), token_acc, exact


def _mean_by_length(values: torch.Tensor, lengths: torch.Tensor) -> dict[int, float]:
    return {int(n): float(values[lengths == n].float().mean()) for n in lengths.unique().tolist()}
