"""The specification's LSTM encoder-decoder, readable next to its equations.

Encoder: x_t = E_src[s_t]; (h_t, c_t) = LSTM(x_t, h_{t-1}, c_{t-1}); it hands
(h_T, c_T) to the decoder. Decoder: starts from (h_T, c_T) with input <sos>;
at step t its input is the true y_{t-1} with probability gamma, otherwise the
argmax of its own previous logits; o_t = W_o h_t + b_o, p_t = softmax(o_t).
The loss is cross-entropy averaged over every non-<pad> target token.

Speed (issue #6), same numbers: a sequence whose inputs are all known (the
source; the target at gamma = 1) is one fused nn.LSTM call, which oneDNN or
cuDNN run faster per step than any Python loop. A decoder whose own argmax
feeds back on two or more steps runs `_StepLoopLSTM` instead: the equations
with the modules' own weights, the input projection E W_ih^T + b as a V x 4H
table looked up per step, fc_out once over all steps, and a hand-written
backward in place of a dozen autograd nodes per step. With one free-running
step, the fused segments around it are faster; with dropout in training, the
modules themselves run (segments, or a per-step loop for per-token coins).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from playground.tasks import EOS_ID, PAD_ID, SOS_ID

State = tuple[torch.Tensor, torch.Tensor]
Layer = tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]  # W_ih (None: table), W_hh, b_ih + b_hh
COIN_MODES = ("step", "token")
FUSED_UP_TO = 1  # free-running steps up to which fused nn.LSTM segments beat the step loop (bench: 0.5 ms each)
STOP_CHECK_EVERY = 4  # greedy decoding asks the device whether every row has ended this often


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

    def decode(self, inputs: torch.Tensor, state: State, teacher: list[bool] | torch.Tensor,
               stop_id: int | None = None) -> torch.Tensor:
        """Logits (B, S, V) where a step reads inputs[:, t] if teacher[t] (or teacher[:, t]), else its own argmax.

        Step 0 always reads inputs[:, 0]. With `stop_id`, decoding may end early once every row produced it.
        """
        if isinstance(teacher, list) and (_dropout_active(self) or teacher[1:].count(False) <= FUSED_UP_TO):
            return self._decode_segments(inputs, state, teacher)
        if _dropout_active(self):
            return self._decode_per_step(inputs, state, teacher)
        readout = (self.fc_out.weight.detach(), self.fc_out.bias.detach())
        mask = teacher if isinstance(teacher, list) else teacher.t()
        feed = _Feed(inputs.t(), mask, readout, stop_id)
        outputs, _, _ = run_lstm(feed, state, self.embedding, self.lstm)
        return self.fc_out(outputs.transpose(0, 1))

    def _decode_segments(self, inputs: torch.Tensor, state: State, teacher: list[bool]) -> torch.Tensor:
        """Each free-running step starts a segment; the teacher-forced steps after it run as one fused call."""
        length = inputs.shape[1]
        starts = [0] + [t for t in range(1, length) if not teacher[t]]
        pieces: list[torch.Tensor] = []
        for start, end in zip(starts, [*starts[1:], length], strict=True):
            first = inputs[:, :1] if start == 0 else pieces[-1][:, -1:].argmax(-1)
            logits, state = self(torch.cat([first, inputs[:, start + 1:end]], dim=1), state)
            pieces.append(logits)
        return torch.cat(pieces, dim=1)

    def _decode_per_step(self, inputs: torch.Tensor, state: State, teacher: torch.Tensor) -> torch.Tensor:
        """The straightforward loop for per-token coins, one module call per step, so dropout draws as nn.LSTM does."""
        step_inputs = inputs[:, :1]
        steps: list[torch.Tensor] = []
        for t in range(inputs.shape[1]):
            if t > 0:
                step_inputs = torch.where(teacher[:, t:t + 1], inputs[:, t:t + 1], steps[-1].argmax(-1))
            logits, state = self(step_inputs, state)
            steps.append(logits)
        return torch.cat(steps, dim=1)


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
        teacher = coin_draws.cpu() < teacher_forcing_ratio  # coins live on the CPU: no device sync per step
        return self.decoder.decode(inputs, state, teacher.tolist() if coin == "step" else teacher.to(tgt.device))

    @torch.inference_mode()
    def greedy_decode(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        """Predicted ids (B, <= max_len), each row <pad> after its first <eos>."""
        _, state = self.encoder(src)
        inputs = torch.full((src.shape[0], max_len), self.sos_id, dtype=torch.long, device=src.device)
        predicted = self.decoder.decode(inputs, state, [True] + [False] * (max_len - 1), EOS_ID).argmax(-1)
        is_eos = predicted == EOS_ID
        seen = is_eos.cumsum(1)
        predicted = predicted.masked_fill(seen - is_eos.long() > 0, PAD_ID)
        ends = torch.where(seen[:, -1] > 0, is_eos.long().argmax(1) + 1, predicted.shape[1])
        return predicted[:, : int(ends.max())]


def sequence_loss(logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over every non-<pad> target token."""
    return F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID)


