"""Luong et al. (2015) global attention, after the recurrence (no input feeding).

For the decoder's top-layer state h_t and the encoder's top-layer outputs h̄_s at every non-pad source position s:

    dot:      score(h_t, h̄_s) = h_tᵀ h̄_s
    general:  score(h_t, h̄_s) = h_tᵀ W_a h̄_s
    additive: score(h_t, h̄_s) = v_aᵀ tanh(W_a h_t + U_a h̄_s)
    α_t = softmax_s(score) over the real source positions;  c_t = Σ_s α_ts h̄_s;  h̃_t = tanh(W_c [c_t; h_t])

and the decoder's output layer reads h̃_t instead of h_t. Weights (no bias): `w_a` (H x H, general and additive),
`u_a` (H x H) and `v_a` (1 x H) (additive), `w_c` (H x 2H). Because h_t does not depend on earlier attention, the
decoder's recurrence still runs as one fused call over a teacher-forced target.
"""

from __future__ import annotations

import torch
from torch import nn

from playground.model.interface import Memory

ATTENTIONS = ("none", "dot", "general", "additive")


class Attention(nn.Module):
    def __init__(self, kind: str, hidden: int) -> None:
        super().__init__()
        if kind not in ATTENTIONS[1:]:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {kind!r}")
        self.kind = kind
        if kind in ("general", "additive"):
            self.w_a = nn.Linear(hidden, hidden, bias=False)
        if kind == "additive":
            self.u_a = nn.Linear(hidden, hidden, bias=False)
            self.v_a = nn.Linear(hidden, 1, bias=False)
        self.w_c = nn.Linear(2 * hidden, hidden, bias=False)

    def scores(self, h: torch.Tensor, memory: Memory) -> torch.Tensor:
        """score(h_t, h̄_s) for h (B, S, H): (B, S, T)."""
        if self.kind == "dot":
            return torch.bmm(h, memory.outputs.transpose(1, 2))
        if self.kind == "general":
            return torch.bmm(h, self.w_a(memory.outputs).transpose(1, 2))
        mixed = torch.tanh(self.w_a(h).unsqueeze(2) + self.u_a(memory.outputs).unsqueeze(1))  # (B, S, T, H)
        return self.v_a(mixed).squeeze(-1)

    def forward(self, h: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """h̃ (B, S, H) and the alignment α (B, S, T) for the decoder's top h (B, S, H)."""
        scores = self.scores(h, memory).masked_fill(~memory.real.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights, memory.outputs)
        return torch.tanh(self.w_c(torch.cat([context, h], dim=-1))), weights


def attention_flops(kind: str, hidden: int, src_len: int, tgt_len: int) -> int:
    """The matrix products of one sequence's attention, forward: scores, context and W_c, plus W_a/U_a by kind."""
    if kind == "none":
        return 0
    flops = 2 * tgt_len * src_len * hidden * 2 + 2 * tgt_len * 2 * hidden * hidden  # scores, context; W_c
    if kind == "general":
        flops += 2 * src_len * hidden * hidden  # W_a h̄_s, once per source position
    if kind == "additive":
        flops += 2 * (src_len + tgt_len) * hidden * hidden  # U_a h̄_s, W_a h_t
    return flops


def attention_activations(kind: str, hidden: int, src_len: int, tgt_len: int) -> int:
    """Floats one sequence's attention keeps for backward: the alignment, c_t and h̃_t, and additive's
    tanh(W_a h_t + U_a h̄_s) for every (t, s) pair, the largest by far."""
    if kind == "none":
        return 0
    kept = 2 * tgt_len * src_len + 4 * tgt_len * hidden
    return kept + (2 * tgt_len * src_len * hidden if kind == "additive" else 0)
