"""The recurrent cells, each described once: its equations, its state, its gates, its cost, a reference step.

LSTM (torch.nn.LSTM, gate order i, f, g, o):
    i = σ(W_ii x + b_ii + W_hi h + b_hi)   f = σ(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)  o = σ(W_io x + b_io + W_ho h + b_ho)
    c' = f c + i g                          h' = o tanh(c')
GRU (torch.nn.GRU, gate order r, z, n):
    r = σ(W_ir x + b_ir + W_hr h + b_hr)   z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r (W_hn h + b_hn))
    h' = (1 - z) n + z h
Both keep torch's parameter names (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, ...). The model,
the fast paths, the cost estimate and the diagram read a `CellKind` rather than spelling out a cell's state and
gates, so a cell is added here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from playground.model.interface import State, StepValues


@dataclass(frozen=True)
class LSTMStep:
    """One LSTM step of one layer: the new (h, c) and the gates after their activations."""

    h: torch.Tensor
    c: torch.Tensor
    i: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    o: torch.Tensor


def lstm_step(gates: torch.Tensor, c: torch.Tensor) -> LSTMStep:
    """The LSTM's equations from the gates' pre-activations (last dimension 4H, order i, f, g, o) and c."""
    i, f, g, o = gates.chunk(4, -1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    return LSTMStep(o * torch.tanh(c), c, i, f, g, o)


@dataclass(frozen=True)
class LayerWeights:
    """One LSTM layer's weights, transposed so x @ w_ih works: w_ih (..., D, 4H), w_hh (..., H, 4H), bias (..., 4H).

    The bias is b_ih + b_hh. No leading dimension for one model; (K,) for K models with stacked weights, whose
    inputs then carry the same leading K.
    """

    w_ih: torch.Tensor
    w_hh: torch.Tensor
    bias: torch.Tensor

    @property
    def stacked(self) -> bool:
        return self.w_ih.dim() == 3

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The input's share of the gates, W_ih x + b: x (B, D) or (K, B, D)."""
        if self.stacked:
            return torch.baddbmm(self.bias.unsqueeze(1), x, self.w_ih)
        return torch.addmm(self.bias, x, self.w_ih)

    def step(self, projected: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> LSTMStep:
        """One step from the projected input and the previous (h, c)."""
        gates = torch.baddbmm(projected, h, self.w_hh) if self.stacked else torch.addmm(projected, h, self.w_hh)
        return lstm_step(gates, c)


def lstm_layers(weights: Mapping[str, torch.Tensor], prefix: str, num_layers: int) -> list[LayerWeights]:
    """The layers named `{prefix}weight_ih_l{k}` (nn.LSTM's names) in a state dict or a dict of stacked tensors."""
    def weight(name: str, layer: int) -> torch.Tensor:
        return weights[f"{prefix}{name}_l{layer}"]

    return [LayerWeights(weight("weight_ih", k).transpose(-1, -2), weight("weight_hh", k).transpose(-1, -2),
                         weight("bias_ih", k) + weight("bias_hh", k)) for k in range(num_layers)]


def layers_of(lstm: nn.LSTM) -> list[LayerWeights]:
    """An nn.LSTM's own weights, as the hand-written loops read them."""
    return lstm_layers(dict(lstm.named_parameters()), "", lstm.num_layers)


def _lstm_reference_step(weights: LayerWeights, x: torch.Tensor, state: State) -> StepValues:
    step = weights.step(weights.project(x), *state)
    return {"h": step.h, "c": step.c, "i": step.i, "f": step.f, "g": step.g, "o": step.o}


@dataclass(frozen=True)
class GRULayerWeights:
    """One GRU layer's weights, transposed so x @ w_ih works: w_ih (D, 3H), w_hh (H, 3H), biases (3H,)."""

    w_ih: torch.Tensor
    w_hh: torch.Tensor
    b_ih: torch.Tensor
    b_hh: torch.Tensor


def _gru_layers(weights: Mapping[str, torch.Tensor], prefix: str, num_layers: int) -> list[GRULayerWeights]:
    def weight(name: str, layer: int) -> torch.Tensor:
        return weights[f"{prefix}{name}_l{layer}"]

    return [GRULayerWeights(weight("weight_ih", k).transpose(-1, -2), weight("weight_hh", k).transpose(-1, -2),
                            weight("bias_ih", k), weight("bias_hh", k)) for k in range(num_layers)]


def _gru_reference_step(weights: GRULayerWeights, x: torch.Tensor, state: State) -> StepValues:
    (h,) = state
    x_r, x_z, x_n = (torch.matmul(x, weights.w_ih) + weights.b_ih).chunk(3, -1)
    h_r, h_z, h_n = (torch.matmul(h, weights.w_hh) + weights.b_hh).chunk(3, -1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return {"h": (1 - z) * n + z * h, "r": r, "z": z, "n": n}


@dataclass(frozen=True)
class CellKind:
    """Everything the code needs to know about one recurrent cell."""

    name: str  # the setting's value and the module's attribute name (`encoder.lstm`, `decoder.gru`)
    label: str
    state_names: tuple[str, ...]  # the `State`'s tensors, each (layers, B, H); h first: the decoder reads out h
    gate_names: tuple[str, ...]  # after their activations, as state capture records them
    module: type[nn.LSTM] | type[nn.GRU]
    layer_weights: Callable[[Mapping[str, torch.Tensor], str, int], list]  # typed views of `{prefix}weight_ih_l{k}`
    reference_step: Callable[[object, torch.Tensor, State], StepValues]  # one layer, one step

    @property
    def state_label(self) -> str:
        """How a page names the state handed from encoder to decoder: (h_T, c_T) or h_T."""
        names = [f"{name}_T" for name in self.state_names]
        return f"({', '.join(names)})" if len(names) > 1 else names[0]

    def build(self, input_size: int, hidden: int, layers: int, dropout: float) -> nn.LSTM | nn.GRU:
        return self.module(input_size, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)

    def flops_per_token(self, input_size: int, hidden: int, layers: int) -> int:
        """The matrix products of one token through the stacked cell, forward: 2 x gates x H x (D + H) a layer."""
        width = len(self.gate_names) * hidden
        return sum(2 * width * ((input_size if layer == 0 else hidden) + hidden) for layer in range(layers))

    def layers(self, module: nn.Module) -> list:
        """A fused module's own weights, as the reference step reads them."""
        return self.layer_weights(dict(module.named_parameters()), "", module.num_layers)

    def pack(self, state: State) -> torch.Tensor | State:
        """The state as the fused module takes it: (h, c) for nn.LSTM, h for nn.GRU."""
        return state if len(self.state_names) > 1 else state[0]

    def unpack(self, state: torch.Tensor | State) -> State:
        return tuple(state) if isinstance(state, tuple) else (state,)

    def zero_state(self, layers: int, batch: int, hidden: int, device: torch.device) -> State:
        return tuple(torch.zeros(layers, batch, hidden, device=device) for _ in self.state_names)

    def run_step(self, layers: list, x: torch.Tensor, state: State, dropout: float = 0.0,
                 training: bool = False) -> tuple[State, list[StepValues]]:
        """One step through every layer with the reference step: the new state and each layer's values.

        `dropout` between layers as the fused module applies it (training only)."""
        values: list[StepValues] = []
        for k, weights in enumerate(layers):
            if k > 0:
                x = nn.functional.dropout(x, dropout, training)
            values.append(self.reference_step(weights, x, tuple(part[k] for part in state)))
            x = values[-1]["h"]
        return tuple(torch.stack([layer[name] for layer in values]) for name in self.state_names), values


LSTM_CELL = CellKind("lstm", "LSTM", ("h", "c"), ("i", "f", "g", "o"), nn.LSTM, lstm_layers, _lstm_reference_step)
GRU_CELL = CellKind("gru", "GRU", ("h",), ("r", "z", "n"), nn.GRU, _gru_layers, _gru_reference_step)
CELLS: dict[str, CellKind] = {kind.name: kind for kind in (LSTM_CELL, GRU_CELL)}