def _dropout_active(module: Encoder | Decoder) -> bool:
    return module.training and module.dropout.p > 0


@dataclass(frozen=True)
class _Feed:
    """What layer 0 reads at each step: tokens (S, B), replaced by the previous step's argmax where not teacher."""

    tokens: torch.Tensor
    teacher: list[bool] | torch.Tensor | None = None  # per step, per (S, B) token, or None: always tokens
    readout: tuple[torch.Tensor, torch.Tensor] | None = None  # fc_out weight and bias, for the argmax
    stop_id: int | None = None

    def token(self, t: int, h_top: torch.Tensor) -> torch.Tensor:
        if t == 0 or self.teacher is None or (isinstance(self.teacher, list) and self.teacher[t]):
            return self.tokens[t]
        weight, bias = self.readout
        own = torch.addmm(bias, h_top, weight.t()).argmax(1)
        return own if isinstance(self.teacher, list) else torch.where(self.teacher[t], self.tokens[t], own)


def run_lstm(feed: _Feed, state: State, embedding: nn.Embedding,
             lstm: nn.LSTM) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-layer outputs (S, B, H) and the final (h, c) of `lstm` run over `feed`, with its own weights."""
    table, flat = _step_loop_weights(embedding, lstm)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (*state, table, *flat)):
        outputs, h_n, c_n, _ = _StepLoopLSTM.apply(feed, *state, table, *flat)
        return outputs, h_n, c_n
    hs, cs, *_ = _run(feed, *state, table, _layers(flat))
    return hs[-1, 1:], hs[:, -1].clone(), cs[:, -1].clone()


def _step_loop_weights(embedding: nn.Embedding, lstm: nn.LSTM) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The input table E W_ih^T + b and the layers' weights, cell-gate rows doubled.

    Doubling is exact in floating point and turns tanh(x) into 2 sigmoid(2x) - 1, so one sigmoid covers all
    four gates (torch's CPU tanh is several times slower than its sigmoid).
    """
    hidden = lstm.hidden_size
    scale = embedding.weight.new_ones(4 * hidden)
    scale[2 * hidden: 3 * hidden] = 2.0
    ids = torch.arange(embedding.num_embeddings, device=embedding.weight.device)
    table = F.linear(embedding(ids), lstm.weight_ih_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0) * scale  # pad row: no grad
    flat = [lstm.weight_hh_l0 * scale[:, None]]
    for k in range(1, lstm.num_layers):
        flat += [getattr(lstm, f"weight_ih_l{k}") * scale[:, None], getattr(lstm, f"weight_hh_l{k}") * scale[:, None],
                 (getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")) * scale]
    return table, flat


def _layers(flat: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> list[Layer]:
    return [(None, flat[0], None)] + [(flat[k], flat[k + 1], flat[k + 2]) for k in range(1, len(flat), 3)]


def _run(feed: _Feed, h0: torch.Tensor, c0: torch.Tensor, table: torch.Tensor,
         layers: list[Layer]) -> tuple[torch.Tensor, ...]:
    """The LSTM equations step by step; returns hs, cs (n, S+1, B, H), gate activations, tanh(c), tokens read."""
    num_layers, batch, hidden = h0.shape
    length = feed.tokens.shape[0]
    hs = h0.new_empty(num_layers, length + 1, batch, hidden)
    cs = torch.empty_like(hs)
    hs[:, 0], cs[:, 0] = h0, c0
    acts = h0.new_empty(num_layers, length, batch, 4 * hidden)  # i, f, g, o after their nonlinearity
    tanh_c = h0.new_empty(num_layers, length, batch, hidden)
    # per-step views, made once: indexing inside the loop costs more than the small ops themselves
    h_at, c_at, gates_at, tanh_at = ([x.unbind(0) for x in buffer] for buffer in (hs, cs, acts, tanh_c))
    i_at, f_at, g_at, o_at = ([x.unbind(0) for x in gate] for gate in acts.view(*acts.shape[:3], 4, hidden).unbind(3))
    finished = torch.zeros(batch, dtype=torch.bool, device=h0.device)
    chosen: list[torch.Tensor] = []
    for t in range(length):
        token = feed.token(t, h_at[-1][t])
        if feed.stop_id is not None and t > 0:
            finished |= token == feed.stop_id
            if t % STOP_CHECK_EVERY == 0 and bool(finished.all()):
                length = t
                break
        chosen.append(token)
        for k, (w_ih, w_hh, bias) in enumerate(layers):
            gates, c, tanh = gates_at[k][t], c_at[k][t + 1], tanh_at[k][t]
            if w_ih is None:
                torch.index_select(table, 0, token, out=gates)
            else:
                torch.addmm(bias, h_at[k - 1][t + 1], w_ih.t(), out=gates)
            gates.addmm_(h_at[k][t], w_hh.t()).sigmoid_()
            g_at[k][t].mul_(2).sub_(1)
            torch.mul(f_at[k][t], c_at[k][t], out=c).addcmul_(i_at[k][t], g_at[k][t])
            torch.mul(c, 2, out=tanh).sigmoid_().mul_(2).sub_(1)
            torch.mul(o_at[k][t], tanh, out=h_at[k][t + 1])
    return hs[:, : length + 1], cs[:, : length + 1], acts[:, :length], tanh_c[:, :length], torch.stack(chosen)


class _StepLoopLSTM(torch.autograd.Function):
    """A stacked LSTM whose layer-0 inputs are table rows; backward is the LSTM's gradient written out."""

    @staticmethod
    def forward(ctx, feed: _Feed, h0: torch.Tensor, c0: torch.Tensor, table: torch.Tensor,
                *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hs, cs, acts, tanh_c, tokens = _run(feed, h0, c0, table, _layers(flat))
        ctx.set_materialize_grads(False)
        ctx.vocab_size = table.shape[0]
        ctx.save_for_backward(hs, cs, acts, tanh_c, tokens, *flat)
        ctx.mark_non_differentiable(tokens)
        return hs[-1, 1:], hs[:, -1].clone(), cs[:, -1].clone(), tokens

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: torch.Tensor | None, d_hn: torch.Tensor | None, d_cn: torch.Tensor | None,
                 _: None) -> tuple[torch.Tensor | None, ...]:
        hs, cs, acts, tanh_c, tokens, *flat = ctx.saved_tensors
        layers = _layers(flat)
        num_layers, length, batch, four_h = acts.shape
        hidden = four_h // 4
        i, f, g, o = acts.view(num_layers, length, batch, 4, hidden).unbind(3)
        # d pre-activation = partner * slope * (dc for i, f, g; dh for o); the g rows were doubled, so tanh'/2.
        # The gradients overwrite `partner` step by step.
        partner = torch.stack([g, cs[:, :-1], i, tanh_c], dim=3).view_as(acts)
        partner.mul_(acts * (1 - acts))  # sigmoid' = s (1 - s)
        partner.view(num_layers, length, batch, 4, hidden)[..., 2, :] = i * (1 - g * g) / 2
        through_c = o * (1 - tanh_c * tanh_c)  # dc_t += dh_t * o * tanh'(c_t)
        zeros = hs.new_zeros(num_layers, batch, hidden)
        dh = list((zeros if d_hn is None else d_hn).unbind(0))
        dc = list((zeros if d_cn is None else d_cn).unbind(0))
        upstream = acts.new_empty(batch, four_h)
        grad_at, through_at, f_at = ([x.unbind(0) for x in y] for y in (partner, through_c, f))
        for t in reversed(range(length)):
            from_above = None if d_out is None else d_out[t]
            for k in reversed(range(num_layers)):
                w_ih, w_hh, _ = layers[k]
                dh_t = dh[k] if from_above is None else dh[k] + from_above
                dc_t = torch.addcmul(dc[k], dh_t, through_at[k][t])
                grad = grad_at[k][t].mul_(torch.cat([dc_t, dc_t, dc_t, dh_t], dim=1, out=upstream))
                dc[k] = dc_t * f_at[k][t]
                dh[k] = grad @ w_hh
                from_above = None if w_ih is None else grad @ w_ih
        grads: list[torch.Tensor | None] = []
        for k, (w_ih, _, _) in enumerate(layers):
            rows = partner[k].view(length * batch, four_h)
            if w_ih is None:
                d_table = rows.new_zeros(ctx.vocab_size, four_h).index_add_(0, tokens.flatten(), rows)
            else:
                grads += [rows.t() @ hs[k - 1, 1:].reshape(-1, hidden)]
            grads += [rows.t() @ hs[k, :-1].reshape(-1, hidden)]
            if w_ih is not None:
                grads += [rows.sum(0)]
        return None, torch.stack(dh), torch.stack(dc), d_table, *grads
