"""K models that differ only in their teacher-forcing ratio (or schedule, or seed) trained in one computation.

Every parameter is stacked as a (K, ...) tensor and the LSTM recurrence runs as
batched matrix products, so K models cost one Python loop, not K. All models
read the same batches and the same coin draws (common random numbers: the base
config's seed picks both); model k compares the shared draws with its own
ratio, exactly as `Trainer` does for one model. The loss backpropagated is the
sum of the per-model losses, so each slice of a gradient is that model's own;
clipping uses each model's own norm, and Adam/AdamW/SGD act elementwise, so one
optimizer over stacked weights equals K optimizers.

Two ways to run the forward pass, same numbers within float tolerance (tests hold them equal): `stacked`, the
recurrence as bmm over (K, ...) weights, one Python loop for all K; `each`, the one-model `Seq2Seq` (fused
nn.LSTM calls) run once per model on views of the stacked weights. Stacked wins where Python overhead dominates
(small hidden size, short batches); each wins where the arithmetic dominates, because oneDNN's fused LSTM beats
K-batched small GEMMs plus unfused gate math (issue #12: never slower than K `Trainer`s). `choose_path` picks by
size; `BatchedTrainer(path=...)` forces one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from playground.core.config import FORCING_SETTINGS, ConfigError, TrainConfig
from playground.core.devices import resolve_device
from playground.core.recurrence import LayerWeights, lstm_layers
from playground.core.tasks import PAD_ID, SOS_ID, CustomPairs, TaskData
from playground.training.rules import (
    EVAL_CHUNK,
    MODES,
    DivergedError,
    Evaluation,
    check_finite,
    draw_coins,
    evaluation,
    restore_state,
    resume_state,
)
from playground.training.trainer import build_model, build_optimizer, build_task

# the settings in which the K models may differ; everything else, the coin's kind included (one stream of draws
# serves every model), is shared
PER_MODEL = (*(name for name in FORCING_SETTINGS if name != "coin"), "seed")
ForwardPath = Literal["stacked", "each"]
# the stacked loop's per-step gate math is unfused; past this hidden size the fused per-model calls win
STACKED_MAX_HIDDEN = 128


def choose_path(config: TrainConfig, size: int) -> ForwardPath:
    """The faster forward path for K = `size` models of `config`'s size (measured by `bench`, issue #12)."""
    return "stacked" if config.hidden_dim <= STACKED_MAX_HIDDEN and size > 1 else "each"


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


