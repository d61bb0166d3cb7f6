"""One model's training: the step, the evaluation that shows the exposure-bias gap, and its builders.

A `Trainer` owns the model, optimizer, data stream and coin generator of one run. It knows nothing of threads
or pages: `runs/` drives it in a thread for the app and the CLI alike. The rules it shares with the K-model
trainer (coins, finiteness, scoring, metric names) live in `metrics.py` and `resume.py`.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any

import torch

from playground.core.config import TrainConfig
from playground.core.devices import resolve_device
from playground.core.tasks import PAD_ID, TASKS, Batch, Beyond, CustomPairs, Pair, Task, TaskData, TaskError, make_task
from playground.model.seq2seq import Seq2Seq, sequence_loss
from playground.training.metrics import (
    EVAL_CHUNK,
    MODES,
    DivergedError,
    Evaluation,
    check_finite,
    evaluation,
    joined,
    scored_target,
    step_row,
)
from playground.training.resume import draw_coins, restore_state, resume_state, undone_if_interrupted

_SEEDED_INIT = threading.Lock()  # model init draws from torch's global RNG


def warm_imports() -> None:
    """Import torch._dynamo in a background thread: torch imports it on the first optimizer a process builds,
    seconds that would otherwise fall between Start and the first loss point. Idempotent."""
    threading.Thread(target=importlib.import_module, args=("torch._dynamo",), daemon=True,
                     name="warm-imports").start()


def build_task(config: TrainConfig, custom: CustomPairs | None = None) -> Task:
    """The config's task; a custom task takes its pairs as data, and they must be the ones the config names."""
    if config.task == "custom":
        if custom is None:
            raise TaskError("the custom task needs its source,target pairs: none were given")
        if custom.fingerprint != config.custom_data or custom.tokenization != config.custom_tokenization:
            raise TaskError("the custom pairs are not the ones this run was trained on")
    return make_task(config.task, config.min_len, config.max_len, config.alphabet_size, config.max_digits,
                     custom if config.task == "custom" else None)


def build_beyond(config: TrainConfig) -> Beyond | None:
    """The task that draws validation's examples beyond the training sizes (None when the run tests none)."""
    sizes = config.size_range()
    if not sizes.beyond:
        return None
    if TASKS[config.task].uses_lengths:
        task = make_task(config.task, sizes.trained + 1, sizes.tested, config.alphabet_size)
    else:
        task = make_task(config.task, max_digits=sizes.tested)
    return Beyond(task, sizes.beyond, sizes.trained - sizes.smallest + 1)


