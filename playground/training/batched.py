"""K models that differ only in their teacher-forcing ratio (or schedule, or seed) trained in one computation.

Every parameter is stacked as a (K, ...) tensor and the LSTM recurrence runs as
batched matrix products, so K models cost one Python loop, not K. All models
read the same batches and the same coin draws (common random numbers: the base
config's seed picks both); model k compares the shared draws with its own
ratio, exactly as `Trainer` does for one model. The loss backpropagated is the
sum of the per-model losses, so each slice of a gradient is that model's own;
clipping uses each model's own norm, and Adam/AdamW/SGD act elementwise, so one
optimizer over stacked weights equals K optimizers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from playground.core.config import ConfigError, TrainConfig
from playground.core.devices import resolve_device
from playground.core.tasks import PAD_ID, SOS_ID, Batch, Task, TaskData
from playground.training.trainer import (
    EVAL_CHUNK,
    DivergedError,
    Evaluation,
    _mean_by_length,
    build_model,
    build_optimizer,
    build_task,
    score,
)

# the settings in which the K models may differ; everything else is shared
PER_MODEL = ("teacher_forcing_ratio", "schedule", "tf_end", "decay_steps", "exp_k", "sigmoid_k", "seed")


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

    def __init__(self, configs: list[TrainConfig], task: Task | None = None) -> None:
        self.configs = [config.validate() for config in configs]
        check_compatible(self.configs)
        self.config = base = self.configs[0]
        self.size = len(configs)
        self.device = resolve_device(base.device)
        self.task = task or build_task(base)
        self.data = TaskData(self.task, base.seed, base.val_size)
        models = [build_model(config, len(self.task.src_vocab), len(self.task.tgt_vocab)) for config in self.configs]
        self.params = {name: nn.Parameter(torch.stack([model.state_dict()[name] for model in models]).to(self.device))
                       for name in models[0].state_dict()}
        self.optimizer = build_optimizer(base, list(self.params.values()))
        self.coins = torch.Generator().manual_seed(base.seed + 1)
        self.batches = self.data.train_batches(base.batch_size)
        self.validation = (self.data.validation.src.to(self.device), self.data.validation.tgt.to(self.device))
        self.step = 0

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights as a `Seq2Seq` state_dict."""
        return {name: param[k].detach().clone() for name, param in self.params.items()}

    def ratios(self) -> list[float]:
        return [config.forcing_schedule().ratio(self.step) for config in self.configs]

    def draw_coins(self, batch: Batch) -> torch.Tensor:
        """The same draws `Trainer.draw_coins` makes, shared by every model."""
        shape = (batch.tgt.shape[1],) if self.config.coin == "step" else tuple(batch.tgt.shape)
        return torch.rand(shape, generator=self.coins)

    def train_step(self) -> BatchedStep:
        """One optimizer step of all K models on one batch (what `bench` times)."""
        batch = next(self.batches)
        src, tgt = batch.src.to(self.device), batch.tgt.to(self.device)
        ratios = self.ratios()
        draws = self.draw_coins(batch)
        teacher = draws[None] < torch.tensor(ratios).view(-1, *[1] * draws.dim())
        losses = model_losses(self.forward(src, tgt, teacher.to(self.device), training=True), tgt)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        norms = torch.stack([p.grad.pow(2).flatten(1).sum(1) for p in self.params.values()]).sum(0).sqrt()
        values = torch.cat([losses.detach(), norms]).tolist()
        for k, (loss, norm) in enumerate(zip(values[:self.size], values[self.size:], strict=True)):
            for what, number in (("training loss", loss), ("gradient norm", norm)):
                if not math.isfinite(number):
                    self.optimizer.zero_grad(set_to_none=True)
                    raise DivergedError(f"the {what} of model {k + 1} (ratio {ratios[k]:g}) became {number} "
                                        f"at step {self.step + 1}")
        if self.config.grad_clip > 0:
            scale = (self.config.grad_clip / (norms + 1e-6)).clamp(max=1.0)
            for param in self.params.values():
                param.grad.mul_(scale.view(-1, *[1] * (param.dim() - 1)))
        self.optimizer.step()
        self.step += 1
        return BatchedStep(self.step, values[:self.size], ratios)

    @torch.inference_mode()
    def evaluate(self) -> list[Evaluation]:
        """Each model's metrics under the names `Trainer.evaluate` uses."""
        src, tgt = self.validation
        metrics: list[dict[str, float]] = [{} for _ in range(self.size)]
        by_length: list[dict[int, float]] = [{} for _ in range(self.size)]
        lengths = (tgt != PAD_ID).sum(1) - 1
        for prefix, forced in (("val_tf", True), ("val_fr", False)):
            logits = torch.cat([self.forward(s, t, torch.full((self.size, t.shape[1]), forced, device=self.device),
                                             training=False)
                                for s, t in zip(src.split(EVAL_CHUNK), tgt.split(EVAL_CHUNK), strict=True)], dim=1)
            for k in range(self.size):
                loss, token_acc, exact = score(logits[k], tgt)
                metrics[k] |= {f"{prefix}_loss": loss, f"{prefix}_ppl": math.exp(min(loss, 50.0)),
                               f"{prefix}_token_acc": token_acc, f"{prefix}_exact": float(exact.float().mean())}
                if prefix == "val_fr":
                    by_length[k] = _mean_by_length(exact, lengths)
        return [Evaluation(m, b) for m, b in zip(metrics, by_length, strict=True)]

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, teacher: torch.Tensor, training: bool) -> torch.Tensor:
        """Logits (K, B, L, V); teacher (K, L) or (K, B, L) says where step t reads y_{t-1}, else its own argmax."""
        dropout = self.config.dropout if training else 0.0
        x = F.dropout(self._embed("encoder", src), dropout, training)
        states = []
        for layer in range(self.config.num_layers):
            x, state = self._encoder_layer(x, layer)
            states.append(state)
            if layer < self.config.num_layers - 1:
                x = F.dropout(x, dropout, training)
        return self._decode(tgt, teacher, states, dropout, training)

    def _embed(self, side: str, ids: torch.Tensor) -> torch.Tensor:
        """Rows of each model's table; the <pad> row is masked so it stays zero and gets no gradient."""
        weight = self.params[f"{side}.embedding.weight"]
        mask = torch.ones(weight.shape[1], 1, device=weight.device)
        mask[PAD_ID] = 0.0
        table = weight * mask
        if ids.dim() == 2:  # (B, T) shared by all models
            return table[:, ids]
        return table[torch.arange(self.size, device=ids.device)[:, None], ids]

    def _weights(self, side: str, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.params
        name = f"{side}.lstm"
        bias = p[f"{name}.bias_ih_l{layer}"] + p[f"{name}.bias_hh_l{layer}"]
        return p[f"{name}.weight_ih_l{layer}"].transpose(1, 2), p[f"{name}.weight_hh_l{layer}"].transpose(1, 2), bias

    def _encoder_layer(self, x: torch.Tensor,
                       layer: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """All input projections at once, then one bmm with W_hh per step."""
        w_ih, w_hh, bias = self._weights("encoder", layer)
        size, batch, length, _ = x.shape
        projected = torch.baddbmm(bias[:, None], x.reshape(size, batch * length, -1), w_ih)
        projected = projected.view(size, batch, length, -1)
        h = x.new_zeros(size, batch, w_hh.shape[1])
        c = torch.zeros_like(h)
        outputs = []
        for step in projected.unbind(2):  # unbind: one backward stack, not a zero-filled copy per step
            h, c = _cell(torch.baddbmm(step, h, w_hh), c)
            outputs.append(h)
        return torch.stack(outputs, 2), (h, c)

    def _decode(self, tgt: torch.Tensor, teacher: torch.Tensor, states: list[tuple[torch.Tensor, torch.Tensor]],
                dropout: float, training: bool) -> torch.Tensor:
        size, (batch, length) = self.size, tgt.shape
        layers = [self._weights("decoder", layer) for layer in range(self.config.num_layers)]
        w_out = self.params["decoder.fc_out.weight"].transpose(1, 2)
        b_out = self.params["decoder.fc_out.bias"][:, None]
        use_table = dropout == 0.0 or not training
        if use_table:  # a step's input projection is a lookup in E W_ih^T + b, shape (K, V, 4H)
            emb = self.params["decoder.embedding.weight"]
            mask = torch.ones(emb.shape[1], 1, device=emb.device)
            mask[PAD_ID] = 0.0
            table = torch.baddbmm(layers[0][2][:, None], emb * mask, layers[0][0])
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
                w_ih, _, bias = layers[0]
                x = torch.baddbmm(bias[:, None], F.dropout(self._embed("decoder", token), dropout, training), w_ih)
            new_states = []
            for layer, ((w_ih, w_hh, bias), (h, c)) in enumerate(zip(layers, states, strict=True)):
                if layer > 0:
                    below = F.dropout(new_states[-1][0], dropout, training)
                    x = torch.baddbmm(bias[:, None], below, w_ih)
                new_states.append(_cell(torch.baddbmm(x, h, w_hh), c))
            states = new_states
            steps.append(torch.baddbmm(b_out, states[-1][0], w_out))
        return torch.stack(steps, 2)


def _cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.LSTM's cell, gate order i, f, g, o."""
    i, f, g, o = gates.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def model_losses(logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Each model's cross-entropy averaged over non-<pad> tokens, shape (K,)."""
    size, vocab = logits.shape[0], logits.shape[-1]
    flat = F.cross_entropy(logits.reshape(-1, vocab), tgt.expand(size, -1, -1).reshape(-1),
                           ignore_index=PAD_ID, reduction="none")
    return flat.view(size, -1).sum(1) / (tgt != PAD_ID).sum()
