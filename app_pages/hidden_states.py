"""Hidden states: h_t, c_t and gates of one example, teacher-forced vs free-running, and a PCA of contexts."""

from __future__ import annotations

import numpy as np
import streamlit as st

from playground.course import term_link
from playground.inspection import (
    HEAD_MAPS,
    UNIT_ORDERS,
    StateCapture,
    capture_csv,
    capture_npz,
    capture_states,
    context_vectors,
    decoder_path,
    divergence_step,
    example_property,
    fit_projection,
    informative_units,
    unit_order,
)
from playground.inspection.oracle import decoding_steps
from playground.plots import (
    alignment_heatmap,
    mark_step,
    mark_units,
    notes,
    probs_figure,
    projection_figure,
    state_heatmap,
    unit_lines_figure,
)
from playground.ui import (
    BOUND,
    chart,
    chart_format_picker,
    drift_view,
    exposures,
    inspection_sidebar,
    share_slot,
    source_models,
)
from playground.ui.text import plain

REFRESH_SECONDS = 3.0
PROJECTED = 300  # validation examples in the PCA plane


def heatmaps(capture: StateCapture, part: str, labels: list[str], order_mode: str, show_gates: bool,
             key: str, divergence: int | None = None) -> None:
    layers = capture.encoder if part == "encoder" else capture.decoder
    for index, layer in enumerate(layers):
        quantities = list((layer.quantities() if show_gates else layer.states).items())
        columns = st.columns(2)
        for position, (name, values) in enumerate(quantities):
            order = unit_order(values, order_mode)
            figure = state_heatmap(values, labels, f"{part.title()} layer {index + 1}: {name}_t", order,
                                   height=300, value_name=name,
                                   x_title="step (input token)" if part == "encoder" else "step (input → prediction)")
            marked = informative_units(values) if name in layer.states else {}
            mark_units(figure, order, marked)
            if part == "decoder":
                mark_step(figure, divergence, "diverges")
            with columns[position % 2]:
                chart(st, figure, f"{key}_{part}_{index}_{name}", notes.STATES)
                if marked:
                    st.caption("Outlined: " + "; ".join(f"unit {unit} {why}" for unit, why in marked.items())
                               + " (largest variance over steps / strongest correlation with position).")


def head_maps(capture: StateCapture, kind: str, dec_labels: list[str]) -> None:
    """A Transformer's attention of one kind, every layer (a row of maps) and head (a column), "position: token"."""
    maps = capture.heads[kind]
    source = [f"{p}: {token}" for p, token in enumerate(capture.encoder_tokens)]
    steps = [f"{p}: {label}" for p, label in enumerate(dec_labels)]
    queries, keys = {"encoder_self": (source, source), "decoder_self": (steps, steps), "cross": (steps, source)}[kind]
    for layer in range(maps.shape[0]):
        columns = st.columns(maps.shape[1])
        for head, column in enumerate(columns):
            figure = alignment_heatmap(maps[layer, head, : len(queries), : len(keys)], keys, queries,
                                       f"Layer {layer + 1}, head {head + 1}", height=280, key_title="key position",
                                       query_title="query position")
            chart(column, figure, f"hs_heads_{kind}_{layer}_{head}", notes.HEADS)


st.title("Hidden and cell states")
st.caption(f"Every {term_link('hidden state', 'h_t')}, {term_link('cell state', 'c_t')} and "
           f"{term_link('gates', 'gate')} below is recomputed step by step with the model's own weights; it equals "
           f"nn.LSTM's output. Below: the {term_link('context vector', 'context vectors')} in a "
           f"{term_link('pca', 'PCA')} plane.")
