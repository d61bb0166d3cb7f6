"""Hidden states: h_t, c_t and gates of one example, teacher-forced vs free-running, and a PCA of contexts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st

from playground.analysis.states import (
    GATES,
    UNIT_ORDERS,
    StateCapture,
    best_by_free_running,
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
from playground.core.config import TrainConfig
from playground.core.model import Seq2Seq
from playground.core.tasks import Pair, TaskData, TaskError, Vocab
from playground.plots.states import (
    mark_step,
    mark_units,
    probs_figure,
    projection_figure,
    state_heatmap,
    unit_lines_figure,
)
from playground.runs.background import RunError
from playground.runs.engine import FINAL_STATUSES, RunStatus
from playground.runs.registry import registry
from playground.training.storage import CheckpointError, load_checkpoint
from playground.training.trainer import build_task
from playground.ui import chart, chart_format_picker

REFRESH_SECONDS = 3.0
MAX_EXAMPLES = 200  # validation examples offered in the picker
PROJECTED = 300  # validation examples in the PCA plane


@dataclass
class Source:
    """Where the model comes from; `model` is called for a fresh copy (a live run keeps training)."""

    label: str
    config: TrainConfig
    src_vocab: Vocab
    tgt_vocab: Vocab
    val_pairs: list[Pair]
    live: bool
    model: Callable[[], Seq2Seq]


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint and regenerating its validation data")
def checkpoint_source(data: bytes) -> tuple[Seq2Seq, TrainConfig, Vocab, Vocab, list[Pair], str]:
    """The checkpoint's first model; its validation set is regenerated from its config and its own pairs."""
    loaded = load_checkpoint(data)
    try:
        task = build_task(loaded.config, loaded.custom)
        pairs, note = TaskData(task, loaded.config.seed, loaded.config.val_size).val_pairs, ""
    except TaskError as error:
        pairs, note = [], f"Validation examples cannot be regenerated ({error}); type a source below."
    return loaded.model, loaded.config, loaded.src_vocab, loaded.tgt_vocab, pairs, note


def pick_source() -> Source | None:
    kind = st.radio("Model from", ["a training run", "a checkpoint file"], horizontal=True, key="hs_from")
    if kind == "a checkpoint file":
        upload = st.file_uploader("Checkpoint (.pt, saved by the Train page)", type=["pt"], key="hs_upload")
        if upload is None:
            return None
        try:
            model, config, src_vocab, tgt_vocab, pairs, note = checkpoint_source(upload.getvalue())
        except CheckpointError as error:
            st.error(str(error))
            return None
        if note:
            st.info(note)
        return Source(upload.name, config, src_vocab, tgt_vocab, pairs, False, lambda: model)
    summaries = registry().list()
    if not summaries:
        st.info("No runs yet: start one on the Train or Compare page, or load a checkpoint file.")
        return None
    names = {summary.id: f"{summary.name} ({summary.kind}, {summary.status})" for summary in summaries}
    if st.session_state.get("hs_run") not in names:  # the run looked at last, else the best finished one
        st.session_state.hs_run = first_run([s.id for s in summaries if s.status in FINAL_STATUSES], list(names))
    run_id = st.selectbox("Run", list(names), format_func=names.get, key="hs_run")
    st.session_state.hs_last_run = run_id
    try:
        run = registry().get(run_id)
        models = run.models()
    except (RunError, CheckpointError, TaskError, ValueError) as error:
        st.error(f"cannot open run {run_id}: {error}")
        return None
    index = 0
    if len(models) > 1:
        index = st.selectbox("Model", range(len(models)), format_func=lambda k: models[k].label, key="hs_model")
    chosen = models[min(index, len(models) - 1)]
    label = names[run_id] + (f" — {chosen.label}" if chosen.label else "")
    return Source(label, chosen.config, chosen.task.src_vocab, chosen.task.tgt_vocab, chosen.val_pairs,
                  run.status == RunStatus.RUNNING, lambda: run.models()[min(index, len(models) - 1)].model)


