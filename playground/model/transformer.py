"""The Transformer (Vaswani et al. 2017) in its pre-norm form, with torch's layers' math and parameter names.

Width d (`hidden_dim`), h heads of d_h = d / h, N layers per side (`num_layers`), dropout p.

Encoder: x = √d · E_src[s_p] + P(p), p = 0 at the first real token (sources are left-padded); then N times
    x = x + SelfAttention(LN_1(x))          source padding masked as keys
    x = x + FF(LN_2(x))                     FF(z) = W_2 ReLU(W_1 z + b_1) + b_2, W_1: 4d x d
and the memory m = LN(x) (the stack's final norm).
Decoder: y = √d · E_tgt[y_t] + P(t), <sos> at t = 0; then N times
    y = y + SelfAttention(LN_1(y))          causal: position t reads positions <= t
    y = y + CrossAttention(LN_2(y), m)      source padding masked as keys
    y = y + FF(LN_3(y))
and logits = W_o LN(y) + b_o (`decoder.fc_out`).
Attention (torch's nn.MultiheadAttention): q, k, v = the three d-row blocks of `in_proj_weight` (and bias) applied
to the queries' and keys' inputs, split into h heads; head_i = softmax(q_i k_iᵀ / √d_h) v_i over the allowed
keys; output = W_out [head_1; ...; head_h] + b_out (`out_proj`).
Positions (`positions`): sinusoidal P(p)[2i] = sin(p / 10000^(2i/d)), P(p)[2i+1] = cos(p / 10000^(2i/d));
learned, a `positions` embedding on each side (MAX_POSITIONS rows; a later position reads the last row); none.
Dropout (training only) where torch's layers put it: on the attention weights, after each sub-layer, inside FF, and
on the embedded input.

The stacks are torch's own modules, `encoder.transformer` (nn.TransformerEncoder of nn.TransformerEncoderLayer,
norm_first, ReLU, feed-forward 4d, a final LayerNorm) and `decoder.transformer` (nn.TransformerDecoder), so the
weights keep torch's names (`encoder.transformer.layers.0.self_attn.in_proj_weight`, `...linear1.weight`,
`decoder.transformer.layers.0.multihead_attn.in_proj_weight`, `...norm3.weight`, `decoder.transformer.norm.weight`).
The layers' math is written out here from those weights, so a step returns its attention weights per layer and head
and keeps a key/value cache; tests/test_transformer.py holds it to torch's own forward.

The decoder's state between steps is its cache: every layer's self-attention keys and values so far, two tensors
(layers, B, h, t, d_h). Teacher forcing means what it means for the recurrent models: γ = 1 is one causal pass over
the shifted target (`forward`); below 1 (`decode`) step t reads the true token where its coin says so, else the
argmax of step t - 1, found by cached steps without gradient, and then one causal pass over the inputs read gives
the logits, equal to the step loop's because step t's logits depend only on the inputs up to t (without dropout:
with it, the steps choose from the logits without dropout).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from playground.model.interface import Memory, State, StepExtras
from playground.model.step_hook import between_steps
from playground.model.tokens import PAD_ID

POSITIONS = ("sinusoidal", "learned", "none")
MAX_POSITIONS = 128  # rows of a learned `positions` table: longer than any task's sequences

Cross = list[tuple[torch.Tensor, torch.Tensor]]  # each decoder layer's keys and values of the memory


def sinusoids(positions: torch.Tensor, width: int) -> torch.Tensor:
    """P(p) (..., width) for the positions (...): sin at even dimensions 2i, cos at odd ones, angle p / 10000^(2i/d)."""
    pairs = torch.arange(0, width, 2, device=positions.device, dtype=torch.float32)
    angles = positions.unsqueeze(-1).float() / 10000.0 ** (pairs / width)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)[..., :width]


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, S, d) -> (B, h, S, d_h)."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def keys_values(attention: nn.MultiheadAttention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The keys and values (B, h, S, d_h) of the inputs x (B, S, d): the second and third blocks of in_proj."""
    _, w_k, w_v = attention.in_proj_weight.chunk(3)
    _, b_k, b_v = attention.in_proj_bias.chunk(3)
    return (split_heads(F.linear(x, w_k, b_k), attention.num_heads),
            split_heads(F.linear(x, w_v, b_v), attention.num_heads))


