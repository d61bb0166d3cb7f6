"""The specification's LSTM encoder-decoder, readable next to its equations.

Encoder: x_t = E_src[s_t]; (h_t, c_t) = LSTM(x_t, h_{t-1}, c_{t-1}); it hands
(h_T, c_T) to the decoder. Decoder: starts from (h_T, c_T) with input <sos>;
at step t its input is the true y_{t-1} with probability gamma, otherwise the
argmax of its own previous logits; o_t = W_o h_t + b_o, p_t = softmax(o_t).
The loss is cross-entropy averaged over every non-<pad> target token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from playground.tasks import EOS_ID, PAD_ID, SOS_ID

State = tuple[torch.Tensor, torch.Tensor]
COIN_MODES = ("step", "token")


class Encoder(nn.Module):
    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, src: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Per-step outputs (B, T, H) for inspection, and the final (h_T, c_T)."""
        outputs, state = self.lstm(self.dropout(self.embedding(src)))
        return outputs, state


class Decoder(nn.Module):
    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.fc_out = nn.Linear(hidden_dim, vocab_size)

    def forward(self, inputs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Logits (B, S, V) for S known input tokens, run as one fused LSTM call."""
        outputs, state = self.lstm(self.dropout(self.embedding(inputs)), state)
        return self.fc_out(outputs), state


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
        if teacher_forcing_ratio >= 1.0:
            logits, _ = self.decoder(torch.cat([sos, tgt[:, :-1]], dim=1), state)
            return logits
        if coin not in COIN_MODES:
            raise ValueError(f"coin must be one of {COIN_MODES}, got {coin!r}")
        shape = (length,) if coin == "step" else (batch, length)
        if coin_draws is None:  # no draw at all when every step is free-running
            coin_draws = torch.rand(shape) if teacher_forcing_ratio > 0 else torch.ones(shape)
        teacher = coin_draws.cpu() < teacher_forcing_ratio
        if coin == "step":
            return self._decode_segments(tgt, state, sos, teacher.tolist())
        return self._decode_per_token(tgt, state, sos, teacher.to(tgt.device))

    def _decode_segments(self, tgt: torch.Tensor, state: State, sos: torch.Tensor,
                         teacher: list[bool]) -> torch.Tensor:
        """Each free-running step starts a segment; the teacher-forced steps after it run fused."""
        length = tgt.shape[1]
        starts = [0] + [t for t in range(1, length) if not teacher[t]]
        pieces: list[torch.Tensor] = []
        for start, end in zip(starts, [*starts[1:], length], strict=True):
            first = sos if start == 0 else pieces[-1][:, -1:].argmax(-1)
            logits, state = self.decoder(torch.cat([first, tgt[:, start:end - 1]], dim=1), state)
            pieces.append(logits)
        return torch.cat(pieces, dim=1)

    def _decode_per_token(self, tgt: torch.Tensor, state: State, sos: torch.Tensor,
                          teacher: torch.Tensor) -> torch.Tensor:
        inputs = sos
        steps: list[torch.Tensor] = []
        for t in range(tgt.shape[1]):
            if t > 0:
                inputs = torch.where(teacher[:, t:t + 1], tgt[:, t - 1:t], steps[-1].argmax(-1))
            logits, state = self.decoder(inputs, state)
            steps.append(logits)
        return torch.cat(steps, dim=1)

    @torch.inference_mode()
    def greedy_decode(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        """Predicted ids (B, <= max_len), each row <pad> after its first <eos>."""
        _, state = self.encoder(src)
        inputs = torch.full((src.shape[0], 1), self.sos_id, dtype=torch.long, device=src.device)
        finished = torch.zeros(src.shape[0], 1, dtype=torch.bool, device=src.device)
        predicted: list[torch.Tensor] = []
        for _ in range(max_len):
            logits, state = self.decoder(inputs, state)
            inputs = logits.argmax(-1)
            predicted.append(inputs.masked_fill(finished, PAD_ID))
            finished |= inputs == EOS_ID
            if bool(finished.all()):
                break
        return torch.cat(predicted, dim=1)


def sequence_loss(logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over every non-<pad> target token."""
    return F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID)
