"""What a run will cost before it starts: FLOPs, peak memory and seconds per training step, from its config.

FLOPs count the matrix products, 2*m*n*k each: every cell layer's input and recurrent projections (gates x H x (D +
H) per token, `CellKind.flops_per_token`) on the encoder's and the decoder's tokens, attention's (`attention_flops`)
or a Transformer's layers (`transformer_flops`) and the output layer (V x H per target token); backward costs twice
the forward, so a step is 3x. Memory is what the run adds above an idle process: weights, gradients and Adam's two
moments (4 float32 copies of the parameters), the activations autograd keeps for backward (per token and layer the
four gates, c, tanh(c) and h, 7H floats, and the gradients backward holds for a layer's outputs and cell, about 3H
more: 10H for an LSTM, in proportion for a cell with fewer gates and states; the embeddings; attention's alignments,
and additive attention's H-wide tanh for every pair of steps; the logits three times: logits, log-softmax and their
gradient), one validation chunk's logits, and a fixed overhead of the first run in a process (allocator arenas and
kernel workspaces, `RUN_OVERHEAD_BYTES`). Time is the FLOPs at this machine's measured matrix-product rate plus a
per-token-and-layer overhead measured on a tiny model (`calibrate`, once per process).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from functools import cache

import torch

from playground.core.config import TrainConfig
from playground.core.tasks import Task
from playground.model.attention import attention_activations, attention_flops
from playground.model.cells import CELLS
from playground.model.transformer import transformer_activations, transformer_flops
from playground.training.metrics import EVAL_CHUNK
from playground.training.trainer import meta_model

FLOAT_BYTES = 4
SAVED_PER_HIDDEN = 10  # gates i, f, g, o, c, tanh(c), h per token and layer, and backward's gradients of them
LSTM_SAVED = ("i", "f", "g", "o", "h", "c")  # what SAVED_PER_HIDDEN was measured for; other cells scale by theirs
RUN_OVERHEAD_BYTES = 110 * 1024**2
PARAMETER_COPIES = 4  # weights, gradients, Adam's two moments
WARN_SECONDS_PER_STEP = 3.0
MEMORY_SHARE = 0.75  # of this machine's memory, the default budget for the runs training at once


@dataclass(frozen=True)
class Cost:
    flops_per_step: float
    peak_memory_bytes: float
    seconds_per_step: float
    parameters: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def describe(self) -> str:
        return (f"about {self.seconds_per_step:.2g} s and {gigabytes(self.peak_memory_bytes)} per step "
                f"({self.parameters:,} parameters)")


@dataclass(frozen=True)
class Calibration:
    flops_per_second: float  # matrix products at LSTM-like shapes
    seconds_per_token_layer: float  # what a tiny model's step costs per (token x layer): dispatch, not arithmetic


def gigabytes(size: float) -> str:
    return f"{size / 1024**3:.1f} GB" if size >= 1024**3 / 10 else f"{size / 1024**2:.0f} MB"


def parameter_count(config: TrainConfig, src_vocab: int, tgt_vocab: int) -> int:
    """Exactly `Seq2Seq`'s parameters, counted on the model built on the meta device."""
    return sum(meta_model(config, src_vocab, tgt_vocab).parameter_parts().values())


def estimate(config: TrainConfig, task: Task, calibration: Calibration | None = None) -> Cost:
    calibration = calibration or calibrate()
    batch, hidden, layers, emb = config.batch_size, config.hidden_dim, config.num_layers, config.emb_dim
    src_tokens, tgt_tokens = task.max_src_len, task.max_tgt_len + 1  # targets end with <eos>
    vocab = len(task.tgt_vocab)
    if config.architecture == "transformer":
        body = transformer_flops(hidden, layers, src_tokens, tgt_tokens)
        kept = transformer_activations(hidden, config.heads, layers, src_tokens, tgt_tokens)
        emb = hidden
    else:
        cell = CELLS[config.cell]
        body = ((src_tokens + tgt_tokens) * cell.flops_per_token(emb, hidden, layers)
                + attention_flops(config.attention, hidden, src_tokens, tgt_tokens))
        saved = SAVED_PER_HIDDEN * len(cell.gate_names + cell.state_names) // len(LSTM_SAVED)
        kept = ((src_tokens + tgt_tokens) * layers * saved * hidden
                + attention_activations(config.attention, hidden, src_tokens, tgt_tokens))
    forward = batch * (body + tgt_tokens * 2 * hidden * vocab)
    flops = 3.0 * forward
    parameters = parameter_count(config, len(task.src_vocab), vocab)
    tokens = batch * (src_tokens + tgt_tokens)
    activations = tokens * emb + batch * kept + 3 * batch * tgt_tokens * vocab
    evaluation = 2 * min(config.val_size, EVAL_CHUNK) * tgt_tokens * vocab
    memory = FLOAT_BYTES * (PARAMETER_COPIES * parameters + activations + evaluation) + RUN_OVERHEAD_BYTES
    seconds = flops / calibration.flops_per_second + (
        calibration.seconds_per_token_layer * (src_tokens + tgt_tokens) * layers)
    return Cost(flops, memory, seconds, parameters)


@cache
def calibrate() -> Calibration:
    """Measure this machine once per process: a matrix product's rate and a tiny model's per-step overhead."""
    from playground.training.trainer import Trainer  # the trainer's own step is what is timed

    left, right = torch.randn(256, 1024), torch.randn(1024, 2048)
    torch.mm(left, right)
    started, repeats = time.perf_counter(), 8
    for _ in range(repeats):
        torch.mm(left, right)
    rate = repeats * 2 * 256 * 1024 * 2048 / (time.perf_counter() - started)
    tiny = Trainer(TrainConfig(hidden_dim=8, emb_dim=4, batch_size=4, val_size=16, device="cpu"))
    tiny.train_step()
    started, steps = time.perf_counter(), 5
    for _ in range(steps):
        tiny.train_step()
    per_step = (time.perf_counter() - started) / steps
    tokens = tiny.task.max_src_len + tiny.task.max_tgt_len + 1
    return Calibration(rate, per_step / tokens)


def memory_budget() -> float:
    """Bytes the runs training at once may use: PLAYGROUND_MEMORY_BUDGET_GB, else a share of this machine."""
    if configured := os.environ.get("PLAYGROUND_MEMORY_BUDGET_GB"):
        return float(configured) * 1024**3
    return MEMORY_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