def attend(attention: nn.MultiheadAttention, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
           allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention of the queries' inputs x (B, S, d) over projected keys and values (B, h, T, d_h),
    where `allowed` (broadcast to (B, h, S, T)) is true: the output (B, S, d) and the weights (B, h, S, T)."""
    w_q = attention.in_proj_weight.chunk(3)[0]
    b_q = attention.in_proj_bias.chunk(3)[0]
    queries = split_heads(F.linear(x, w_q, b_q), attention.num_heads)
    scores = queries @ keys.transpose(-1, -2) / math.sqrt(queries.shape[-1])
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    mixed = F.dropout(weights, attention.dropout, attention.training) @ values
    return attention.out_proj(mixed.transpose(1, 2).flatten(2)), weights


def feed_forward(layer: nn.TransformerEncoderLayer | nn.TransformerDecoderLayer, x: torch.Tensor) -> torch.Tensor:
    return layer.linear2(layer.dropout(F.relu(layer.linear1(x))))


def _layer(width: int, heads: int, dropout: float, kind: type[nn.Module]) -> nn.Module:
    return kind(width, heads, 4 * width, dropout, activation="relu", batch_first=True, norm_first=True)


class _Embedded(nn.Module):
    """What both sides start with: their token embedding scaled by √d, the positions, dropout."""

    def __init__(self, vocab_size: int, width: int, dropout: float, positions: str) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
        self.width = width
        self.position_kind = positions
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=PAD_ID)
        nn.init.normal_(self.embedding.weight, std=width ** -0.5)  # unit scale once multiplied by √d
        with torch.no_grad():
            self.embedding.weight[PAD_ID] = 0.0
        if positions == "learned":
            self.positions = nn.Embedding(MAX_POSITIONS, width)
        self.dropout = nn.Dropout(dropout)

    def embed(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x (B, S, d) for the tokens (B, S) at their positions (B, S) or (S,)."""
        x = self.embedding(tokens) * math.sqrt(self.width)
        if self.position_kind == "sinusoidal":
            x = x + sinusoids(positions, self.width).to(x.dtype)
        elif self.position_kind == "learned":
            x = x + self.positions(positions.clamp(max=MAX_POSITIONS - 1))
        return self.dropout(x)


class TransformerEncoder(_Embedded):
    def __init__(self, vocab_size: int, width: int, heads: int, num_layers: int, dropout: float,
                 positions: str) -> None:
        super().__init__(vocab_size, width, dropout, positions)
        self.heads = heads
        self.transformer = nn.TransformerEncoder(_layer(width, heads, dropout, nn.TransformerEncoderLayer),
                                                 num_layers, norm=nn.LayerNorm(width), enable_nested_tensor=False)
        self.transformer.layers = nn.ModuleList(  # each layer its own initial weights, not copies of one
            _layer(width, heads, dropout, nn.TransformerEncoderLayer) for _ in range(num_layers))

    def empty_state(self, batch: int, like: torch.Tensor) -> State:
        """The decoder's cache before its first step (the decoder has as many layers and heads as the encoder)."""
        empty = like.new_zeros(len(self.transformer.layers), batch, self.heads, 0, self.width // self.heads)
        return empty, empty

    def _run(self, src: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The memory (B, T, d), the residual stream after each layer and each layer's weights (B, h, T, T)."""
        real = src != PAD_ID
        positions = (real.cumsum(1) - 1).clamp(min=0)  # 0 at the first real token
        x = self.embed(src, positions)
        allowed = real[:, None, None, :]
        streams, maps = [], []
        for layer in self.transformer.layers:
            between_steps()
            z = layer.norm1(x)
            attended, weights = attend(layer.self_attn, z, *keys_values(layer.self_attn, z), allowed)
            x = x + layer.dropout1(attended)
            x = x + layer.dropout2(feed_forward(layer, layer.norm2(x)))
            streams.append(x)
            maps.append(weights)
        return self.transformer.norm(x), streams, maps

    def forward(self, src: torch.Tensor) -> tuple[torch.Tensor, State]:
        """The memory (B, T, d) and the decoder's empty cache."""
        memory, _, _ = self._run(src)
        return memory, self.empty_state(src.shape[0], memory)

    def trace(self, src: torch.Tensor) -> tuple[torch.Tensor, State, list[StepExtras]]:
        """As `forward`, with what each position shows: its residual stream after every layer, and its row of every
        layer's self-attention per head ("self": (B, layers, h, T))."""
        memory, streams, maps = self._run(src)
        stacked = torch.stack(maps, dim=1)  # (B, layers, h, T, T)
        steps = [StepExtras([{"h": stream[:, p]} for stream in streams], None, ("h",),
                            {"self": stacked[:, :, :, p]}) for p in range(src.shape[1])]
        return memory, self.empty_state(src.shape[0], memory), steps


class TransformerDecoder(_Embedded):
    def __init__(self, vocab_size: int, width: int, heads: int, num_layers: int, dropout: float,
                 positions: str) -> None:
        super().__init__(vocab_size, width, dropout, positions)
        self.transformer = nn.TransformerDecoder(_layer(width, heads, dropout, nn.TransformerDecoderLayer),
                                                 num_layers, norm=nn.LayerNorm(width))
        self.transformer.layers = nn.ModuleList(
            _layer(width, heads, dropout, nn.TransformerDecoderLayer) for _ in range(num_layers))
        self.fc_out = nn.Linear(width, vocab_size)

    def cross(self, memory: Memory) -> Cross:
        """Every layer's keys and values of the memory: the same at every step, so computed once per decoding."""
        return [keys_values(layer.multihead_attn, memory.outputs) for layer in self.transformer.layers]

    def _run(self, inputs: torch.Tensor, state: State, memory: Memory, cross: Cross) -> tuple[
            torch.Tensor, State, list[torch.Tensor], dict[str, list[torch.Tensor]]]:
        """Logits (B, S, V) for S new inputs after the cached ones, the longer cache, the residual stream after
        each layer (B, S, d) and each layer's self- and cross-attention weights (B, h, S, t) and (B, h, S, T)."""
        past_keys, past_values = state
        start, length = past_keys.shape[3], inputs.shape[1]
        positions = torch.arange(start, start + length, device=inputs.device)
        y = self.embed(inputs, positions)
        causal = torch.ones(length, start + length, dtype=torch.bool, device=inputs.device).tril(start)
        real = memory.real[:, None, None, :]
        new_keys, new_values, streams = [], [], []
        maps: dict[str, list[torch.Tensor]] = {"self": [], "cross": []}
        for layer, past_k, past_v, (memory_keys, memory_values) in zip(
                self.transformer.layers, past_keys, past_values, cross, strict=True):
            z = layer.norm1(y)
            keys, values = keys_values(layer.self_attn, z)
            keys, values = torch.cat([past_k, keys], dim=2), torch.cat([past_v, values], dim=2)
            attended, self_weights = attend(layer.self_attn, z, keys, values, causal)
            y = y + layer.dropout1(attended)
            attended, cross_weights = attend(layer.multihead_attn, layer.norm2(y), memory_keys, memory_values, real)
            y = y + layer.dropout2(attended)
            y = y + layer.dropout3(feed_forward(layer, layer.norm3(y)))
            new_keys.append(keys)
            new_values.append(values)
            streams.append(y)
            maps["self"].append(self_weights)
            maps["cross"].append(cross_weights)
        logits = self.fc_out(self.transformer.norm(y))
        return logits, (torch.stack(new_keys), torch.stack(new_values)), streams, maps

    def step(self, token: torch.Tensor, state: State, memory: Memory | None = None) -> tuple[
            torch.Tensor, State, StepExtras]:
        """The one decoder step: logits (B, V), the cache one position longer, and what the step shows: every
        layer's residual stream, its attention rows per head ("self": (B, layers, h, t), "cross": (B, layers, h,
        T)), and the last layer's cross-attention averaged over heads as the alignment (B, T)."""
        memory = _needed(memory)
        logits, state, streams, maps = self._run(token.unsqueeze(1), state, memory, self.cross(memory))
        rows = {name: torch.stack(weights, dim=1)[:, :, :, 0] for name, weights in maps.items()}
        return logits[:, 0], state, StepExtras([{"h": stream[:, 0]} for stream in streams],
                                               rows["cross"][:, -1].mean(1), ("h",), rows)

    def select(self, state: State, rows: torch.Tensor) -> State:
        """The cache of some rows (beams), by index."""
        return tuple(part.index_select(1, rows) for part in state)

    def forward(self, inputs: torch.Tensor, state: State, memory: Memory | None = None) -> tuple[torch.Tensor, State]:
        """Logits (B, S, V) for S known inputs after the cached ones: one causal pass."""
        memory = _needed(memory)
        logits, state, _, _ = self._run(inputs, state, memory, self.cross(memory))
        return logits, state

    def decode(self, inputs: torch.Tensor, state: State, teacher: torch.Tensor, memory: Memory | None = None,
               stop_id: int | None = None) -> torch.Tensor:
        """Logits (B, S, V); step t reads inputs[:, t] where `teacher` ((S,) or (B, S), on the CPU) is true, else
        the argmax of step t - 1; step 0 always reads inputs[:, 0]. With `stop_id`, decoding may end early once
        every row has produced it. The cached steps choose the inputs; under gradient one causal pass over them
        then gives the logits (the same, by causality)."""
        memory = _needed(memory)
        teacher = teacher.clone()
        teacher[..., 0] = True
        forced = teacher.to(inputs.device).expand(inputs.shape)
        if not torch.is_grad_enabled():
            return self._steps(inputs, forced, state, memory, stop_id)[0]
        training = self.training
        self.eval()
        try:
            with torch.no_grad():
                _, read = self._steps(inputs, forced, state, memory, stop_id)
        finally:
            self.train(training)
        return self.forward(read, state, memory)[0]

    def _steps(self, inputs: torch.Tensor, forced: torch.Tensor, state: State, memory: Memory,
               stop_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached step loop: logits (B, S', V) and the inputs read (B, S'), S' <= S with `stop_id`."""
        cross = self.cross(memory)
        logits: list[torch.Tensor] = []
        read: list[torch.Tensor] = []
        finished = torch.zeros(inputs.shape[0], dtype=torch.bool, device=inputs.device)
        for t in range(inputs.shape[1]):
            between_steps()
            token = inputs[:, t] if t == 0 else torch.where(forced[:, t], inputs[:, t], logits[-1].argmax(-1))
            if stop_id is not None:
                finished |= token == stop_id
                if bool(finished.all()):
                    break
            step_logits, state, _, _ = self._run(token.unsqueeze(1), state, memory, cross)
            logits.append(step_logits[:, 0])
            read.append(token)
        return torch.stack(logits, dim=1), torch.stack(read, dim=1)


def _needed(memory: Memory | None) -> Memory:
    if memory is None:
        raise ValueError("a Transformer decoder needs the encoder's memory")
    return memory


def transformer_flops(width: int, num_layers: int, src_len: int, tgt_len: int) -> int:
    """The matrix products of one sequence, forward: per encoder layer and token the projections (4d²) and the
    feed-forward (8d²), 2 flops each, and attention's scores and mix over the source; per decoder layer and token
    the same plus cross-attention's query and output (2d²), its keys and values of every source token (2d² each)
    and its scores and mix."""
    d = width
    encoder = src_len * (24 * d * d + 4 * src_len * d)
    decoder = tgt_len * (32 * d * d + 4 * tgt_len * d + 4 * src_len * d) + src_len * 8 * d * d
    return num_layers * (encoder + decoder)


def transformer_activations(width: int, heads: int, num_layers: int, src_len: int, tgt_len: int) -> int:
    """Floats one sequence keeps for backward, per layer and token: the norms' inputs and outputs, q, k, v, the
    attention output, the feed-forward's 4d hidden before and after ReLU (about 18d), and every head's weights."""
    per_layer = (src_len + 2 * tgt_len) * 18 * width + heads * (src_len * src_len + tgt_len * (tgt_len + src_len))
    return num_layers * per_layer
