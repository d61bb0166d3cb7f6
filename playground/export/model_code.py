"""The model section of an exported script, written for the variants its models use and no others.

A default run's script reads as the specification's LSTM encoder-decoder alone; a GRU run's as a GRU one; an
attention run's gains the Luong equations of its score(s); a reversed-source run the reversal. A setting that
differs between the experiment's models becomes an argument of `Seq2Seq` (and a key of MODELS); one all models
share is written in, with no branch. Modules are built in the order `model.seq2seq.Seq2Seq` builds them (encoder
embedding, cell; decoder embedding, cell, fc_out, attention's w_a, u_a, v_a, w_c), so that one
`torch.manual_seed` gives both the same weights.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from playground.core.config import VARIANT_SETTINGS, TrainConfig
from playground.model.attention import ATTENTIONS
from playground.model.cells import CELLS
from playground.model.seq2seq import reversal_index

# Score lines of each Luong score, as `Attention.forward` writes them (h: (B, S, H), memory: (B, T, H)).
_SCORES = {
    "dot": "scores = h @ memory.transpose(1, 2)  # dot: score(h_t, h̄_s) = h_tᵀ h̄_s",
    "general": "scores = h @ self.w_a(memory).transpose(1, 2)  # general: score(h_t, h̄_s) = h_tᵀ W_a h̄_s",
    "additive": "# additive: score(h_t, h̄_s) = v_aᵀ tanh(W_a h_t + U_a h̄_s), for every pair (t, s)\n"
                "scores = self.v_a(torch.tanh(self.w_a(h)[:, :, None] + self.u_a(memory)[:, None])).squeeze(-1)",
}
# Weights of the scores (no bias), in the order `core.attention.Attention` builds them, and the kinds that use each.
_SCORE_WEIGHTS = (
    ("self.w_a = nn.Linear(hidden_dim, hidden_dim, bias=False)", ("general", "additive")),
    ("self.u_a = nn.Linear(hidden_dim, hidden_dim, bias=False)\nself.v_a = nn.Linear(hidden_dim, 1, bias=False)",
     ("additive",)),
)


@dataclass(frozen=True)
class Family:
    """Which variants an experiment's models use: each tuple in the library's order, one value when all agree."""

    cells: tuple[str, ...]
    attentions: tuple[str, ...]
    reversals: tuple[bool, ...]

    @classmethod
    def of(cls, configs: tuple[TrainConfig, ...]) -> Family:
        return cls(tuple(name for name in CELLS if any(config.cell == name for config in configs)),
                   tuple(name for name in ATTENTIONS if any(config.attention == name for config in configs)),
                   tuple(value for value in (False, True)
                         if any((config.reverse_source == "on") == value for config in configs)))

    @property
    def varying(self) -> tuple[str, ...]:
        """The variant settings that differ between the models: arguments of the script's `Seq2Seq`."""
        counts = {"cell": self.cells, "attention": self.attentions, "reverse_source": self.reversals}
        return tuple(name for name in VARIANT_SETTINGS if len(counts[name]) > 1)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The attention scores used (no "none")."""
        return tuple(kind for kind in self.attentions if kind != "none")

    @property
    def description(self) -> str:
        if self.varying:
            return f"an encoder-decoder whose {', '.join(self.varying)} differ between the models (MODELS)"
        text = f"{'an LSTM' if self.cells == ('lstm',) else 'a GRU'} encoder-decoder"
        if self.kinds:
            text += f" with {self.kinds[0]} attention"
        if self.reversals == (True,):
            text += ", the source read in reverse"
        return text

    @property
    def state(self) -> str:
        return {("lstm",): "(h_T, c_T)", ("gru",): "h_T"}.get(self.cells, "the encoder's final state")


def model_arguments(family: Family) -> str:
    """What `train` passes to `Seq2Seq` after the sizes and dropout: the settings that differ between models."""
    values = {"cell": 'settings["cell"]', "attention": 'settings["attention"]',
              "reverse_source": 'settings["reverse_source"] == "on"'}
    if not family.varying:
        return ""
    return ",\n" + " " * 20 + ", ".join(values[name] for name in family.varying)


def model_code(family: Family) -> str:
    """Everything from the model's heading to `Seq2Seq`, for these variants only."""
    attending = bool(family.kinds)
    parts = [f"# --- the model: {family.description} {'-' * max(3, 98 - len(family.description))}\n\n"]
    if len(family.cells) > 1:
        parts.append('RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU}  # an LSTM carries (h, c), a GRU h alone\n\n')
    if True in family.reversals:
        parts.append(f"\n{inspect.getsource(reversal_index)}\n")
    if attending:
        parts.append(_attention_code(family))
    parts.append(_encoder_code(family, attending))
    parts.append(_decoder_code(family, attending))
    parts.append(_seq2seq_code(family, attending))
    return "".join(parts)