def first_run(finished: list[str], listed: list[str]) -> str:
    """The run this session looked at last, else the finished run with the best free-running exact match."""
    last = st.session_state.get("hs_last_run")
    if last in listed:
        return last
    metrics = {}
    for run_id in finished:
        try:
            metrics[run_id] = registry().metrics_file(run_id)
        except (RunError, OSError, ValueError):
            continue  # a damaged run is not a candidate
    return best_by_free_running(metrics) or listed[0]


def pick_example(source: Source) -> tuple[Pair | None, list[str]]:
    """The chosen example, or None with the problems to show (tokens outside the vocabulary)."""
    choices = ["a validation example", "type a source"] if source.val_pairs else ["type a source"]
    how = st.radio("Example", choices, horizontal=True, key="hs_how")
    if how == "a validation example":
        pairs = source.val_pairs[:MAX_EXAMPLES]
        index = st.selectbox("Validation example", range(len(pairs)), key="hs_example",
                             format_func=lambda i: f"{source.src_vocab.join(pairs[i][0])} → "
                                                   f"{source.tgt_vocab.join(pairs[i][1])}")
        return pairs[index], []
    symbols = source.src_vocab.itos[4:]
    text = st.text_input("Source", key="hs_source", placeholder=f"e.g. {source.src_vocab.join(symbols[:5])}",
                         help=f"Tokens of the model's source vocabulary only: {' '.join(symbols[:60])} "
                              f"(case-sensitive{', separated by spaces' if source.src_vocab.separator else ''}). "
                              f"Training sources were {source.config.min_len} to {source.config.max_len} long: "
                              "try a longer one to see where free-running decoding drifts.")
    st.caption(f"Accepted: {' '.join(symbols[:30])}{' …' if len(symbols) > 30 else ''} (case-sensitive). "
               "Try an input longer than the training ones.")
    target_text = st.text_input("Target (optional; needed for teacher forcing)", key="hs_target")
    src = source.src_vocab.tokenize(text)
    if not src:
        return None, []
    tgt = source.tgt_vocab.tokenize(target_text)
    problems = [f"{side} has tokens outside the model's vocabulary: {', '.join(map(repr, bad))}"
                for side, bad in (("The source", source.src_vocab.unknown(src)),
                                  ("The target", source.tgt_vocab.unknown(tgt))) if bad]
    return (None if problems else (src, tgt)), problems


def heatmaps(capture: StateCapture, part: str, labels: list[str], order_mode: str, show_gates: bool,
             key: str, divergence: int | None = None) -> None:
    layers = capture.encoder if part == "encoder" else capture.decoder
    for index, layer in enumerate(layers):
        quantities = [("h", layer.h), ("c", layer.c)] + ([(g, layer.gates[g]) for g in GATES] if show_gates else [])
        columns = st.columns(2)
        for position, (name, values) in enumerate(quantities):
            order = unit_order(values, order_mode)
            figure = state_heatmap(values, labels, f"{part.title()} layer {index + 1}: {name}_t", order,
                                   height=300, value_name=name,
                                   x_title="step (input token)" if part == "encoder" else "step (input → prediction)")
            marked = informative_units(values) if name in ("h", "c") else {}
            mark_units(figure, order, marked)
            if part == "decoder":
                mark_step(figure, divergence, "diverges")
            with columns[position % 2]:
                chart(st, figure, f"{key}_{part}_{index}_{name}")
                if marked:
                    st.caption("Outlined: " + "; ".join(f"unit {unit} {why}" for unit, why in marked.items())
                               + " (largest variance over steps / strongest correlation with position).")


st.title("Hidden and cell states")
st.caption("Every h_t, c_t and gate below is recomputed step by step with the model's own weights; "
           "it equals nn.LSTM's output.")
with st.sidebar:
    source = pick_source()
