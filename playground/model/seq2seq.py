"""The specification's LSTM encoder-decoder, readable next to its equations, and its variants as settings.

Encoder: x_t = E_src[s_t]; (h_t, c_t) = LSTM(x_t, h_{t-1}, c_{t-1}); it hands (h_T, c_T) to the decoder.
Decoder: starts from (h_T, c_T) with input <sos>; at step t its input is the true y_{t-1} with probability gamma,
otherwise the argmax of its own previous logits; o_t = W_o h_t + b_o, p_t = softmax(o_t).
The loss is cross-entropy averaged over every non-<pad> target token.

Variants (defaults: the specification's model exactly): `cell` = "gru" (`cells.GRU_CELL`), `attention` = "dot",
"general" or "additive" (`attention.Attention`, Luong global attention after the recurrence, no input feeding, so
o_t = W_o h̃_t), `reverse_source` (the encoder reads the real tokens last to first; padding stays where it is).
`architecture` = "transformer" replaces both sides by `transformer.TransformerEncoder` and `TransformerDecoder`
(`hidden_dim` is their width d, with `heads` and `positions`; `emb_dim`, `cell` and `attention` do not apply), the
same interface.

The reference is `Decoder.step`, one decoder step through the cell's equations. The fast paths compute the same:
`fused_rnn` (every input known: the encoder, and the decoder at gamma = 1) and `fused_lstm.unroll` (an LSTM
decoder below gamma = 1, a hand-written backward); any other decoder below 1 loops `Decoder.step`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from playground.model.attention import ATTENTIONS, Attention
from playground.model.cells import CELLS
from playground.model.fused_lstm import unroll
from playground.model.fused_rnn import run_fused, run_fused_in_chunks
from playground.model.interface import Memory, State, StepExtras, StepValues
from playground.model.step_hook import between_steps
from playground.model.tokens import EOS_ID, PAD_ID, SOS_ID
from playground.model.transformer import TransformerDecoder, TransformerEncoder

COIN_MODES = ("step", "token")
ARCHITECTURES = ("rnn", "transformer")


class _EmbeddedRNN(nn.Module):
    """What both sides are made of: their own embedding (dropout on it), then a stacked recurrent cell, registered
    under the cell's name (`lstm`, `gru`) so its weights keep torch's names."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, num_layers: int, dropout: float,
                 cell: str) -> None:
        super().__init__()
        self.cell = CELLS[cell]
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.add_module(cell, self.cell.build(emb_dim, hidden_dim, num_layers, dropout))

    @property
    def rnn(self) -> nn.LSTM | nn.GRU:
        return getattr(self, self.cell.name)

    def run_step(self, token: torch.Tensor, state: State) -> tuple[State, list[StepValues]]:
        """The reference step: the tokens (B,) through the embedding and every layer's equations."""
        x = self.dropout(self.embedding(token))
        return self.cell.run_step(self.cell.layers(self.rnn), x, state, self.rnn.dropout, self.training)