source, example = inspection_sidebar("hs", share_slot("hidden-states"))
chart_format_picker()
if source and example:
    with st.sidebar:
        st.subheader("View")
        order_mode = st.selectbox("Unit order", UNIT_ORDERS, key="hs_order", **BOUND,
                                    help="Sorting units makes structure visible; hover shows each unit's number")
        show_gates = st.toggle("Show gates i, f, g, o", key="hs_gates", **BOUND,
                               help="Also draw the input, forget, candidate and output gates (see the Glossary)")
        decoding = st.radio("Decoder in the heatmaps", ["free-running", "teacher-forced"], key="hs_decoding", **BOUND,
                               help="Which decoder run the heatmaps show: fed its own predictions, or the truth",
                               disabled=not example[1])
        first_look = capture_states(source.model(), source.src_vocab, source.tgt_vocab, example[0],
                                    max_len=source.config.max_len * 4 + 8)
        units = st.multiselect("Units to follow as lines", range(source.config.hidden_dim),
                               default=list(informative_units(first_look.encoder[-1].h))[:3], key="hs_units",
                               help="Units (rows of the heatmap) drawn as lines over the steps; at first the "
                                    "encoder's most informative ones (largest variance, strongest link to position)")

    @st.fragment(run_every=REFRESH_SECONDS if source.live else None)
    def views() -> None:
        model = source.model()
        src, tgt = example
        free = capture_states(model, source.src_vocab, source.tgt_vocab, src,
                              max_len=decoding_steps(source.config, tgt, source.config.max_len * 4 + 8))
        forced = capture_states(model, source.src_vocab, source.tgt_vocab, src, tgt, 1.0) if tgt else None
        shown = forced if decoding == "teacher-forced" and forced else free
        diverge = divergence_step(free.predicted, forced.predicted) if forced else None
        if source.live:
            st.caption(f"Following {source.label} live: refreshed every {REFRESH_SECONDS:.0f} s while it trains.")
        dec_labels = [f"{fed}→{out}" for fed, out in zip(shown.decoder_inputs, shown.predicted, strict=True)]

        st.subheader("Encoder (reads the source)")
        heatmaps(shown, "encoder", shown.encoder_tokens, order_mode, show_gates, "hs")
        st.subheader(f"Decoder, {'teacher-forced' if shown is forced else 'free-running'} (input → prediction)")
        heatmaps(shown, "decoder", dec_labels, order_mode, show_gates, "hs", diverge if shown is free else None)
        if shown.attention is not None:
            st.subheader("Attention: where each output step looked in the source")
            chart(st, alignment_heatmap(shown.attention, shown.src_tokens, dec_labels,
                                        f"Alignment α, {'teacher-forced' if shown is forced else 'free-running'}"),
                  "hs_alignment", notes.ALIGNMENT)
        if shown.heads:
            st.subheader("Attention per layer and head")
            kind = st.radio("Attention", list(HEAD_MAPS), format_func=HEAD_MAPS.get, horizontal=True,
                            key="hs_head_kind")
            head_maps(shown, kind, dec_labels)
        if units:
            left, right = st.columns(2)
            chart(left, unit_lines_figure(shown.encoder[-1].h, units, shown.encoder_tokens,
                                          "Encoder top layer h_t, chosen units", "h"), "hs_lines_enc",
                  notes.UNIT_LINES)
            chart(right, unit_lines_figure(shown.decoder[-1].h, units, dec_labels,
                                           "Decoder top layer h_t, chosen units", "h"), "hs_lines_dec",
                  notes.UNIT_LINES)

        st.subheader("Teacher-forced vs free-running, same example")
        if forced is None:
            st.info("Give a target to compare teacher-forced decoding with free-running.")
        else:
            join = source.tgt_vocab.join
            st.markdown(f"Free-running predicts **{plain(join(free.predicted))}**, teacher-forced "
                        f"**{plain(join(forced.predicted))}** (target {plain(join(tgt))}). "
                        + (f"They first differ at step **{diverge}**." if diverge is not None else "They agree."))
        columns = st.columns(2)
        for column, (name, capture) in zip(columns, (("free-running", free), ("teacher-forced", forced)),
                                           strict=True):
            if capture is None:
                continue
            labels = [f"{fed}→{out}" for fed, out in zip(capture.decoder_inputs, capture.predicted, strict=True)]
            figure = probs_figure(capture.probs, source.tgt_vocab.itos, labels, capture.predicted,
                                  f"Output probabilities, {name}")
            chart(column, mark_step(figure, diverge, "diverges"), f"hs_probs_{name}", notes.PROBABILITIES)

        st.subheader("Context vectors in a plane")
        pairs = source.val_pairs[:PROJECTED]
        if len(pairs) < 2:
            st.info("The PCA plane needs validation examples (regenerated from the run's or checkpoint's task).")
        else:
            contexts = context_vectors(model, source.src_vocab, [s for s, _ in pairs])
            projection = fit_projection(contexts)
            name, _ = example_property(source.config.task, *pairs[0])
            colour = np.array([example_property(source.config.task, s, t)[1] for s, t in pairs])
            labels = [f"{source.src_vocab.join(s)} → {source.tgt_vocab.join(t)}" for s, t in pairs]
            paths = {f"decoder, {n}": (projection.apply(decoder_path(c)), ["context", *c.predicted])
                     for n, c in (("free-running", free), ("teacher-forced", forced)) if c is not None}
            chart(st, projection_figure(projection.apply(contexts), colour, name, labels, paths,
                                        projection.explained), "hs_pca", notes.PLANE)

        left, right = st.columns(2)
        left.download_button("Download states (.npz)", capture_npz(shown), "states.npz",
                             "application/octet-stream", key="hs_npz")
        right.download_button("Download states (CSV)", capture_csv(shown), "states.csv", "text/csv", key="hs_csv")

    views()

    st.subheader("Teacher-forced and free-running states drift apart")
    st.caption("The decoder's top-layer h_t on the validation examples, fed the true tokens and fed its own: equal "
               "until the model's first mistake, then apart." + (" Computed from the weights of this page's last "
                                                                 "rerun." if source.live else ""))
    if not source.val_pairs:
        st.info("The drift needs the validation set, which this model's task could not regenerate.")
    else:
        identity, models = source_models(source, every_arm=False)
        drift_view(st, exposures("hs_drift", identity, models, drift=True), "hs")