chart_format_picker()
with st.sidebar:
    example, problems = pick_example(source) if source else (None, [])
for problem in problems:
    st.error(problem)
if source is None:
    st.info("Pick a training run or load a checkpoint file in the sidebar.")
if source and example is None and not problems:
    st.info("Type a source sequence in the sidebar.")
if source and example:
    with st.sidebar:
        st.subheader("View")
        order_mode = st.selectbox("Unit order", UNIT_ORDERS, key="hs_order",
                                    help="Sorting units makes structure visible; hover shows each unit's number")
        show_gates = st.toggle("Show gates i, f, g, o", key="hs_gates")
        decoding = st.radio("Decoder in the heatmaps", ["free-running", "teacher-forced"], key="hs_decoding",
                               disabled=not example[1])
        units = st.multiselect("Units to follow as lines", range(source.config.hidden_dim), default=[0, 1, 2],
                               key="hs_units")

    @st.fragment(run_every=REFRESH_SECONDS if source.live else None)
    def views() -> None:
        model = source.model()
        src, tgt = example
        free = capture_states(model, source.src_vocab, source.tgt_vocab, src, max_len=source.config.max_len * 4 + 8)
        forced = capture_states(model, source.src_vocab, source.tgt_vocab, src, tgt, 1.0) if tgt else None
        shown = forced if decoding == "teacher-forced" and forced else free
        diverge = divergence_step(free.predicted, forced.predicted) if forced else None
        if source.live:
            st.caption(f"Following {source.label} live: refreshed every {REFRESH_SECONDS:.0f} s while it trains.")
        dec_labels = [f"{fed}→{out}" for fed, out in zip(shown.decoder_inputs, shown.predicted, strict=True)]

        st.subheader("Encoder (reads the source)")
        heatmaps(shown, "encoder", shown.src_tokens, order_mode, show_gates, "hs")
        st.subheader(f"Decoder, {'teacher-forced' if shown is forced else 'free-running'} (input → prediction)")
        heatmaps(shown, "decoder", dec_labels, order_mode, show_gates, "hs", diverge if shown is free else None)
        if units:
            left, right = st.columns(2)
            chart(left, unit_lines_figure(shown.encoder[-1].h, units, shown.src_tokens,
                                          "Encoder top layer h_t, chosen units", "h"), "hs_lines_enc")
            chart(right, unit_lines_figure(shown.decoder[-1].h, units, dec_labels,
                                           "Decoder top layer h_t, chosen units", "h"), "hs_lines_dec")

        st.subheader("Teacher-forced vs free-running, same example")
        if forced is None:
            st.info("Give a target to compare teacher-forced decoding with free-running.")
        else:
            st.markdown(f"Free-running predicts **{source.tgt_vocab.join(free.predicted)}**, teacher-forced "
                        f"**{source.tgt_vocab.join(forced.predicted)}** (target {source.tgt_vocab.join(tgt)}). "
                        + (f"They first differ at step **{diverge}**." if diverge is not None else "They agree."))
        columns = st.columns(2)
        for column, (name, capture) in zip(columns, (("free-running", free), ("teacher-forced", forced)),
                                           strict=True):
            if capture is None:
                continue
            labels = [f"{fed}→{out}" for fed, out in zip(capture.decoder_inputs, capture.predicted, strict=True)]
            figure = probs_figure(capture.probs, source.tgt_vocab.itos, labels, capture.predicted,
                                  f"Output probabilities, {name}")
            chart(column, mark_step(figure, diverge, "diverges"), f"hs_probs_{name}")

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
                                        projection.explained), "hs_pca")

        left, right = st.columns(2)
        left.download_button("Download states (.npz)", capture_npz(shown), "states.npz",
                             "application/octet-stream", key="hs_npz")
        right.download_button("Download states (CSV)", capture_csv(shown), "states.csv", "text/csv", key="hs_csv")

    views()
