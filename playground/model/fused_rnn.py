"""Fast path: a recurrence over inputs that are all known, as calls of torch's fused module (nn.LSTM, nn.GRU).

Serves every cell and every attention wherever the inputs are known in advance: the encoder always, and the decoder
under full teacher forcing (γ = 1), where attention, which reads h_t and never feeds back into the recurrence, then
runs once over all steps. The fused kernels (oneDNN, cuDNN) compute the cell's equations (`cells.py`) in their own
summation order; tests/test_family.py holds this path to a loop of `Decoder.step` and to the equations.
"""

from __future__ import annotations

import torch
from torch import nn

from playground.model.cells import CellKind
from playground.model.interface import State
from playground.model.step_hook import between_steps, on_gradient, time_chunk


def run_fused(cell: CellKind, rnn: nn.LSTM | nn.GRU, x: torch.Tensor, state: State | None) -> tuple[
        torch.Tensor, State]:
    """The top layer's h at every step (B, S, H) and the final state, in one call (state None: zeros)."""
    outputs, state = rnn(x, None if state is None else cell.pack(state))
    return outputs, cell.unpack(state)


def run_fused_in_chunks(cell: CellKind, rnn: nn.LSTM | nn.GRU, x: torch.Tensor) -> tuple[torch.Tensor, State]:
    """`run_fused` from zeros, except at sizes where one call would run for seconds: there the same module reads a
    few steps at a time, carrying its state, and the step hook is called in between (forward and backward)."""
    chunk = time_chunk(x.shape[0] * cell.flops_per_token(rnn.input_size, rnn.hidden_size, rnn.num_layers))
    outputs, state = [], None
    for part in x.split(chunk, dim=1):
        between_steps()
        out, state = run_fused(cell, rnn, part, state)
        on_gradient(state[0])
        outputs.append(out)
    return torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0], state
