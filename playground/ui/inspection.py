"""The model and example pickers of the inspection pages (Hidden states, Decode), and their link: the run, the
model of a comparison, the validation example or typed source."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from playground.core.config import (
    TrainConfig,
)
from playground.core.tasks import Pair, Task, TaskData, TaskError, Vocab
from playground.inspection.decoding import check_source, free_running_mistakes
from playground.inspection.oracle import decoding_model
from playground.inspection.states import best_by_free_running
from playground.model.seq2seq import Seq2Seq
from playground.runs.background import RunError
from playground.runs.registry import registry
from playground.training.checkpoints import CheckpointError
from playground.training.run_folder import FINAL_STATUSES, RunKind, RunStatus
from playground.training.trainer import TrainedModel, build_beyond, build_task
from playground.training.upload_reader import read_checkpoint
from playground.ui.runs import visible_runs
from playground.ui.settings import Share, allowed_text, link_text, share_link
from playground.ui.text import plain
from playground.ui.uploads import checkpoint_upload_mb

MAX_EXAMPLES = 200  # validation examples offered in the example picker


@dataclass
class Source:
    """Where an inspected model comes from; `model` is called for a fresh copy (a live run keeps training)."""

    label: str  # Markdown-safe (`plain`)
    config: TrainConfig
    task: Task
    val_pairs: list[Pair]
    live: bool
    model: Callable[[], Seq2Seq]
    arms: Callable[[], list[TrainedModel]] | None = None  # every model of a comparison, for views across arms

    @property
    def src_vocab(self) -> Vocab:
        return self.task.src_vocab

    @property
    def tgt_vocab(self) -> Vocab:
        return self.task.tgt_vocab


@st.cache_resource(max_entries=16, show_spinner="Reading the checkpoint in a separate process")
def checkpoint_source(digest: str, _data: bytes) -> tuple[Seq2Seq, TrainConfig, Task, list[Pair], str] | str:
    """The checkpoint's first model (the only one built) and its task, the validation set regenerated from its
    config and pairs; or, for a refused file, the reason, cached by the file's digest like an answer, so a
    refused file is not read again at the next rerun or by the next session that sends it."""
    try:
        loaded, _ = read_checkpoint(_data)
        task = build_task(loaded.config, loaded.custom)
    except CheckpointError as error:
        return str(error)
    except TaskError as error:
        return f"the checkpoint's task cannot be rebuilt: {error}"
    try:
        pairs, note = TaskData(task, loaded.config.seed, loaded.config.val_size,
                                  build_beyond(loaded.config)).val_pairs, ""
    except TaskError as error:
        pairs, note = [], f"Validation examples cannot be regenerated ({error}); type a source below."
    return loaded.model, loaded.config, task, pairs, note


def upload_digest(upload: Any) -> str:
    """The SHA-256 of an uploaded file, computed once per upload (a checkpoint may be large)."""
    remembered = st.session_state.setdefault("upload_digests", {})
    if upload.file_id not in remembered:
        remembered.clear()
        remembered[upload.file_id] = hashlib.sha256(upload.getvalue()).hexdigest()
    return remembered[upload.file_id]


INSPECTION_URL_KEYS = ("run", "model", "example", "source", "target")  # what an inspection page's link holds


def link_choice(prefix: str, name: str, allowed: Iterable[Any], what: str) -> None:
    """Set widget `{prefix}_{name}` from the link's `name` whenever the link brings a value this session has not
    applied yet (a fresh session, or a page link from a lesson), if it is one of `allowed`; otherwise say, once,
    which value was ignored and what is allowed."""
    widget = f"{prefix}_{name}"
    if name not in st.query_params or st.session_state.get(f"{prefix}_link_written", {}).get(name) == \
            st.query_params[name]:
        return  # no link, or the link this page wrote itself
    st.session_state.setdefault(f"{prefix}_link_written", {})[name] = st.query_params[name]
    text, choices = st.query_params[name], list(allowed)
    chosen = {link_text(choice): choice for choice in choices}.get(text)
    if chosen is None:
        st.warning(plain(f"The link's {what} {text!r} is not here (allowed: {allowed_text(choices, 5)}): showing "
                         "the default instead."))
        return
    st.session_state[widget] = chosen


def link_keep(prefix: str, **values: Any) -> None:
    """The inspection page's link: these values, and none of the other INSPECTION_URL_KEYS; what it writes is
    remembered, so `link_choice` applies only a link that comes from elsewhere."""
    written = st.session_state.setdefault(f"{prefix}_link_written", {})
    for name in INSPECTION_URL_KEYS:
        value = values.get(name)
        written[name] = None if value in (None, "") else str(value)
        if written[name] is None:
            st.query_params.pop(name, None)
        elif st.query_params.get(name) != written[name]:
            st.query_params[name] = written[name]


def pick_source(prefix: str) -> Source | None:
    """A run of any kind (and, for a comparison, one of its models) or an uploaded checkpoint; widget keys start
    with `prefix` so two pages keep their own choices."""
    kind = st.radio("Model from", ["a training run", "a checkpoint file"], horizontal=True, key=f"{prefix}_from",
                    help="A run from the Train or Compare page (or the CLI), or a checkpoint file downloaded from one")
    if kind == "a checkpoint file":
        link_keep(prefix)  # an upload cannot travel in a link
        upload = st.file_uploader("Checkpoint (.pt, saved by the Train page)", type=["pt"], key=f"{prefix}_upload",
                                  max_upload_size=checkpoint_upload_mb(),
                                  help="Read with torch.load(weights_only=True): data only, never code")
        if upload is None:
            return None
        read = checkpoint_source(upload_digest(upload), upload.getvalue())
        if isinstance(read, str):
            st.error(plain(read))
            return None
        model, config, task, pairs, note = read
        if note:
            st.info(note)
        return Source(plain(upload.name), config, task, pairs, False, lambda: decoding_model(model, config))
    summaries = [summary for summary in visible_runs() if summary.kind != RunKind.STUDY]  # a study keeps no models
    if not summaries:
        st.info("No runs yet: start one on the Train or Compare page, or load a checkpoint file.")
        return None
    names = {summary.id: f"{summary.name} ({summary.kind}, {summary.status})" for summary in summaries}
    link_choice(prefix, "run", names, "run")
    if st.session_state.get(f"{prefix}_run") not in names:  # the run looked at last, else the best finished one
        st.session_state[f"{prefix}_run"] = first_run(
            [summary.id for summary in summaries if summary.status in FINAL_STATUSES], list(names))
    run_id = st.selectbox("Run", list(names), format_func=names.get, key=f"{prefix}_run",
                          help="Every run folder, newest first; a run that is training gives its latest weights")
    st.session_state.last_inspected_run = run_id
    try:
        run = registry().get(run_id)
        models = run.models()
    except (RunError, CheckpointError, TaskError, ValueError) as error:
        st.error(plain(f"cannot open run {run_id}: {error}"))
        return None
    index = 0
    if len(models) > 1:
        link_choice(prefix, "model", range(len(models)), "model number")
        index = st.selectbox("Model", range(len(models)), format_func=lambda k: models[k].label,
                             key=f"{prefix}_model", help="A comparison trains several models: pick which one")
    index = min(index, len(models) - 1)
    st.session_state[f"{prefix}_link"] = {"run": run_id, "model": index if len(models) > 1 else None}
    chosen = models[index]
    label = plain(names[run_id] + (f" — {chosen.label}" if chosen.label else ""))  # shown in captions
    return Source(label, chosen.config, chosen.task, chosen.val_pairs, run.status == RunStatus.RUNNING,
                  lambda: decoding_model(run.models()[index].model, chosen.config),
                  run.models if len(models) > 1 else None)


def first_run(finished: list[str], listed: list[str]) -> str:
    """The run this session looked at last (on any inspection page), else the finished run with the best
    free-running exact match, else the newest."""
    if (last := st.session_state.get("last_inspected_run")) in listed:
        return last
    metrics = {}
    for run_id in finished:
        try:
            metrics[run_id] = registry().metrics_file(run_id)
        except (RunError, OSError, ValueError):
            continue  # a damaged run is not a candidate
    return best_by_free_running(metrics) or listed[0]


def pick_example(source: Source, prefix: str) -> tuple[Pair | None, list[str]]:
    """The chosen example, or None with the problems to show (tokens outside the vocabulary)."""
    choices = ["a validation example", "type a source"] if source.val_pairs else ["type a source"]
    if f"{prefix}_how" not in st.session_state and "source" in st.query_params:  # a link to a typed source
        st.session_state[f"{prefix}_how"] = "type a source"
        st.session_state[f"{prefix}_source"] = st.query_params["source"]
        st.session_state[f"{prefix}_target"] = st.query_params.get("target", "")
    link = st.session_state.pop(f"{prefix}_link", {})
    how = st.radio("Example", choices, horizontal=True, key=f"{prefix}_how",
                   help="Validation examples were never trained on; a typed source may be anything in the vocabulary")
    if how == "a validation example":
        pairs = source.val_pairs[:MAX_EXAMPLES]
        link_choice(prefix, "example", range(len(pairs)), "validation example number")
        wrong = free_running_mistakes(source.model(), source.task, pairs)
        mistakes = [index for index, bad in enumerate(wrong) if bad]
        index = st.selectbox("Validation example", range(len(pairs)), key=f"{prefix}_example",
                             format_func=lambda i: f"{'✗ ' if wrong[i] else ''}{source.src_vocab.join(pairs[i][0])} → "
                                                   f"{source.tgt_vocab.join(pairs[i][1])}",
                             help=f"The first {MAX_EXAMPLES} of the run's validation set, source → target; ✗ marks "
                                  "the examples this model gets wrong decoding on its own (free-running)")
        st.button("Show me a mistake", key=f"{prefix}_mistake", on_click=next_mistake, args=(prefix, mistakes),
                  disabled=not mistakes, icon=":material/search:",
                  help=f"The next example this model gets wrong free-running ({len(mistakes)} of {len(pairs)}): "
                       "where exposure bias shows" if mistakes else "This model gets every example here right")
        if link:  # from a run (an uploaded checkpoint has no link)
            link_keep(prefix, **link, example=index)
        return pairs[index], []
    symbols = source.src_vocab.itos[4:]
    text = st.text_input("Source", key=f"{prefix}_source", placeholder=f"e.g. {source.src_vocab.join(symbols[:5])}",
                         help=f"Tokens of the model's source vocabulary only: {' '.join(symbols[:60])} "
                              f"(case-sensitive{', separated by spaces' if source.src_vocab.separator else ''}). "
                              f"Training sources were {source.config.min_len} to {source.config.max_len} long: "
                              "try a longer one to see where free-running decoding drifts.")
    st.caption(f"Accepted: {' '.join(symbols[:30])}{' …' if len(symbols) > 30 else ''} (case-sensitive). "
               "Try an input longer than the training ones.")
    target_text = st.text_input("Target (optional; needed for teacher forcing)", key=f"{prefix}_target",
                                help="The true output: teacher forcing feeds its tokens to the decoder")
    if link:
        link_keep(prefix, **link, source=text, target=target_text)
    src = source.src_vocab.tokenize(text)
    if not src:
        return None, []
    tgt = source.tgt_vocab.tokenize(target_text)
    problems = [f"{side} has tokens outside the model's vocabulary: {', '.join(map(repr, bad))}"
                for side, bad in (("The source", source.src_vocab.unknown(src)),
                                  ("The target", source.tgt_vocab.unknown(tgt))) if bad]
    if not problems:  # one bound for typed and linked sources on every page: a long one costs minutes of CPU
        try:
            check_source(source.task, source.src_vocab, src)
        except ValueError as error:
            problems.append(f"The source cannot be shown: {error}.")
        if len(tgt) > (longest := source.task.decode_limit(len(src))):
            problems.append(f"The target has {len(tgt):,} symbols; at most {longest:,} are allowed for this source "
                            "(the decoding limit).")
    return (None if problems else (src, tgt)), [plain(problem) for problem in problems]


def next_mistake(prefix: str, mistakes: list[int]) -> None:
    """Select the next example the model gets wrong after the one shown (from the first again at the end)."""
    shown = st.session_state.get(f"{prefix}_example", -1)
    st.session_state[f"{prefix}_example"] = next((index for index in mistakes if index > shown), mistakes[0])


def inspection_sidebar(prefix: str, share: Share) -> tuple[Source | None, Pair | None]:
    """The model and example pickers in the sidebar, and the page's Share box: the pickers' link (`link_keep`:
    bind does not serve them, their choices depend on the run chosen) with the view's bound widgets, which
    Streamlit has already written in the address; when a picker is empty, the page says what to do next."""
    with st.sidebar:
        source = pick_source(prefix)
        example, problems = pick_example(source, prefix) if source else (None, [])
    current = {name: st.query_params.get_all(name) for name in st.query_params}
    share_link(share, {name: values[0] if len(values) == 1 else values for name, values in current.items()}, {})
    for problem in problems:
        st.error(problem)
    if source is None:
        st.info("Pick a training run or load a checkpoint file in the sidebar.")
    elif example is None and not problems:
        st.info("Type a source sequence in the sidebar.")
    return source, example
