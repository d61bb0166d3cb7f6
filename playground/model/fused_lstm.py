"""Fast path: an LSTM over token ids, step by step, with a hand-written backward (`unroll`).

Serves the LSTM (any number of layers, any attention, dropout) wherever a decoder step may read the model's own
previous argmax (γ < 1, greedy decoding), which splits the fused nn.LSTM into one call per step; and the K-model
engine's stacked path (`training/stacked.py`: K LSTMs without attention as one bmm). Not the GRU, which steps
through `Decoder.step`. The equations are the cell's (`cells.py`); tests/test_model_fast.py and tests/test_family.py
hold this path to a loop of `Decoder.step` and to the equations, tests/test_recurrence.py its backward to finite
differences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from playground.model.cells import LayerWeights
from playground.model.step_hook import between_steps

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, ..., B, H)
Readout = Callable[[torch.Tensor], torch.Tensor]  # the logits of the top h (..., B, H)
STOP_CHECK_EVERY = 4  # early-stopping decoding asks the device whether every row has ended this often


@dataclass(frozen=True)
class _Plan:
    """What `unroll` reads but does not differentiate. Time comes first: (L, ..., B) for K models too, so the
    slice of one step is contiguous."""

    ids: torch.Tensor  # (L, ..., B) input tokens
    teacher: torch.Tensor | None  # (L, ..., B) bool: step t reads ids[t]; elsewhere its own previous argmax
    free_steps: frozenset[int]  # the steps where at least one row reads its own argmax
    readout: Readout | None  # the logits of the top h (..., B, H), whose argmax a free-running step reads
    input_mask: torch.Tensor | None  # dropout on the embedded inputs, (L, ..., B, E), already scaled
    layer_masks: tuple[torch.Tensor, ...]  # dropout between layers, (L, ..., B, H) each
    stop_id: int | None
    pad_id: int


def unroll(embedding: torch.Tensor, layers: list[LayerWeights], inputs: torch.Tensor, state: LSTMState,
           teacher: torch.Tensor | None = None,
           readout: Readout | tuple[torch.Tensor, torch.Tensor] | None = None,
           dropout: float = 0.0, stop_id: int | None = None, pad_id: int = 0) -> tuple[torch.Tensor, LSTMState]:
    """A stacked LSTM over token ids, step by step, with a hand-written backward: the top layer's h at every step
    (..., B, L, H) and the final (h, c) (layers, ..., B, H).

    `teacher` (broadcastable to inputs' (..., B, L), on the CPU) says where step t reads inputs[t]; elsewhere it
    reads the argmax of `readout` applied to the top h of step t - 1 (free-running), without gradient: the model's
    output layer, attention included, or an output layer's (weight (..., V, H), bias (..., V)).
    Why by hand: a free-running step splits nn.LSTM into one fused call per step, and each call pays oneDNN's
    fixed cost (about 0.7 ms fwd + bwd at the default size), and autograd over the equations records ~25
    ops a step. Here the forward writes gates and states into buffers, the backward runs the recurrence back
    with 6 plain ops and one matmul a step, and every weight gradient is one matmul over all steps.

    A leading (K,) on the embedding, the weights, `state` and (optionally) `inputs` runs K models at once
    (bmm). `dropout` > 0 draws the masks nn.LSTM and the model's embedding dropout would (training only).
    `stop_id` (inference) ends early once every row has read it.
    """
    lead = embedding.shape[:-2]
    batch, length = inputs.shape[-2:]
    ids = inputs.expand(*lead, batch, length).movedim(-1, 0)
    free_steps: frozenset[int] = frozenset()
    if teacher is not None:
        teacher = teacher.expand(*lead, batch, length).movedim(-1, 0)
        every_row_forced = teacher.reshape(length, -1).all(1).tolist()
        free_steps = frozenset(t for t in range(1, length) if not every_row_forced[t])
        teacher = teacher.to(inputs.device)

    def mask(width: int) -> torch.Tensor:
        return torch.nn.functional.dropout(embedding.new_ones(length, *lead, batch, width), dropout)

    masks = [mask(embedding.shape[-1])] + [mask(layer.w_hh.shape[-2]) for layer in layers[:-1]] \
        if dropout > 0.0 else [None]
    if isinstance(readout, tuple):
        readout = _linear(*readout)
    plan = _Plan(ids, teacher, free_steps, readout, masks[0], tuple(masks[1:]), stop_id, pad_id)
    weights = [tensor for layer in layers for tensor in (layer.w_ih, layer.w_hh, layer.bias)]
    outputs, h_n, c_n = _Unrolled.apply(plan, embedding, state[0], state[1], *weights)
    return outputs, (h_n, c_n)


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> Readout:
    return lambda h: torch.matmul(h, weight.transpose(-1, -2)) + bias.unsqueeze(-2)


def _lookup(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows of an embedding table (V, E), or of K tables (K, V, E) for ids (..., K, B)."""
    if table.dim() == 2:
        return table[ids]
    return table[torch.arange(table.shape[0], device=ids.device).view(-1, 1), ids]


def _over_steps(x: torch.Tensor) -> torch.Tensor:
    """(L, ..., B, X) as (..., L * B, X): every step's rows, for one matmul over all steps."""
    return x.movedim(0, -3).flatten(-3, -2)


def _project_steps(layer: LayerWeights, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """W_ih x + b for all steps of x (L, ..., B, D) in one matmul, as one (..., B, 4H) view per step."""
    projected = layer.project(_over_steps(x)).unflatten(-2, (x.shape[0], x.shape[-2]))  # (..., L, B, 4H)
    return projected.unbind(-3)


class _Unrolled(torch.autograd.Function):
    """`unroll`'s recurrence. Buffers are (L, ..., B, X) (time first); one view per step is taken once."""

    @staticmethod
    def forward(ctx: Any, plan: _Plan, embedding: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
                *weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        layers = [LayerWeights(weights[k], weights[k + 1].contiguous(), weights[k + 2])
                  for k in range(0, len(weights), 3)]
        length, hidden = plan.ids.shape[0], h0.shape[-1]
        shape = plan.ids.shape[1:]  # (..., B)
        tokens = plan.ids.clone() if plan.free_steps else plan.ids
        x0 = _lookup(embedding, tokens)
        if plan.input_mask is not None:
            x0 = x0 * plan.input_mask
        projected = _project_steps(layers[0], x0)
        gates = [h0.new_empty(length, *shape, 4 * hidden) for _ in layers]  # i, f, g, o after activation
        c_steps = [h0.new_empty(length + 1, *shape, hidden) for _ in layers]  # c_steps[k][t] = c before step t
        hs = [h0.new_empty(length + 1, *shape, hidden) for _ in layers]
        tanh_c = [h0.new_empty(length, *shape, hidden) for _ in layers]
        inputs = [x0] + [h0.new_empty(length, *shape, hidden) if plan.layer_masks else h[1:] for h in hs[:-1]]
        for k in range(len(layers)):
            hs[k][0], c_steps[k][0] = h0[k], c0[k]
        g_t, c_t, h_t, tc_t, in_t = ([x.unbind(0) for x in buffer] for buffer in (gates, c_steps, hs, tanh_c, inputs))
        masks_t = [mask.unbind(0) for mask in plan.layer_masks]
        steps = length
        finished = torch.zeros(shape, dtype=torch.bool, device=tokens.device)
        for t in range(length):
            between_steps()
            if t in plan.free_steps:
                own = plan.readout(h_t[-1][t]).argmax(-1)
                token = torch.where(plan.teacher[t], plan.ids[t], own)
                tokens[t] = token
                x = _lookup(embedding, token)
                if plan.input_mask is not None:
                    x = x * plan.input_mask[t]
                x0[t] = x
                projected[t].copy_(layers[0].project(x))
                if plan.stop_id is not None:
                    finished |= token == plan.stop_id
                    if t % STOP_CHECK_EVERY == 0 and bool(finished.all()):  # a device sync: not every step
                        steps = t
                        break
            for k, layer in enumerate(layers):
                if k == 0:
                    x_proj = projected[t]
                else:
                    below = h_t[k - 1][t + 1]
                    if masks_t:
                        below = torch.mul(below, masks_t[k - 1][t], out=in_t[k][t])
                    x_proj = layer.project(below)
                _lstm_step_into(layer, x_proj, h_t[k][t], c_t[k][t], g_t[k][t], c_t[k][t + 1], tc_t[k][t],
                              h_t[k][t + 1])
        ctx.plan, ctx.steps, ctx.layers = plan, steps, layers
        ctx.buffers = (tokens, inputs, gates, c_steps, tanh_c, hs)
        ctx.save_for_backward(embedding)
        ctx.set_materialize_grads(False)
        outputs = hs[-1][1:steps + 1].movedim(0, -2).contiguous()
        return outputs, torch.stack([h[steps] for h in hs]), torch.stack([c[steps] for c in c_steps])

    @staticmethod
    def backward(ctx: Any, d_outputs: torch.Tensor | None, d_h: torch.Tensor | None,
                 d_c: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        if ctx.buffers is None:
            raise RuntimeError("unroll's backward runs once: it turns the saved gates into their gradients")
        plan, steps, layers = ctx.plan, ctx.steps, ctx.layers
        tokens, inputs, gates, c_steps, tanh_c, hs = ctx.buffers
        ctx.buffers = None
        (embedding,) = ctx.saved_tensors
        count = len(layers)
        d_out_t = d_outputs.movedim(-2, 0).unbind(0) if d_outputs is not None else None
        dh_next = [d_h[k] if d_h is not None else torch.zeros_like(hs[k][0]) for k in range(count)]
        dc_next = [d_c[k] if d_c is not None else torch.zeros_like(c_steps[k][0]) for k in range(count)]
        forget = [_to_coefficients(gates[k][:steps], c_steps[k][:steps], tanh_c[k][:steps]) for k in range(count)]
        d_gates = [g[:steps] for g in gates]  # in place: each coefficient times dc (or dh) is that gate's gradient
        hidden = hs[0].shape[-1]
        ifg = [g[..., :3 * hidden].unflatten(-1, (3, hidden)).unbind(0) for g in d_gates]
        out_gate = [g[..., 3 * hidden:].unbind(0) for g in d_gates]
        d_step_t = [g.unbind(0) for g in d_gates]
        dc_coef_t = [tc.unbind(0) for tc in tanh_c]
        forget_t = [f.unbind(0) for f in forget]
        masks_t = [mask.unbind(0) for mask in plan.layer_masks]
        w_hh_t = [layer.w_hh.transpose(-1, -2).contiguous() for layer in layers]
        w_ih_t = [layer.w_ih.transpose(-1, -2).contiguous() for layer in layers]
        for t in reversed(range(steps)):
            between_steps()
            d_below = None
            for k in reversed(range(count)):
                dh = dh_next[k]
                if d_out_t is not None and k == count - 1:
                    dh = dh + d_out_t[t]
                if d_below is not None:
                    dh = dh + d_below
                dc = torch.addcmul(dc_next[k], dh, dc_coef_t[k][t])
                ifg[k][t].mul_(dc.unsqueeze(-2))
                out_gate[k][t].mul_(dh)
                dc_next[k] = dc * forget_t[k][t]
                dh_next[k] = torch.matmul(d_step_t[k][t], w_hh_t[k])
                if k > 0:
                    d_below = torch.matmul(d_step_t[k][t], w_ih_t[k])
                    if masks_t:
                        d_below = d_below * masks_t[k - 1][t]
        d_weights: list[torch.Tensor | None] = []
        for k in range(count):
            flat = _over_steps(d_gates[k])
            d_weights += [torch.matmul(_over_steps(inputs[k][:steps]).transpose(-1, -2), flat),
                          torch.matmul(_over_steps(hs[k][:steps]).transpose(-1, -2), flat), flat.sum(-2)]
        d_embedding = None
        if ctx.needs_input_grad[1]:
            d_x = torch.matmul(_over_steps(d_gates[0]), w_ih_t[0])  # (..., L * B, E)
            if plan.input_mask is not None:
                d_x = d_x * _over_steps(plan.input_mask[:steps])
            rows = tokens[:steps].movedim(0, -2)
            d_embedding = torch.zeros_like(embedding)
            if embedding.dim() == 3:  # K tables: rows of the (K * V, E) view
                rows = rows + embedding.shape[1] * torch.arange(embedding.shape[0], device=rows.device).view(-1, 1, 1)
            d_embedding.view(-1, embedding.shape[-1]).index_add_(0, rows.reshape(-1), d_x.reshape(-1, d_x.shape[-1]))
            d_embedding[..., plan.pad_id, :] = 0.0
        return None, d_embedding, torch.stack(dh_next), torch.stack(dc_next), *d_weights


def _to_coefficients(gates: torch.Tensor, c_prev: torch.Tensor, tanh_c: torch.Tensor) -> torch.Tensor:
    """Turn the saved activations, in place, into what the gates' gradients take from the forward, all steps at
    once, and return f (which the buffer no longer holds). With dc = dc' + dh * o (1 - tanh(c)^2):
    d pre = [dc * g i(1-i), dc * c_prev f(1-f), dc * i (1-g^2), dh * tanh(c) o(1-o)], d c_prev = dc * f.
    `gates` (i, f, g, o) becomes those four coefficients, `tanh_c` becomes o (1 - tanh(c)^2). In place, so the
    backward needs one more H-wide buffer (f), not two 4H-wide ones (what the cost estimate counts)."""
    i, f, g, o = gates.chunk(4, -1)
    forget = f.clone()
    one = torch.ones((), device=gates.device)
    input_slope = torch.addcmul(i, i, i, value=-1)
    candidate_coefficient = i * torch.addcmul(one, g, g, value=-1)
    torch.mul(g, input_slope, out=i)
    g.copy_(candidate_coefficient)
    torch.addcmul(f, f, f, value=-1, out=f)
    f.mul_(c_prev)
    output_coefficient = tanh_c * torch.addcmul(o, o, o, value=-1)
    torch.addcmul(one, tanh_c, tanh_c, value=-1, out=tanh_c)
    tanh_c.mul_(o)
    o.copy_(output_coefficient)
    return forget


def _lstm_step_into(weights: LayerWeights, projected: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                  gates_out: torch.Tensor, c_out: torch.Tensor, tanh_out: torch.Tensor, h_out: torch.Tensor) -> None:
    """`cells.lstm_step` written into preallocated buffers (no autograd), keeping what the backward reads."""
    pre = torch.baddbmm(projected, h, weights.w_hh) if weights.stacked else torch.addmm(projected, h, weights.w_hh)
    hidden = c.shape[-1]
    torch.sigmoid(pre[..., :2 * hidden], out=gates_out[..., :2 * hidden])
    torch.tanh(pre[..., 2 * hidden:3 * hidden], out=gates_out[..., 2 * hidden:3 * hidden])
    torch.sigmoid(pre[..., 3 * hidden:], out=gates_out[..., 3 * hidden:])
    i, f, g, o = gates_out.chunk(4, -1)
    torch.mul(f, c, out=c_out)
    c_out.addcmul_(i, g)
    torch.tanh(c_out, out=tanh_out)
    torch.mul(o, tanh_out, out=h_out)