class BatchedTrainer:
    """`Trainer` for K models at once: one data stream, one coin stream, stacked weights."""

    def __init__(self, configs: list[TrainConfig], custom: CustomPairs | None = None,
                 path: ForwardPath | None = None) -> None:
        self.configs = [config.validate() for config in configs]
        check_compatible(self.configs)
        self.config = base = self.configs[0]
        self.size = len(configs)
        self.device = resolve_device(base.device)
        self.task = build_task(base, custom)
        self.data = TaskData(self.task, base.seed, base.val_size)
        models = [build_model(config, len(self.task.src_vocab), len(self.task.tgt_vocab)) for config in self.configs]
        self.params = {name: nn.Parameter(torch.stack([model.state_dict()[name] for model in models]).to(self.device))
                       for name in models[0].state_dict()}
        self.optimizer = build_optimizer(base, list(self.params.values()))
        self.coins = torch.Generator().manual_seed(base.seed + 1)
        self.batches = self.data.train_batches(base.batch_size)
        self.validation = (self.data.validation.src.to(self.device), self.data.validation.tgt.to(self.device))
        self.step = 0
        self.path: ForwardPath = path or choose_path(base, self.size)
        self.template = models[0].to(self.device)  # the module `each` runs on every model's weights

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights as a `Seq2Seq` state_dict."""
        return {name: param[k].detach().clone() for name, param in self.params.items()}

    def resume_state(self) -> dict[str, Any]:
        return resume_state(self.optimizer, self.coins, self.data)

    def restore(self, states: list[dict[str, torch.Tensor]], step: int, resume: dict[str, Any] | None) -> None:
        """Every model's weights and the shared step from a checkpoint (see `Trainer.restore`)."""
        if len(states) != self.size:
            raise ValueError(f"the checkpoint holds {len(states)} models, this comparison trains {self.size}")
        with torch.no_grad():
            for name, param in self.params.items():
                param.copy_(torch.stack([state[name] for state in states]))
        self.step = step
        if resume is not None:
            restore_state(resume, self.optimizer, self.coins, self.data)

    def ratios(self) -> list[float]:
        return [config.forcing_schedule().ratio(self.step) for config in self.configs]

    def train_step(self) -> BatchedStep:
        """One optimizer step of all K models on one batch (what `bench` times)."""
        batch = next(self.batches)
        src, tgt = batch.src.to(self.device), batch.tgt.to(self.device)
        ratios = self.ratios()
        draws = draw_coins(self.coins, self.config.coin, tgt.shape)
        teacher = draws[None] < torch.tensor(ratios).view(-1, *[1] * draws.dim())
        losses = model_losses(self.forward(src, tgt, teacher, training=True), tgt)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        norms = torch.stack([p.grad.pow(2).flatten(1).sum(1) for p in self.params.values()]).sum(0).sqrt()
        values = torch.cat([losses.detach(), norms]).tolist()
        try:
            for k, (loss, norm) in enumerate(zip(values[:self.size], values[self.size:], strict=True)):
                check_finite(self.step + 1, (("training loss", loss), ("gradient norm", norm)),
                             f" of model {k + 1} (ratio {ratios[k]:g})")
        except DivergedError:
            self.optimizer.zero_grad(set_to_none=True)
            raise
        if self.config.grad_clip > 0:
            scale = (self.config.grad_clip / (norms + 1e-6)).clamp(max=1.0)
            for param in self.params.values():
                param.grad.mul_(scale.view(-1, *[1] * (param.dim() - 1)))
        self.optimizer.step()
        self.step += 1
        return BatchedStep(self.step, values[:self.size], ratios)

    @torch.inference_mode()
    def evaluate(self) -> list[Evaluation]:
        """Each model's metrics, scored by the rules `Trainer.evaluate` follows."""
        src, tgt = self.validation
        logits = {prefix: torch.cat([self.forward(s, t, torch.full((self.size, t.shape[1]), ratio >= 1.0),
                                                   training=False)
                                     for s, t in zip(src.split(EVAL_CHUNK), tgt.split(EVAL_CHUNK), strict=True)],
                                    dim=1)
                  for prefix, ratio in MODES.items()}
        return [evaluation({prefix: both[k] for prefix, both in logits.items()}, tgt) for k in range(self.size)]

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, teacher: torch.Tensor, training: bool) -> torch.Tensor:
        """Logits (K, B, L, V); teacher (K, L) or (K, B, L) says where step t reads y_{t-1}, else its own argmax.

        The coins stay on the CPU (as `Seq2Seq.forward` takes them): reading them costs no device sync."""
        if self.path == "each":
            return self._forward_each(src, tgt, teacher, training)
        dropout = self.config.dropout if training else 0.0
        x = F.dropout(self._embed("encoder", src), dropout, training)
        states = []
        for layer, weights in enumerate(self._layers("encoder")):
            x, state = _encoder_layer(x, weights)
            states.append(state)
            if layer < self.config.num_layers - 1:
                x = F.dropout(x, dropout, training)
        return self._decode(tgt, teacher.to(self.device), states, dropout, training)

    def _forward_each(self, src: torch.Tensor, tgt: torch.Tensor, teacher: torch.Tensor,
                      training: bool) -> torch.Tensor:
        """`Seq2Seq.forward` once per model on views of the stacked weights (unbind: one stack in backward)."""
        views = {name: param.unbind(0) for name, param in self.params.items()}
        self.template.train(training)
        logits = []
        for k in range(self.size):
            forced = teacher[k]  # draws 0 where forced, 1 where not: under ratio 0.5 they give `forced` back
            ratio = 1.0 if bool(forced.all()) else 0.5
            logits.append(functional_call(self.template, {name: view[k] for name, view in views.items()},
                                          (src, tgt, ratio, self.config.coin, (~forced).float())))
        return torch.stack(logits)

    def _embed(self, side: str, ids: torch.Tensor) -> torch.Tensor:
        """Rows of each model's table; the <pad> row is masked so it stays zero and gets no gradient."""
        weight = self.params[f"{side}.embedding.weight"]
        mask = torch.ones(weight.shape[1], 1, device=weight.device)
        mask[PAD_ID] = 0.0
        table = weight * mask
        if ids.dim() == 2:  # (B, T) shared by all models
            return table[:, ids]
        return table[torch.arange(self.size, device=ids.device)[:, None], ids]

    def _layers(self, side: str) -> list[LayerWeights]:
        return lstm_layers(self.params, f"{side}.lstm.", self.config.num_layers)

    def _decode(self, tgt: torch.Tensor, teacher: torch.Tensor, states: list[tuple[torch.Tensor, torch.Tensor]],
                dropout: float, training: bool) -> torch.Tensor:
        size, (batch, length) = self.size, tgt.shape
        layers = self._layers("decoder")
        w_out = self.params["decoder.fc_out.weight"].transpose(1, 2)
        b_out = self.params["decoder.fc_out.bias"][:, None]
        use_table = dropout == 0.0 or not training
        if use_table:  # a step's input projection is a lookup in E W_ih^T + b, shape (K, V, 4H)
            emb = self.params["decoder.embedding.weight"]
            mask = torch.ones(emb.shape[1], 1, device=emb.device)
            mask[PAD_ID] = 0.0
            table = layers[0].project(emb * mask)
        rows = torch.arange(size, device=tgt.device)[:, None]
        token = torch.full((size, batch), SOS_ID, dtype=torch.long, device=tgt.device)
        steps = []
        for t in range(length):
            if t > 0:
                forced = teacher[:, t, None] if teacher.dim() == 2 else teacher[:, :, t]
                token = torch.where(forced, tgt[:, t - 1], steps[-1].detach().argmax(-1))
            if use_table:
                x = table[rows, token]
            else:
                x = layers[0].project(F.dropout(self._embed("decoder", token), dropout, training))
            new_states: list[tuple[torch.Tensor, torch.Tensor]] = []
            for layer, (weights, (h, c)) in enumerate(zip(layers, states, strict=True)):
                if layer > 0:
                    x = weights.project(F.dropout(new_states[-1][0], dropout, training))
                step = weights.step(x, h, c)
                new_states.append((step.h, step.c))
            states = new_states
            steps.append(torch.baddbmm(b_out, states[-1][0], w_out))
        return torch.stack(steps, 2)


def _encoder_layer(x: torch.Tensor,
                   weights: LayerWeights) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """All input projections at once, then one bmm with W_hh per step; x (K, B, T, D)."""
    size, batch, length, _ = x.shape
    projected = weights.project(x.reshape(size, batch * length, -1)).view(size, batch, length, -1)
    h = x.new_zeros(size, batch, weights.w_hh.shape[1])
    c = torch.zeros_like(h)
    outputs = []
    for inputs in projected.unbind(2):  # unbind: one backward stack, not a zero-filled copy per step
        step = weights.step(inputs, h, c)
        h, c = step.h, step.c
        outputs.append(h)
    return torch.stack(outputs, 2), (h, c)


def model_losses(logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Each model's cross-entropy averaged over non-<pad> tokens, shape (K,)."""
    size, vocab = logits.shape[0], logits.shape[-1]
    flat = F.cross_entropy(logits.reshape(-1, vocab), tgt.expand(size, -1, -1).reshape(-1),
                           ignore_index=PAD_ID, reduction="none")
    return flat.view(size, -1).sum(1) / (tgt != PAD_ID).sum()
