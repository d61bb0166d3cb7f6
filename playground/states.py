"""Step-by-step capture of h_t, c_t and the gates i, f, g, o, with the model's own weights.

nn.LSTM hides its gates, so this recomputes each layer one step at a time
from `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}` (PyTorch's
gate order i, f, g, o). Tests hold it equal to nn.LSTM's own outputs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from playground.model import Seq2Seq
from playground.tasks import EOS, EOS_ID, SOS, Vocab

GATES = ("i", "f", "g", "o")


@dataclass(frozen=True)
class LayerStates:
    h: np.ndarray  # (steps, hidden)
    c: np.ndarray  # (steps, hidden)
    gates: dict[str, np.ndarray]  # i, f, g, o after their activations: (steps, hidden)


@dataclass(frozen=True)
class StateCapture:
    src_tokens: list[str]
    encoder: list[LayerStates]
    decoder_inputs: list[str]  # the token fed at each decoder step, <sos> first
    decoder: list[LayerStates]
    probs: np.ndarray  # (steps, target vocabulary)
    predicted: list[str]  # argmax token at each step
    teacher_used: list[bool]  # whether step t's input was the true token

    @property
    def context(self) -> np.ndarray:
        """The encoder's final state h_T of every layer, concatenated: what the decoder starts from."""
        return np.concatenate([layer.h[-1] for layer in self.encoder])


class _Recorder:
    """Runs a stacked LSTM one step at a time and keeps every layer's h, c and gates."""

    def __init__(self, lstm: nn.LSTM, state: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.lstm = lstm
        self.h, self.c = list(state[0].unbind(0)), list(state[1].unbind(0))
        self.records: list[dict[str, list[torch.Tensor]]] = [
            {name: [] for name in ("h", "c", *GATES)} for _ in range(lstm.num_layers)]

    def step(self, x: torch.Tensor) -> torch.Tensor:
        for layer in range(self.lstm.num_layers):
            gates = (x @ getattr(self.lstm, f"weight_ih_l{layer}").T + getattr(self.lstm, f"bias_ih_l{layer}")
                     + self.h[layer] @ getattr(self.lstm, f"weight_hh_l{layer}").T
                     + getattr(self.lstm, f"bias_hh_l{layer}"))
            i, f, g, o = gates.chunk(4, dim=-1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            self.c[layer] = f * self.c[layer] + i * g
            self.h[layer] = o * torch.tanh(self.c[layer])
            for name, value in zip(("h", "c", *GATES), (self.h[layer], self.c[layer], i, f, g, o), strict=True):
                self.records[layer][name].append(value)
            x = self.h[layer]
        return x

    def state(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.stack(self.h), torch.stack(self.c)

    def layers(self) -> list[LayerStates]:
        def array(values: list[torch.Tensor]) -> np.ndarray:
            return torch.stack(values)[:, 0].cpu().numpy()  # (steps, hidden): batch of one

        return [LayerStates(array(record["h"]), array(record["c"]), {gate: array(record[gate]) for gate in GATES})
                for record in self.records]


@torch.inference_mode()
def capture_states(model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, src_tokens: list[str],
                   tgt_tokens: list[str] | None = None, teacher_forcing_ratio: float = 0.0,
                   max_len: int = 64, seed: int = 0) -> StateCapture:
    """One example through the model; gamma 0 decodes greedily until <eos> or max_len.

    With target tokens, decoding runs over target + <eos>, and step t reads the
    true previous token where a coin (seeded by `seed`) falls below gamma.
    """
    if not src_tokens:
        raise ValueError("the source is empty: type at least one token")
    device = next(model.parameters()).device
    src = torch.tensor([src_vocab.encode(src_tokens)], device=device)
    encoder = _Recorder(model.encoder.lstm, _zero_state(model.encoder.lstm, device))
    for x in model.encoder.embedding(src).unbind(1):
        encoder.step(x)
    targets = [*tgt_vocab.encode(tgt_tokens), EOS_ID] if tgt_tokens is not None else None
    steps = len(targets) if targets is not None else max_len
    coins = random.Random(seed)
    decoder = _Recorder(model.decoder.lstm, encoder.state())
    token, inputs, teacher_used, probs, predicted = model.sos_id, [SOS], [False], [], []
    for t in range(steps):
        if t > 0:
            use_teacher = targets is not None and coins.random() < teacher_forcing_ratio
            token = targets[t - 1] if use_teacher else predicted[-1]
            inputs.append(tgt_vocab.itos[token])
            teacher_used.append(use_teacher)
        top = decoder.step(model.decoder.embedding(torch.tensor([token], device=device)))
        distribution = torch.softmax(model.decoder.fc_out(top), dim=-1)[0]
        probs.append(distribution)
        predicted.append(int(distribution.argmax()))
        if targets is None and predicted[-1] == EOS_ID:
            break
    return StateCapture(list(src_tokens), encoder.layers(), inputs, decoder.layers(),
                        torch.stack(probs).cpu().numpy(), [tgt_vocab.itos[i] for i in predicted], teacher_used)


def _zero_state(lstm: nn.LSTM, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    zeros = torch.zeros(lstm.num_layers, 1, lstm.hidden_size, device=device)
    return zeros, zeros.clone()


def decoded_text(capture: StateCapture, tgt_vocab: Vocab) -> str:
    """The prediction as a person reads it: up to <eos>, joined the vocabulary's way."""
    tokens = capture.predicted[: capture.predicted.index(EOS)] if EOS in capture.predicted else capture.predicted
    return tgt_vocab.join(tokens)
