"""The specification's LSTM encoder-decoder, readable next to its equations.

Encoder: x_t = E_src[s_t]; (h_t, c_t) = LSTM(x_t, h_{t-1}, c_{t-1}); it hands
(h_T, c_T) to the decoder. Decoder: starts from (h_T, c_T) with input <sos>;
at step t its input is the true y_{t-1} with probability gamma, otherwise the
argmax of its own previous logits; o_t = W_o h_t + b_o, p_t = softmax(o_t).
The loss is cross-entropy averaged over every non-<pad> target token.

Speed (issues #6, #12), same numbers: gamma = 1 is one fused nn.LSTM call over
the shifted target. Below 1 a step may read the model's own argmax, which is
known only once the step before has run, so the decoder's LSTM runs step by
step through `recurrence.unroll` (its weights, its gate equations, a
hand-written backward); fc_out runs once over all steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from playground.core import interrupt
from playground.core.recurrence import flops_per_token, layers_of, unroll
from playground.core.tasks import EOS_ID, PAD_ID, SOS_ID

State = tuple[torch.Tensor, torch.Tensor]
COIN_MODES = ("step", "token")


class _EmbeddedLSTM(nn.Module):
    """What both sides are made of: their own embedding (dropout on it), then a stacked LSTM."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)


class Encoder(_EmbeddedLSTM):
    def forward(self, src: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Per-step outputs (B, T, H) for inspection, and the final (h_T, c_T).

        One LSTM call, except at sizes where it would run for seconds: there the same LSTM reads the source a
        few steps at a time, carrying (h, c), so that a stop can land in between (`interrupt`).
        """
        lstm = self.lstm
        embedded = self.dropout(self.embedding(src))
        chunk = interrupt.time_chunk(src.shape[0] * flops_per_token(lstm.input_size, lstm.hidden_size,
                                                                    lstm.num_layers))
        outputs, state = [], None
        for part in embedded.split(chunk, dim=1):
            interrupt.check()
            out, state = lstm(part, state)
            interrupt.check_on_gradient(state[0])
            outputs.append(out)
        return torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0], state


class Decoder(_EmbeddedLSTM):
    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__(vocab_size, emb_dim, hidden_dim, num_layers, dropout)
        self.fc_out = nn.Linear(hidden_dim, vocab_size)

    def forward(self, inputs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Logits (B, S, V) for S known input tokens, run as one fused LSTM call."""
        outputs, state = self.lstm(self.dropout(self.embedding(inputs)), state)
        return self.fc_out(outputs), state

    def decode(self, inputs: torch.Tensor, state: State, teacher: torch.Tensor,
               stop_id: int | None = None) -> torch.Tensor:
        """Logits (B, S, V); step t reads inputs[:, t] where `teacher` is true, else its own previous argmax.

        `teacher` is (S,), one coin per step for the whole batch, or (B, S), one per token, on the CPU; step 0
        always reads inputs[:, 0]. The same LSTM (its own weights, its dropout), run step by step by
        `recurrence.unroll`. With `stop_id`, decoding may end early once every row has produced it.
        """
        teacher = teacher.clone()
        teacher[..., 0] = True
        dropout = self.dropout.p if self.training else 0.0
        outputs, _ = unroll(self.embedding.weight, layers_of(self.lstm), inputs, state, teacher,
                            (self.fc_out.weight, self.fc_out.bias), dropout, stop_id, PAD_ID)
        return self.fc_out(outputs)


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
    ) -> None:
        super().__init__()
        self.encoder = Encoder(src_vocab_size, emb_dim, hidden_dim, num_layers, dropout)
        self.decoder = Decoder(tgt_vocab_size, emb_dim, hidden_dim, num_layers, dropout)
        self.sos_id = sos_id

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
        _, state = self.encoder(src)
        batch, length = tgt.shape
        sos = torch.full((batch, 1), self.sos_id, dtype=torch.long, device=tgt.device)
        inputs = torch.cat([sos, tgt[:, :-1]], dim=1)
        if teacher_forcing_ratio >= 1.0:
            logits, _ = self.decoder(inputs, state)
            return logits
        if coin not in COIN_MODES:
            raise ValueError(f"coin must be one of {COIN_MODES}, got {coin!r}")
        shape = (length,) if coin == "step" else (batch, length)
        if coin_draws is None:  # no draw at all when every step is free-running
            coin_draws = torch.rand(shape) if teacher_forcing_ratio > 0 else torch.ones(shape)
        return self.decoder.decode(inputs, state, coin_draws.cpu() < teacher_forcing_ratio)

    @torch.inference_mode()
    def greedy_decode(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        """Predicted ids (B, <= max_len), each row <pad> after its first <eos>."""
        _, state = self.encoder(src)
        inputs = torch.full((src.shape[0], max_len), self.sos_id, dtype=torch.long, device=src.device)
        teacher = torch.zeros(max_len, dtype=torch.bool)
        teacher[0] = True
        predicted = self.decoder.decode(inputs, state, teacher, EOS_ID).argmax(-1)
        is_eos = predicted == EOS_ID
        seen = is_eos.cumsum(1)
        predicted = predicted.masked_fill(seen - is_eos.long() > 0, PAD_ID)
        ends = torch.where(seen[:, -1] > 0, is_eos.long().argmax(1) + 1, predicted.shape[1])
        return predicted[:, : int(ends.max())]


def sequence_loss(logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over every non-<pad> target token."""
    return F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID)
