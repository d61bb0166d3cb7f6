"""The encoder-decoder as a graphviz diagram drawn from the settings: what the sliders build, with its sizes.

A pure function from numbers to DOT text (st.graphviz_chart draws it), so it redraws whenever a setting moves
and can be tested without a browser. The teacher-forcing switch shows gamma: the chance that the decoder reads
the true previous token rather than its own prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

from playground.model.cells import CELLS


@dataclass(frozen=True)
class DiagramSizes:
    """Everything the diagram prints; `parameters` is per part (see inspection.preview.parameter_counts)."""

    src_vocab: int
    tgt_vocab: int
    emb_dim: int
    hidden_dim: int
    num_layers: int
    parameters: dict[str, int]
    cell: str = "lstm"
    attention: str = "none"
    reverse_source: bool = False
    architecture: str = "rnn"
    heads: int = 1
    positions: str = "sinusoidal"


def _count(n: int) -> str:
    return f"{n:,}"


def _node(name: str, label: str, fill: str, shape: str = "box") -> str:
    return f'  {name} [label="{label}", shape={shape}, style="rounded,filled", fillcolor="{fill}"];'


def model_diagram(sizes: DiagramSizes, gamma: float, gamma_note: str = "") -> str:
    """DOT source, top to bottom: the encoder's column hands its state to the decoder's, the switch above the
    decoder, and attention (when the model has it) reading the encoder's outputs between the decoder and its output
    layer. Top to bottom keeps the drawing narrow (about 430 px at its natural size), so its text stays readable
    in an 800 px window; left to right was 1,300 px wide and shrank to 3 px text there.

    `gamma_note` says where gamma comes from ("set", "now", ...).
    """
    if sizes.architecture == "transformer":
        return _transformer_diagram(sizes, gamma, gamma_note)
    p, cell = sizes.parameters, CELLS[sizes.cell]
    layers = f"{sizes.num_layers} layer{'s' if sizes.num_layers > 1 else ''}"
    note = f" ({gamma_note})" if gamma_note else ""
    reading = " (source reversed)" if sizes.reverse_source else ""
    lines = [
        *_header(sizes),
        _node("enc_emb", f"embedding\\n{sizes.src_vocab} × {sizes.emb_dim}\\n{_count(p['encoder embedding'])}",
              "#dbe9f6"),
        _node("enc_lstm", f"encoder {cell.label}{reading}\\n{layers}, hidden {sizes.hidden_dim}\\n"
                          f"{_count(p['encoder cell'])}", "#9ecae1"),
        _node("state", f"{cell.state_label}\\n{sizes.num_layers} × {len(cell.state_names)} × {sizes.hidden_dim}",
              "#fdd0a2", "ellipse"),
        _node("switch", f"teacher forcing\\nγ = {gamma:.2f}{note}", "#fff7bc", "diamond"),
        _node("dec_emb", f"embedding\\n{sizes.tgt_vocab} × {sizes.emb_dim}\\n{_count(p['decoder embedding'])}",
              "#dbe9f6"),
        _node("dec_lstm", f"decoder {cell.label}\\n{layers}, hidden {sizes.hidden_dim}\\n{_count(p['decoder cell'])}",
              "#9ecae1"),
        _node("linear", f"Linear\\n{sizes.hidden_dim} → {sizes.tgt_vocab}\\n{_count(p['output layer'])}",
              "#c7e9c0"),
        _node("softmax", f"softmax\\np(y_t), |V_tgt| = {sizes.tgt_vocab}", "#eeeeee", "note"),
        _node("truth", "true previous\\ntoken y_{t-1}", "#ffffff", "plaintext"),
        _node("own", "own prediction\\nargmax p(y_{t-1})", "#ffffff", "plaintext"),
        "  src -> enc_emb -> enc_lstm -> state;",
        '  state -> dec_lstm [label="initial state"];',
        *_attention_lines(sizes, p),
        *_switch_lines(gamma),
    ]
    return "\n".join(lines)


def _header(sizes: DiagramSizes) -> list[str]:
    return [
        "digraph seq2seq {",
        '  graph [rankdir=TB, fontname="sans-serif", fontsize=11, nodesep=0.25, ranksep=0.35, '
        f'label="{_count(sum(sizes.parameters.values()))} trainable parameters", labelloc=b];',
        '  node [fontname="sans-serif", fontsize=10, margin="0.12,0.06"];',
        '  edge [fontname="sans-serif", fontsize=9, color="#555555"];',
        _node("src", f"source tokens\\ns_1 … s_T\\n|V_src| = {sizes.src_vocab}", "#eeeeee", "note"),
    ]


def _switch_lines(gamma: float) -> list[str]:
    """What the decoder reads next: the truth with chance γ, its own previous prediction otherwise."""
    return [
        f'  truth -> switch [label="γ = {gamma:.2f}"];',
        f'  own -> switch [label="1 − γ = {1 - gamma:.2f}", style=dashed];',
        '  softmax -> own [style=dotted, constraint=false, label="next step"];',
        "  { rank=same; src; truth; own; }",
        "}",
    ]


def _transformer_diagram(sizes: DiagramSizes, gamma: float, gamma_note: str) -> str:
    """The Transformer: each side's embedding (scaled by √d, plus positions), the encoder's layers into the memory,
    the decoder's masked self-attention, cross-attention reading the memory, feed-forward, the output layer."""
    p, d, heads = sizes.parameters, sizes.hidden_dim, sizes.heads
    stack = f"{sizes.num_layers} ×"
    note = f" ({gamma_note})" if gamma_note else ""
    reading = " (source reversed)" if sizes.reverse_source else ""
    positions = {"sinusoidal": "+ sinusoidal positions", "learned": "+ learned positions", "none": "no positions"}
    position_line = positions[sizes.positions] + (f" ({_count(p['positions'])}, both sides)" if "positions" in p
                                                  else "")
    return "\n".join([
        *_header(sizes),
        _node("enc_emb", f"embedding × √d{reading}\\n{sizes.src_vocab} × {d}, {_count(p['encoder embedding'])}\\n"
                         f"{position_line}", "#dbe9f6"),
        _node("enc_layers", f"{stack} encoder layer\\nself-attention ({heads} head{'s' if heads > 1 else ''}), "
                            f"feed-forward {4 * d}\\npre-norm, residual\\n{_count(p['encoder layers'])}", "#9ecae1"),
        _node("memory", f"memory m\\nT × {d}", "#fdd0a2", "ellipse"),
        _node("switch", f"teacher forcing\\nγ = {gamma:.2f}{note}", "#fff7bc", "diamond"),
        _node("dec_emb", f"embedding × √d\\n{sizes.tgt_vocab} × {d}, {_count(p['decoder embedding'])}\\n"
                         f"{positions[sizes.positions]}", "#dbe9f6"),
        _node("dec_self", f"{stack} masked self-attention\\ncausal: step t reads steps ≤ t\\n"
                          f"{_count(p['decoder self-attention'])}", "#9ecae1"),
        _node("cross", f"{stack} cross-attention\\nqueries: decoder, keys: memory\\n{_count(p['cross-attention'])}",
              "#fcbba1"),
        _node("dec_ff", f"{stack} feed-forward {4 * d}\\nand the final layer norm\\n"
                        f"{_count(p['decoder feed-forward'])}", "#9ecae1"),
        _node("linear", f"Linear\\n{d} → {sizes.tgt_vocab}\\n{_count(p['output layer'])}", "#c7e9c0"),
        _node("softmax", f"softmax\\np(y_t), |V_tgt| = {sizes.tgt_vocab}", "#eeeeee", "note"),
        _node("truth", "true previous\\ntoken y_{t-1}", "#ffffff", "plaintext"),
        _node("own", "own prediction\\nargmax p(y_{t-1})", "#ffffff", "plaintext"),
        "  src -> enc_emb -> enc_layers -> memory;",
        '  memory -> cross [label="keys, values", style=dashed];',
        "  switch -> dec_emb -> dec_self -> cross -> dec_ff -> linear -> softmax;",
        *_switch_lines(gamma),
    ])


def _attention_lines(sizes: DiagramSizes, p: dict[str, int]) -> list[str]:
    """The decoder's path to its output layer: straight, or through attention over the encoder's outputs."""
    if sizes.attention == "none":
        return ["  switch -> dec_emb -> dec_lstm -> linear -> softmax;"]
    return [_node("attention", f"{sizes.attention} attention\\nα_t, c_t, h̃_t = tanh(W_c [c_t; h_t])\\n"
                               f"{_count(p['attention'])}", "#fcbba1"),
            '  enc_lstm -> attention [label="outputs h̄_s", style=dashed];',
            "  switch -> dec_emb -> dec_lstm -> attention -> linear -> softmax;"]