def _cell(family: Family) -> tuple[str, str, str]:
    """The cell's attribute name, its constructor, and the extra parameter that chooses it."""
    if len(family.cells) > 1:
        return "rnn", "RECURRENT[cell]", ", cell"
    return family.cells[0], f"nn.{CELLS[family.cells[0]].label}", ""


def _embedded_rnn_init(family: Family, extra: str = "") -> str:
    name, constructor, parameter = _cell(family)
    return f'''    def __init__(self, vocab_size, emb_dim, hidden_dim, num_layers, dropout{parameter}{extra}):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.{name} = {constructor}(emb_dim, hidden_dim, num_layers, batch_first=True,
{' ' * (len(name + constructor) + 17)}dropout=dropout if num_layers > 1 else 0.0)
'''


def _encoder_code(family: Family, attending: bool) -> str:
    name = _cell(family)[0]
    if attending:
        forward = f'''    def forward(self, src):
        """The top layer's output h̄_s at every source position (what attention reads), and the final state."""
        return self.{name}(self.dropout(self.embedding(src)))
'''
    else:
        forward = f'''    def forward(self, src):
        """The final {family.state}: all the decoder learns of the source."""
        _, state = self.{name}(self.dropout(self.embedding(src)))
        return state
'''
    return f"\nclass Encoder(nn.Module):\n{_embedded_rnn_init(family)}\n{forward}"


def _decoder_code(family: Family, attending: bool) -> str:
    name = _cell(family)[0]
    code = "\n\nclass Decoder(nn.Module):\n"
    if not attending:
        return code + _embedded_rnn_init(family) + f'''        self.fc_out = nn.Linear(hidden_dim, vocab_size)

    def forward(self, inputs, state):
        """Logits o_t = W_o h_t + b_o for every input token, and the state after the last."""
        outputs, state = self.{name}(self.dropout(self.embedding(inputs)), state)
        return self.fc_out(outputs), state
'''
    kind = ", attention" if len(family.attentions) > 1 else ""
    built = "Attention(attention, hidden_dim)" if len(family.kinds) > 1 else "Attention(hidden_dim)"
    optional = "none" in family.attentions
    code += _embedded_rnn_init(family, kind) + "        self.fc_out = nn.Linear(hidden_dim, vocab_size)\n"
    condition = ' if attention != "none" else None' if optional else ""
    code += f"        self.attention = {built}{condition}\n"
    read = "h̃_t + b_o (h_t without attention)" if optional else "h̃_t + b_o"
    code += f'''
    def forward(self, inputs, state, memory, real):
        """Logits o_t = W_o {read} for every input token, and the last state."""
        outputs, state = self.{name}(self.dropout(self.embedding(inputs)), state)
'''
    if optional:
        code += "        if self.attention is not None:\n    "
    code += "        outputs = self.attention(outputs, memory, real)\n"
    return code + "        return self.fc_out(outputs), state\n"