class Encoder(_EmbeddedRNN):
    def forward(self, src: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Per-step outputs (B, T, H) of the top layer, and the final state ((h_T, c_T) for an LSTM)."""
        return run_fused_in_chunks(self.cell, self.rnn, self.dropout(self.embedding(src)))

    def trace(self, src: torch.Tensor) -> tuple[torch.Tensor, State, list[StepExtras]]:
        """As `forward`, one reference step at a time, with what each step shows (every layer's state and gates)."""
        rnn = self.rnn
        state = self.cell.zero_state(rnn.num_layers, src.shape[0], rnn.hidden_size, src.device)
        outputs, steps = [], []
        for token in src.unbind(1):
            state, layers = self.run_step(token, state)
            outputs.append(layers[-1]["h"])
            steps.append(StepExtras(layers, None, self.cell.state_names))
        return torch.stack(outputs, dim=1), state, steps


class Decoder(_EmbeddedRNN):
    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, num_layers: int, dropout: float,
                 cell: str = "lstm", attention: str = "none") -> None:
        super().__init__(vocab_size, emb_dim, hidden_dim, num_layers, dropout, cell)
        self.fc_out = nn.Linear(hidden_dim, vocab_size)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        self.attention = Attention(attention, hidden_dim) if attention != "none" else None

    def readout(self, outputs: torch.Tensor, memory: Memory | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, S, V) of the top layer's h (B, S, H), through attention when the model has it, and the
        alignment (B, S, T) (None without attention)."""
        if self.attention is None:
            return self.fc_out(outputs), None
        if memory is None:
            raise ValueError("a decoder with attention needs the encoder's outputs (memory)")
        attended, weights = self.attention(outputs, memory)
        return self.fc_out(attended), weights

    def step(self, token: torch.Tensor, state: State, memory: Memory | None = None) -> tuple[
            torch.Tensor, State, StepExtras]:
        """The one decoder step: logits (B, V) for the tokens (B,) fed in, the new state, and what it shows."""
        state, layers = self.run_step(token, state)
        logits, weights = self.readout(layers[-1]["h"].unsqueeze(1), memory)
        return logits[:, 0], state, StepExtras(layers, weights[:, 0] if weights is not None else None,
                                               self.cell.state_names)

    def select(self, state: State, rows: torch.Tensor) -> State:
        """The state of some rows (beams), by index."""
        return tuple(part.index_select(1, rows) for part in state)

    def forward(self, inputs: torch.Tensor, state: State, memory: Memory | None = None) -> tuple[torch.Tensor, State]:
        """Logits (B, S, V) for S known input tokens: `step` over every input, as one fused call (`fused_rnn`)."""
        outputs, state = run_fused(self.cell, self.rnn, self.dropout(self.embedding(inputs)), state)
        return self.readout(outputs, memory)[0], state

    def decode(self, inputs: torch.Tensor, state: State, teacher: torch.Tensor, memory: Memory | None = None,
               stop_id: int | None = None) -> torch.Tensor:
        """Logits (B, S, V); step t reads inputs[:, t] where `teacher` is true, else its own previous argmax.

        `teacher` is (S,), one coin per step for the whole batch, or (B, S), one per token, on the CPU; step 0
        always reads inputs[:, 0]. An LSTM runs through `fused_lstm.unroll` (its own weights, its dropout), other
        cells step by step. With `stop_id`, decoding may end early once every row has produced it.
        """
        teacher = teacher.clone()
        teacher[..., 0] = True
        if self.cell.name != "lstm":
            return self._decode_by_steps(inputs, state, teacher, memory, stop_id)
        dropout = self.dropout.p if self.training else 0.0
        outputs, _ = unroll(self.embedding.weight, self.cell.layers(self.rnn), inputs, state, teacher,
                            lambda h: self.readout(h.unsqueeze(1), memory)[0][:, 0], dropout, stop_id, PAD_ID)
        return self.readout(outputs, memory)[0]

    def _decode_by_steps(self, inputs: torch.Tensor, state: State, teacher: torch.Tensor, memory: Memory | None,
                         stop_id: int | None) -> torch.Tensor:
        forced = teacher.to(inputs.device).expand(inputs.shape)
        logits: list[torch.Tensor] = []
        finished = torch.zeros(inputs.shape[0], dtype=torch.bool, device=inputs.device)
        for t in range(inputs.shape[1]):
            between_steps()
            token = inputs[:, t] if t == 0 else torch.where(forced[:, t], inputs[:, t], logits[-1].argmax(-1))
            if stop_id is not None:
                finished |= token == stop_id
                if bool(finished.all()):
                    break
            step_logits, state, _ = self.step(token, state, memory)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)


def reversal_index(src: torch.Tensor) -> torch.Tensor:
    """Where each position reads from when the real tokens of each row go in reverse order, left padding where it
    was: [pad a b c] -> [pad c b a]. A permutation that is its own inverse, so the same index brings outputs read
    in reverse back to source order."""
    length = src.shape[1]
    pads = (src == PAD_ID).long().cumprod(1).sum(1, keepdim=True)  # left padding: the leading pads
    positions = torch.arange(length, device=src.device).expand_as(src)
    return torch.where(positions < pads, positions, length - 1 + pads - positions)


class Seq2Seq(nn.Module):
    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        emb_dim: int,
        hidden_dim: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        sos_id: int = SOS_ID,
        cell: str = "lstm",
        attention: str = "none",
        reverse_source: bool = False,
        architecture: str = "rnn",
        heads: int = 1,
        positions: str = "sinusoidal",
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        self.encoder: Encoder | TransformerEncoder
        self.decoder: Decoder | TransformerDecoder
        if architecture == "transformer":
            self.encoder = TransformerEncoder(src_vocab_size, hidden_dim, heads, num_layers, dropout, positions)
            self.decoder = TransformerDecoder(tgt_vocab_size, hidden_dim, heads, num_layers, dropout, positions)
        else:
            self.encoder = Encoder(src_vocab_size, emb_dim, hidden_dim, num_layers, dropout, cell)
            self.decoder = Decoder(tgt_vocab_size, emb_dim, hidden_dim, num_layers, dropout, cell, attention)
        self.architecture = architecture
        self.sos_id = sos_id
        self.reverse_source = reverse_source

    def parameter_parts(self) -> dict[str, int]:
        """Parameters per part, as the diagram names them (also on the meta device: shapes only)."""
        if isinstance(self.encoder, TransformerEncoder) and isinstance(self.decoder, TransformerDecoder):
            return _transformer_parts(self.encoder, self.decoder)
        parts = {"encoder embedding": self.encoder.embedding, "encoder cell": self.encoder.rnn,
                 "decoder embedding": self.decoder.embedding, "decoder cell": self.decoder.rnn,
                 "output layer": self.decoder.fc_out}
        if self.decoder.attention is not None:
            parts["attention"] = self.decoder.attention
        return {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}

    def encode(self, src: torch.Tensor, trace: bool = False) -> tuple[State, Memory]:
        """The state handed to the decoder and the memory attention reads (outputs in source order). With `trace`,
        the encoder runs one reference step at a time and the memory keeps what each step shows."""
        index = reversal_index(src) if self.reverse_source else None
        read = src if index is None else src.gather(1, index)
        if trace:
            outputs, state, steps = self.encoder.trace(read)
        else:
            (outputs, state), steps = self.encoder(read), None
        if index is not None:
            outputs = outputs.gather(1, index.unsqueeze(-1).expand_as(outputs))
        return state, Memory(outputs, src != PAD_ID, read, steps)

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        teacher_forcing_ratio: float = 1.0,
        coin: str = "step",
        coin_draws: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, L, V) aligned with tgt: logits[:, t] predicts tgt[:, t].

        `coin` = "step" flips one coin per decoder step for the whole batch
        (the specification's form); "token" flips one per target token.
        `coin_draws` are the uniform draws behind the coins, shape (L,) or
        (B, L); a step is teacher-forced where draw < ratio. Passing them lets
        several models share one stream of coins.
        """
        state, memory = self.encode(src)
        batch, length = tgt.shape
        sos = torch.full((batch, 1), self.sos_id, dtype=torch.long, device=tgt.device)
        inputs = torch.cat([sos, tgt[:, :-1]], dim=1)
        if teacher_forcing_ratio >= 1.0:
            logits, _ = self.decoder(inputs, state, memory)
            return logits
        if coin not in COIN_MODES:
            raise ValueError(f"coin must be one of {COIN_MODES}, got {coin!r}")
        shape = (length,) if coin == "step" else (batch, length)
        if coin_draws is None:  # no draw at all when every step is free-running
            coin_draws = torch.rand(shape) if teacher_forcing_ratio > 0 else torch.ones(shape)
        return self.decoder.decode(inputs, state, coin_draws.cpu() < teacher_forcing_ratio, memory)

    @torch.inference_mode()
    def greedy_decode(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        """Predicted ids (B, <= max_len), each row <pad> after its first <eos>."""
        state, memory = self.encode(src)
        inputs = torch.full((src.shape[0], max_len), self.sos_id, dtype=torch.long, device=src.device)
        teacher = torch.zeros(max_len, dtype=torch.bool)
        teacher[0] = True
        predicted = self.decoder.decode(inputs, state, teacher, memory, EOS_ID).argmax(-1)
        is_eos = predicted == EOS_ID
        seen = is_eos.cumsum(1)
        predicted = predicted.masked_fill(seen - is_eos.long() > 0, PAD_ID)
        ends = torch.where(seen[:, -1] > 0, is_eos.long().argmax(1) + 1, predicted.shape[1])
        return predicted[:, : int(ends.max())]


def _transformer_parts(encoder: TransformerEncoder, decoder: TransformerDecoder) -> dict[str, int]:
    def count(*modules: nn.Module) -> int:
        return sum(p.numel() for module in modules for p in module.parameters())

    layers = decoder.transformer.layers
    norms = {name: [getattr(layer, name) for layer in layers] for name in ("norm1", "norm2")}
    parts = {"encoder embedding": count(encoder.embedding),
             "encoder layers": count(encoder.transformer),
             "decoder embedding": count(decoder.embedding),
             "decoder self-attention": count(*(layer.self_attn for layer in layers), *norms["norm1"]),
             "cross-attention": count(*(layer.multihead_attn for layer in layers), *norms["norm2"]),
             "decoder feed-forward": count(*(module for layer in layers for module in (
                 layer.linear1, layer.linear2, layer.norm3)), decoder.transformer.norm),
             "output layer": count(decoder.fc_out)}
    if encoder.position_kind == "learned":
        parts["positions"] = count(encoder.positions, decoder.positions)
    return parts


def sequence_loss(logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over every non-<pad> target token."""
    return F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID)
