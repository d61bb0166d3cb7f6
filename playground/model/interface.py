"""What the rest of the playground reads of a model, whatever its architecture: the encoder's memory, and one
decoder step's logits, state and extras.

State capture, beam search, step-through and what-if decoding call `Seq2Seq.encode(src, trace=...)` and
`Decoder.step(token, state, memory) -> (logits, state, extras)`, pick beams with `Decoder.select` and
`Memory.select`, and show what `StepExtras` carry. They never loop over a model's layers, weights or gates.

Another architecture (the Transformer, `transformer.py`) is another encoder and decoder with the same methods,
chosen by a setting in `Seq2Seq`:
    encoder.forward(src) -> (outputs (B, T, H), state)      the fast path; outputs in the order read
    encoder.trace(src) -> (outputs, state, [StepExtras])    the same, with what each step (or layer) shows
    decoder.step(token (B,), state, memory) -> (logits (B, V), state, StepExtras)   the reference
    decoder.forward(inputs (B, S), state, memory) -> (logits (B, S, V), state)       gamma = 1: every input known
    decoder.decode(inputs, state, teacher, memory, stop_id) -> logits (B, S, V)      below 1: own argmax where not
                                                                                      `teacher`, same coins
    decoder.select(state, rows) -> state                                             beams
`Seq2Seq.forward`, `encode` and `greedy_decode` then need nothing new, and the exported script only the new
module in its list of the model's modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

State = tuple[torch.Tensor, ...]  # a decoder's state between steps; only the model reads inside (`Decoder.select`)
StepValues = dict[str, torch.Tensor]  # one layer's named values at one step, each (B, H)


@dataclass(frozen=True)
class StepExtras:
    """What one step shows beyond its output: each layer's named values (its state first, then its gates), the
    attention weights over the source positions (B, T) (None without attention), and a Transformer's attention rows
    per layer and head by kind ("self", "cross"), each (B, layers, heads, keys)."""

    layers: list[StepValues]
    attention: torch.Tensor | None
    state_names: tuple[str, ...] = ("h",)  # which of a layer's names are its state; the others are gates
    heads: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Memory:
    """What the encoder hands the decoder besides its state: its top-layer outputs (B, T, H), in source order, and
    where tokens are real. With `encode(src, trace=True)` also the source as the encoder read it and each encoder
    step's extras, in that order."""

    outputs: torch.Tensor
    real: torch.Tensor  # (B, T) bool
    read: torch.Tensor | None = None  # (B, T) token ids in the order the encoder read them
    trace: list[StepExtras] | None = None

    def select(self, rows: torch.Tensor) -> Memory:
        """The memory of some rows (beams), by index."""
        read = self.read.index_select(0, rows) if self.read is not None else None
        return Memory(self.outputs.index_select(0, rows), self.real.index_select(0, rows), read)
