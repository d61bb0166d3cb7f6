"""K models that differ only in their teacher-forcing ratio (or schedule, or seed, or model variant) trained together.

All models read the same batches and the same coin draws (common random numbers: the base config's seed picks
both); model k compares the shared draws with its own ratio, exactly as `Trainer` does for one model. The loss
backpropagated is the sum of the per-model losses, so each slice of a gradient is that model's own; clipping
uses each model's own norm, and Adam/AdamW/SGD act elementwise, so one optimizer over stacked weights equals K
optimizers.

How it executes (never slower than K `Trainer`s one after another) is chosen from the size, K and the device,
and never changes the numbers beyond float rounding (tests/test_batched.py and tests/test_family.py hold every way
equal to single runs and to the equations):
models of one shape (cell, attention, source order) are split into `workers` groups that train in parallel
threads (one torch thread each, on a CPU with cores to spare; torch releases the GIL inside its kernels), and each
group's weights are stacked (G, ...).
A group's forward is `stacked`, a fast path that serves the LSTM without attention only (`stackable`; the
recurrence as bmm over the G models through `fused_lstm.unroll`, one Python loop for all: wins where per-op
overhead dominates, at small hidden sizes) or `each` (the one-model `Seq2Seq` on views of the stacked
weights, model after model: wins where the arithmetic dominates, as oneDNN's fused LSTM is faster per step).
Models of different shapes (arms that differ by `VARIANT_SETTINGS`) train in groups of their own, one per shape.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from playground.core import interrupt
from playground.core.config import FORCING_SETTINGS, MODEL_SHAPE, VARIANT_SETTINGS, ConfigError, TrainConfig
from playground.core.devices import resolve_device
from playground.core.tasks import CustomPairs, TaskData
from playground.model.cells import LayerWeights, lstm_layers
from playground.model.fused_lstm import unroll
from playground.model.seq2seq import Seq2Seq, reversal_index
from playground.model.tokens import PAD_ID, SOS_ID
from playground.training.metrics import (
    EVAL_CHUNK,
    MODES,
    DivergedError,
    Evaluation,
    check_finite,
    evaluation,
    joined,
    scored_target,
)
from playground.training.resume import draw_coins, restore_state, resume_state, undone_if_interrupted
from playground.training.trainer import build_beyond, build_model, build_optimizer, build_task

# the settings in which the K models may differ; everything else, the coin's kind included (one stream of draws
# serves every model), is shared
PER_MODEL = (*(name for name in FORCING_SETTINGS if name != "coin"), "seed", *VARIANT_SETTINGS)
ForwardPath = Literal["stacked", "each"]
STACKED_MAX_HIDDEN = 64  # above it `each` wins (`bench` times both)
MAX_WORKERS = 4  # threads for the groups; the GIL caps what more would give
# below it a step is mostly Python, which holds the GIL: one stacked group of all K beats parallel groups
PARALLEL_MIN_HIDDEN = 64
T = TypeVar("T")


def stackable(config: TrainConfig) -> bool:
    """Whether the stacked forward, written for the specification's LSTM without attention, runs this model (other
    models, the Transformer among them, run `each`)."""
    return config.architecture == "rnn" and config.cell == "lstm" and config.attention == "none"


def choose_path(config: TrainConfig, size: int) -> ForwardPath:
    """The faster forward for a group of `size` models of `config`'s size; `stacked` is written for the LSTM
    without attention only."""
    return "stacked" if stackable(config) and config.hidden_dim <= STACKED_MAX_HIDDEN and size > 1 else "each"


def choose_workers(config: TrainConfig, size: int) -> int:
    """Parallel groups: one per core that torch's own threads leave free, on the CPU; one where dropout draws from
    torch's shared generator (threads would draw in a different order each run), on an accelerator, or where the
    model is so small that the GIL, not the cores, sets the pace."""
    if resolve_device(config.device).type != "cpu" or config.dropout > 0 or config.hidden_dim < PARALLEL_MIN_HIDDEN:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(size, MAX_WORKERS, cores // torch.get_num_threads()))


@dataclass(frozen=True)
class BatchedStep:
    step: int
    losses: list[float]
    ratios: list[float]


def check_compatible(configs: list[TrainConfig]) -> None:
    """The models must share task, model size, optimizer and data; say which setting differs."""
    if not configs:
        raise ConfigError(["no model to train: give at least one ratio"])
    base = configs[0].as_dict()
    problems = sorted({f"{name} differs between the models ({base[name]!r} vs {config.as_dict()[name]!r}); "
                       f"only {', '.join(PER_MODEL)} may differ"
                       for config in configs[1:] for name in base
                       if name not in PER_MODEL and config.as_dict()[name] != base[name]})
    if problems:
        raise ConfigError(problems)


class _Group:
    """Some of the K models (`members`): their weights stacked (G, ...), and the way their forward runs."""

    def __init__(self, members: range, models: list[Seq2Seq], path: ForwardPath, device: torch.device,
                 config: TrainConfig) -> None:
        self.members, self.path, self.config = members, path, config  # config: the members' shape
        self.params = {name: nn.Parameter(torch.stack([models[k].state_dict()[name] for k in members]).to(device))
                       for name in models[members.start].state_dict()}
        self.template = models[members.start].to(device)  # the module `each` runs on its models' weights

    def forward(self, config: TrainConfig, src: torch.Tensor, tgt: torch.Tensor, teacher: torch.Tensor,
                training: bool) -> torch.Tensor:
        """Logits (G, B, L, V); teacher (G, L) or (G, B, L), on the CPU, says where step t reads y_{t-1}."""
        if self.path == "each":
            return self._forward_each(config, src, tgt, teacher, training)
        dropout = config.dropout if training else 0.0
        zeros = torch.zeros(config.num_layers, len(self.members), src.shape[0], config.hidden_dim,
                            device=src.device)
        read = src.gather(1, reversal_index(src)) if config.reverse_source == "on" else src
        _, state = unroll(self.params["encoder.embedding.weight"], self._layers("encoder", config), read,
                          (zeros, zeros), dropout=dropout, pad_id=PAD_ID)
        teacher = teacher.clone()
        teacher[..., 0] = True
        inputs = torch.cat([torch.full_like(tgt[:, :1], SOS_ID), tgt[:, :-1]], dim=1)
        weight, bias = self.params["decoder.fc_out.weight"], self.params["decoder.fc_out.bias"]
        outputs, _ = unroll(self.params["decoder.embedding.weight"], self._layers("decoder", config), inputs, state,
                            teacher if teacher.dim() == 3 else teacher[:, None], (weight, bias), dropout,
                            pad_id=PAD_ID)
        return torch.baddbmm(bias[:, None], outputs.flatten(1, 2), weight.transpose(1, 2)).view(
            *outputs.shape[:3], -1)

    def _forward_each(self, config: TrainConfig, src: torch.Tensor, tgt: torch.Tensor, teacher: torch.Tensor,
                      training: bool) -> torch.Tensor:
        """`Seq2Seq.forward` once per model on views of the stacked weights (unbind: one stack in backward)."""
        views = {name: param.unbind(0) for name, param in self.params.items()}
        self.template.train(training)
        logits = []
        for k in range(len(self.members)):
            forced = teacher[k]  # draws 0 where forced, 1 where not: under ratio 0.5 they give `forced` back
            ratio = 1.0 if bool(forced.all()) else 0.5
            logits.append(functional_call(self.template, {name: view[k] for name, view in views.items()},
                                          (src, tgt, ratio, config.coin, (~forced).float())))
        return torch.stack(logits)

    def _layers(self, side: str, config: TrainConfig) -> list[LayerWeights]:
        return lstm_layers(self.params, f"{side}.lstm.", config.num_layers)


class StackedTrainer:
    """`Trainer` for K models at once: one data stream, one coin stream, groups of stacked weights."""

    def __init__(self, configs: list[TrainConfig], custom: CustomPairs | None = None,
                 path: ForwardPath | None = None, workers: int | None = None) -> None:
        self.configs = [config.validate() for config in configs]
        check_compatible(self.configs)
        self.config = base = self.configs[0]
        self.size = len(configs)
        self.device = resolve_device(base.device)
        self.task = build_task(base, custom)
        self.data = TaskData(self.task, base.seed, base.val_size, build_beyond(base))
        models = [build_model(config, len(self.task.src_vocab), len(self.task.tgt_vocab)) for config in self.configs]
        if path == "stacked" and not all(stackable(config) for config in self.configs):
            raise ValueError("the stacked path runs LSTMs without attention; use `each` for this model")
        self.workers = min(workers or choose_workers(base, self.size), self.size)
        self.groups = [_Group(members, models, path or choose_path(self.configs[members.start], len(members)),
                              self.device, self.configs[members.start])
                       for members in _split(self.configs, self.workers)]
        self.names = list(self.groups[0].params)
        self.optimizer = build_optimizer(base, [param for group in self.groups for param in group.params.values()])
        self.coins = torch.Generator().manual_seed(base.seed + 1)
        self.batches = self.data.train_batches(base.batch_size)
        self.validation = (self.data.validation.src.to(self.device), self.data.validation.tgt.to(self.device))
        self.validation_parts = [(part.src.to(self.device), part.tgt.to(self.device))
                                 for part in self.data.validation_parts]
        self.step = 0
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="k-models") if self.workers > 1 else None

    def _each_group(self, work: Callable[[_Group], T]) -> list[T]:
        """work(group) for every group, in parallel threads when there are several (each listening to a stop as
        this thread does), all ended before the first failure, if any, is raised."""
        if self._pool is None:
            return [work(group) for group in self.groups]
        futures = [self._pool.submit(interrupt.in_this_context(work), group) for group in self.groups]
        wait(futures)
        return [future.result() for future in futures]

    def _locate(self, k: int) -> tuple[_Group, int]:
        for group in self.groups:
            if k in group.members:
                return group, k - group.members.start
        raise IndexError(f"this comparison has no model {k}")

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights as a `Seq2Seq` state_dict."""
        group, index = self._locate(k)
        return {name: param[index].detach().clone() for name, param in group.params.items()}

    @property
    def one_shape(self) -> bool:
        """Whether every model has the same shape, so groups are a split by cores that may differ on resume."""
        return all(group.params.keys() == self.groups[0].params.keys() for group in self.groups)

    def resume_state(self) -> dict[str, Any]:
        """As `resume_state`, its optimizer state written as one group would have it, whatever the groups
        (a run saved on one machine resumes on another with a different number of cores). Models of several shapes
        are grouped by shape alone, the same on every machine: their state is saved as it is."""
        optimizer = self._merged_optimizer() if self.one_shape else self.optimizer.state_dict()
        return resume_state(self.optimizer, self.coins, self.data) | {"optimizer": optimizer}

    def restore(self, states: list[dict[str, torch.Tensor]], step: int, resume: dict[str, Any] | None) -> None:
        """Every model's weights and the shared step from a checkpoint (see `Trainer.restore`)."""
        if len(states) != self.size:
            raise ValueError(f"the checkpoint holds {len(states)} models, this comparison trains {self.size}")
        with torch.no_grad():
            for group in self.groups:
                for name, param in group.params.items():
                    param.copy_(torch.stack([states[k][name] for k in group.members]))
        self.step = step
        if resume is not None:
            restore_state(resume | {"optimizer": self._split_optimizer(resume.get("optimizer"))},
                                self.optimizer, self.coins, self.data)

    def _merged_optimizer(self) -> dict[str, Any]:
        saved = self.optimizer.state_dict()
        count = len(self.names)
        state = {}
        for index in range(count):
            parts = [saved["state"][g * count + index] for g in range(len(self.groups))
                     if g * count + index in saved["state"]]
            if parts:
                state[index] = {key: torch.cat([part[key] for part in parts]) if parts[0][key].dim() else
                                parts[0][key] for key in parts[0]}
        return {"state": state, "param_groups": [saved["param_groups"][0] | {"params": list(range(count))}]}

    def _split_optimizer(self, merged: Any) -> Any:
        """The inverse of `_merged_optimizer` for these groups; what does not fit is left to fail in loading."""
        if not isinstance(merged, dict) or not isinstance(merged.get("state"), dict) or len(self.groups) == 1 \
                or not self.one_shape:
            return merged
        count, sizes = len(self.names), [len(group.members) for group in self.groups]
        state = {}
        for index, entry in merged["state"].items():
            for g, chunk in enumerate(zip(*[value.split(sizes) if value.dim() else [value.clone() for _ in sizes]
                                            for value in entry.values()], strict=True)):
                state[g * count + int(index)] = dict(zip(entry, chunk, strict=True))
        groups = [group | {"params": list(range(count * len(sizes)))} for group in merged.get("param_groups", [])]
        return {"state": state, "param_groups": groups}

    def ratios(self) -> list[float]:
        return [config.forcing_schedule().ratio(self.step) for config in self.configs]

    def train_step(self) -> BatchedStep:
        """One optimizer step of all K models on one batch (what `bench` times)."""
        ratios = self.ratios()
        with undone_if_interrupted(self.optimizer, self.coins, self.data):
            batch = next(self.batches)
            src, tgt = batch.src.to(self.device), batch.tgt.to(self.device)
            draws = draw_coins(self.coins, self.config.coin, tgt.shape)
            teacher = draws[None] < torch.tensor(ratios).view(-1, *[1] * draws.dim())
            self.optimizer.zero_grad(set_to_none=True)

            def backward(group: _Group) -> tuple[torch.Tensor, torch.Tensor]:
                members = group.members
                losses = model_losses(group.forward(group.config, src, tgt, teacher[members.start:members.stop],
                                                    True), scored_target(tgt, group.config.eos))
                losses.sum().backward()
                squares = torch.stack([p.grad.pow(2).flatten(1).sum(1) for p in group.params.values()])
                return losses.detach(), squares.sum(0).sqrt()

            results = self._each_group(backward)
        norms = torch.cat([norm for _, norm in results])
        values = torch.cat([torch.cat([losses for losses, _ in results]), norms]).tolist()
        try:
            for k, (loss, norm) in enumerate(zip(values[:self.size], values[self.size:], strict=True)):
                check_finite(self.step + 1, (("training loss", loss), ("gradient norm", norm)),
                                   f" of model {k + 1} (ratio {ratios[k]:g})")
        except DivergedError:
            self.optimizer.zero_grad(set_to_none=True)
            raise
        if self.config.grad_clip > 0:
            scale = (self.config.grad_clip / (norms + 1e-6)).clamp(max=1.0)
            for group in self.groups:
                part = scale[group.members.start:group.members.stop]
                for param in group.params.values():
                    param.grad.mul_(part.view(-1, *[1] * (param.dim() - 1)))
        self.optimizer.step()
        self.step += 1
        return BatchedStep(self.step, values[:self.size], ratios)

    def evaluate(self) -> list[Evaluation]:
        """Each model's metrics, scored by the rules `Trainer.evaluate` follows."""
        tgt = self.validation[1]

        @torch.inference_mode()
        def logits(group: _Group) -> dict[str, torch.Tensor]:
            size = len(group.members)

            def part_logits(src: torch.Tensor, part: torch.Tensor, ratio: float) -> torch.Tensor:
                return torch.cat([group.forward(group.config, s, t, torch.full((size, t.shape[1]), ratio >= 1.0),
                                                False)
                                  for s, t in zip(src.split(EVAL_CHUNK), part.split(EVAL_CHUNK), strict=True)], dim=1)

            return {prefix: joined([part_logits(src, part, ratio) for src, part in self.validation_parts],
                                   tgt.shape[1], 1)
                    for prefix, ratio in MODES.items()}

        by_group = self._each_group(logits)
        return [evaluation({prefix: both[k] for prefix, both in group_logits.items()},
                           scored_target(tgt, group.config.eos), self.data.sizes, self.data.trained_largest)
                for group, group_logits in zip(self.groups, by_group, strict=True)
                for k in range(next(iter(group_logits.values())).shape[0])]

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, teacher: torch.Tensor, training: bool) -> torch.Tensor:
        """Logits (K, B, L, V) of every model; teacher (K, L) or (K, B, L)."""
        return torch.cat(self._each_group(lambda group: group.forward(
            group.config, src, tgt, teacher[group.members.start:group.members.stop], training)))


def _split(configs: list[TrainConfig], workers: int) -> list[range]:
    """The groups: runs of models of one shape, one shape split into `workers` groups (several shapes: one group
    each, as their weights cannot be stacked together)."""
    shapes = [tuple(getattr(config, name) for name in MODEL_SHAPE) for config in configs]
    runs, start = [], 0
    for _, members in itertools.groupby(shapes):
        count = len(list(members))
        runs.append(range(start, start + count))
        start += count
    if len(runs) > 1:
        return runs
    bounds = [round(g * len(configs) / workers) for g in range(workers + 1)]
    return [range(start, end) for start, end in itertools.pairwise(bounds)]


def model_losses(logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Each model's cross-entropy averaged over non-<pad> tokens, shape (K,)."""
    size, vocab = logits.shape[0], logits.shape[-1]
    flat = F.cross_entropy(logits.reshape(-1, vocab), tgt.expand(size, -1, -1).reshape(-1),
                           ignore_index=PAD_ID, reduction="none")
    return flat.view(size, -1).sum(1) / (tgt != PAD_ID).sum()