def _attention_code(family: Family) -> str:
    kinds = family.kinds
    several = len(kinds) > 1
    init = ["self.kind = kind"] if several else []
    for line, users in _SCORE_WEIGHTS:
        used = [kind for kind in kinds if kind in users]
        if used and len(used) < len(kinds):
            condition = f"kind == {used[0]!r}" if len(used) == 1 else f"kind in {tuple(used)!r}"
            init.append(f"if {condition}:\n{_indent(line, 4)}")
        elif used:
            init.append(line)
    init.append("self.w_c = nn.Linear(2 * hidden_dim, hidden_dim, bias=False)")
    if several:
        scores = "".join(f"{'if' if i == 0 else 'elif'} self.kind == {kind!r}:\n{_indent(_SCORES[kind], 4)}\n"
                         for i, kind in enumerate(kinds[:-1]))
        scores += f"else:\n{_indent(_SCORES[kinds[-1]], 4)}"
    else:
        scores = _SCORES[kinds[0]]
    return f'''
class Attention(nn.Module):
    """Luong et al. (2015) global attention, after the decoder's recurrence (no input feeding): the decoder's
    top-layer h_t scores every encoder output h̄_s; α_t = softmax over the real (non-pad) source positions;
    c_t = Σ_s α_ts h̄_s; h̃_t = tanh(W_c [c_t; h_t]), which the output layer reads instead of h_t."""

    def __init__(self, {"kind, " if several else ""}hidden_dim):
        super().__init__()
{_indent(chr(10).join(init), 8)}

    def forward(self, h, memory, real):
        """h̃ (B, S, H) for the decoder's top-layer h (B, S, H), the encoder's outputs `memory` (B, T, H) and
        `real` (B, T), true where a source token is not padding."""
{_indent(scores, 8)}
        alignment = torch.softmax(scores.masked_fill(~real[:, None], float("-inf")), dim=-1)  # α_t over s
        context = alignment @ memory  # c_t = Σ_s α_ts h̄_s
        return torch.tanh(self.w_c(torch.cat([context, h], dim=-1)))

'''


def _seq2seq_code(family: Family, attending: bool) -> str:
    parameters = f",\n{' ' * 17}{', '.join(family.varying)}" if family.varying else ""
    cell = ", cell" if "cell" in family.varying else ""
    attention = ", attention" if "attention" in family.varying else ""
    init = f'''

class Seq2Seq(nn.Module):
    def __init__(self, src_vocab_size, tgt_vocab_size, emb_dim, hidden_dim, num_layers, dropout{parameters}):
        super().__init__()
        self.encoder = Encoder(src_vocab_size, emb_dim, hidden_dim, num_layers, dropout{cell})
        self.decoder = Decoder(tgt_vocab_size, emb_dim, hidden_dim, num_layers, dropout{cell}{attention})
'''
    if "reverse_source" in family.varying:
        init += "        self.reverse_source = reverse_source\n"
    memory = ", memory, real" if attending else ""
    return init + f'''
    def forward(self, src, tgt, teacher=None):
        """Logits (B, L, V); logits[:, t] predicts tgt[:, t].

        The decoder starts from {family.state} and <sos>. `teacher` None: every step reads the true y_{{t-1}}
        (teacher forcing, one call over all steps). Otherwise a bool tensor, (L,) one coin per step or (B, L) one
        per token: step t reads y_{{t-1}} where it is true, else the argmax of its own previous logits.
        """
{_encode_code(family, attending)}
        inputs = torch.cat([torch.full_like(tgt[:, :1], SOS_ID), tgt[:, :-1]], dim=1)
        if teacher is None:
            return self.decoder(inputs, state{memory})[0]
        steps = []
        token = inputs[:, 0]  # step 0 always reads <sos>
        for t in range(tgt.shape[1]):
            if t > 0:
                token = torch.where(teacher[..., t], inputs[:, t], steps[-1].argmax(-1))
            logits, state = self.decoder(token[:, None], state{memory})
            steps.append(logits[:, 0])
        return torch.stack(steps, dim=1)
'''


def _encode_code(family: Family, attending: bool) -> str:
    """The lines of `forward` that run the encoder: reversing the source where the model does."""
    reads = "memory, state" if attending else "state"
    plain = f"{reads} = self.encoder(src)"
    if True not in family.reversals:
        lines = plain
    else:
        reverse = ["index = reversal_index(src)  # the encoder reads each source's real tokens last to first",
                   f"{reads} = self.encoder(src.gather(1, index))"]
        if attending:
            reverse.append("memory = memory.gather(1, index[..., None].expand_as(memory))  # back in source order")
        if False in family.reversals:
            lines = "if self.reverse_source:\n" + _indent("\n".join(reverse), 4) + f"\nelse:\n    {plain}"
        else:
            lines = "\n".join(reverse)
    if attending:
        lines += "\nreal = src != PAD_ID  # the positions attention may look at"
    return _indent(lines, 8)


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in text.split("\n"))
