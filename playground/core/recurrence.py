"""The one LSTM recurrence for hand-written loops, and a typed view of a stacked LSTM's weights.

nn.LSTM (PyTorch's gate order i, f, g, o) computes, for each layer and step:

    i = sigmoid(W_ii x + W_hi h + b_i)      f = sigmoid(W_if x + W_hf h + b_f)
    g = tanh(W_ig x + W_hg h + b_g)         o = sigmoid(W_io x + W_ho h + b_o)
    c' = f * c + i * g                      h' = o * tanh(c')

`model.py` runs it fused (nn.LSTM) as the specification's readable model. Loops that need what nn.LSTM hides
(every gate for inspection, K models with stacked weights, one decoder step at a time) use `LayerWeights.step`,
and tests hold every such loop equal to nn.LSTM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Cell:
    """One step of one layer: the new state and the gates after their activations."""

    h: torch.Tensor
    c: torch.Tensor
    i: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    o: torch.Tensor


def cell(gates: torch.Tensor, c: torch.Tensor) -> Cell:
    """The LSTM cell from the gates' pre-activations (last dimension 4H, order i, f, g, o)."""
    i, f, g, o = gates.chunk(4, -1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    return Cell(o * torch.tanh(c), c, i, f, g, o)


@dataclass(frozen=True)
class LayerWeights:
    """One layer's weights, transposed so x @ w_ih works: w_ih (..., D, 4H), w_hh (..., H, 4H), bias (..., 4H).

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

    def step(self, projected: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> Cell:
        """One step from the projected input and the previous (h, c)."""
        gates = torch.baddbmm(projected, h, self.w_hh) if self.stacked else torch.addmm(projected, h, self.w_hh)
        return cell(gates, c)


def lstm_layers(weights: Mapping[str, torch.Tensor], prefix: str, num_layers: int) -> list[LayerWeights]:
    """The layers named `{prefix}weight_ih_l{k}` (nn.LSTM's names) in a state dict or a dict of stacked tensors."""
    def weight(name: str, layer: int) -> torch.Tensor:
        return weights[f"{prefix}{name}_l{layer}"]

    return [LayerWeights(weight("weight_ih", k).transpose(-1, -2), weight("weight_hh", k).transpose(-1, -2),
                         weight("bias_ih", k) + weight("bias_hh", k)) for k in range(num_layers)]


def layers_of(lstm: nn.LSTM) -> list[LayerWeights]:
    """An nn.LSTM's own weights, as the loops read them."""
    return lstm_layers(dict(lstm.named_parameters()), "", lstm.num_layers)