def build_model(config: TrainConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    """The model with the weights `config.seed` gives, whatever other threads draw."""
    with _SEEDED_INIT, torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return Seq2Seq(**model_arguments(config, src_vocab_size, tgt_vocab_size))


def model_arguments(config: TrainConfig, src_vocab_size: int, tgt_vocab_size: int) -> dict[str, Any]:
    """`Seq2Seq`'s keyword arguments for `config`: the one place a setting becomes part of the model."""
    return {"src_vocab_size": src_vocab_size, "tgt_vocab_size": tgt_vocab_size, "emb_dim": config.emb_dim,
            "hidden_dim": config.hidden_dim, "num_layers": config.num_layers, "dropout": config.dropout,
            "cell": config.cell, "attention": config.attention, "reverse_source": config.reverse_source == "on",
            "architecture": config.architecture, "heads": config.heads, "positions": config.positions}


def meta_model(config: TrainConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    """The model of `config` built on the meta device: its shapes and parameter counts, no memory, no draws."""
    with torch.device("meta"):
        return Seq2Seq(**model_arguments(config, src_vocab_size, tgt_vocab_size))


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
class TrainedModel:
    """What the inspection views need of one trained model, whichever engine trained it."""

    label: str
    model: Seq2Seq
    config: TrainConfig
    task: Task
    val_pairs: list[Pair]
    step: int


class Trainer:
    def __init__(self, config: TrainConfig, custom: CustomPairs | None = None) -> None:
        self.config = config.validate()
        self.custom = custom
        self.device = resolve_device(config.device)
        self.task = build_task(config, custom)
        self.data = TaskData(self.task, config.seed, config.val_size, build_beyond(config))
        self.model = build_model(config, len(self.task.src_vocab), len(self.task.tgt_vocab)).to(self.device)
        self.optimizer = build_optimizer(config, list(self.model.parameters()))
        self.coins = torch.Generator().manual_seed(config.seed + 1)
        self.batches = self.data.train_batches(config.batch_size)
        self.validation = self._to_device(self.data.validation)
        self.validation_parts = [self._to_device(part) for part in self.data.validation_parts]
        self.step = 0

    def _to_device(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return batch.src.to(self.device, non_blocking=True), batch.tgt.to(self.device, non_blocking=True)

    def teacher_forcing_ratio(self) -> float:
        return self.config.forcing_schedule().ratio(self.step)

    def set_live(self, **changes: float) -> None:
        """Change settings that may move while training (config.LIVE_SETTINGS) from the next step on."""
        self.config = self.config.replace(**changes)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr

    def train_step(self) -> StepResult:
        ratio = self.teacher_forcing_ratio()
        with undone_if_interrupted(self.optimizer, self.coins, self.data):
            src, tgt = self._to_device(next(self.batches))
            self.model.train()
            logits = self.model(src, tgt, ratio, self.config.coin,
                                draw_coins(self.coins, self.config.coin, tgt.shape))
            loss = sequence_loss(logits, scored_target(tgt, self.config.eos))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
        # One host sync for both checks; a finite loss can still have overflowing gradients.
        value, grad_norm = torch.stack([loss.detach(), norm.to(loss.device)]).tolist()
        try:
            check_finite(self.step + 1, (("training loss", value), ("gradient norm", grad_norm)))
        except DivergedError:
            self.optimizer.zero_grad(set_to_none=True)
            raise
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(self.model.parameters(), self.config.grad_clip, norm)
        self.optimizer.step()
        self.step += 1
        return StepResult(self.step, value, ratio, self.config.lr)

    def logged_step(self) -> tuple[dict[str, float], Evaluation | None]:
        """One step and its metrics row; evaluates every `eval_every` steps and at the last step."""
        result = self.train_step()
        row = step_row(result.step, result.loss, result.teacher_forcing_ratio, result.lr)
        if result.step % self.config.eval_every and result.step != self.config.steps:
            return row, None
        scored = self.evaluate()
        return row | scored.metrics, scored

    @torch.inference_mode()
    def evaluate(self, model: Seq2Seq | None = None) -> Evaluation:
        """The validation metrics of this run's model, or of `model` (e.g. a copy of earlier weights)."""
        model = model or self.model
        model.eval()
        tgt = self.validation[1]
        logits = {prefix: joined([torch.cat([model(s, t, ratio) for s, t in zip(src.split(EVAL_CHUNK),
                                                                               part.split(EVAL_CHUNK), strict=True)])
                                  for src, part in self.validation_parts], tgt.shape[1], 0)
                  for prefix, ratio in MODES.items()}
        model.train()
        return evaluation(logits, scored_target(tgt, self.config.eos), self.data.sizes, self.data.trained_largest)

    def resume_state(self) -> dict[str, Any]:
        return resume_state(self.optimizer, self.coins, self.data)

    def restore(self, state_dict: dict[str, torch.Tensor], step: int, resume: dict[str, Any] | None) -> None:
        """Weights and step from a checkpoint; with its resume state the next steps are those never interrupted."""
        self.model.load_state_dict(state_dict)
        self.step = step
        if resume is not None:
            restore_state(resume, self.optimizer, self.coins, self.data)

    def trained_model(self, label: str = "") -> TrainedModel:
        return TrainedModel(label, self.model, self.config, self.task, self.data.val_pairs, self.step)

    @torch.inference_mode()
    def sample_predictions(self, count: int = 8) -> list[dict[str, str | bool]]:
        """Greedy predictions for the first `count` validation examples."""
        self.model.eval()
        src, tgt = (tensor[:count] for tensor in self.validation)
        if self.config.eos == "oracle":  # as long as the target: free-running, its own argmax fed back
            unscored = scored_target(tgt, "oracle") == PAD_ID
            predicted = self.model(src, tgt, 0.0).argmax(-1).masked_fill(unscored, PAD_ID).cpu().tolist()
        else:
            predicted = self.model.greedy_decode(src, self.task.decode_limit()).cpu().tolist()
        self.model.train()
        source_vocab, target_vocab = self.task.src_vocab, self.task.tgt_vocab
        rows: list[dict[str, str | bool]] = []
        for (source, target), ids in zip(self.data.val_pairs[:count], predicted, strict=True):
            prediction = target_vocab.decode(ids)
            rows.append({"source": source_vocab.join(source), "target": target_vocab.join(target),
                         "prediction": target_vocab.join(prediction), "correct": prediction == target})
        return rows

