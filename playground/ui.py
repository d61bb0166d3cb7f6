"""The few Streamlit pieces several pages share: the settings sidebar and its link, runs by URL, the preview,
and the model and example pickers of the inspection pages (Hidden states, Decode).

This is the one module of the library that imports streamlit; everything it shows comes from the rest of
`playground`. Widgets are drawn from `config.SETTINGS` (label, help, range), so a setting is described once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from playground.analysis.decode import position_errors
from playground.analysis.states import best_by_free_running
from playground.core.config import (
    DEFAULTS,
    SETTINGS,
    ConfigError,
    TrainConfig,
    applicable,
    coerce,
    label,
)
from playground.core.devices import available_devices
from playground.core.model import Seq2Seq
from playground.core.tasks import TASKS, CustomPairs, Pair, Task, TaskData, TaskError, Vocab, parse_custom_csv
from playground.plots.common import chart_config, file_name
from playground.plots.decode import position_errors_figure
from playground.plots.states import state_heatmap
from playground.runs.background import BackgroundRun, RunError
from playground.runs.engine import FINAL_STATUSES, RunKind, RunStatus
from playground.runs.engines import TrainingSnapshot
from playground.runs.registry import RunSummary, registry
from playground.training.storage import CheckpointError, load_checkpoint
from playground.training.trainer import TrainedModel, build_task

SETTING_PREFIX = "cfg_"
CUSTOM_PAIRS_KEY = "custom_pairs"
LEARNING_RATES = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0)
SLIDERS = {"alphabet_size": 1, "max_digits": 1, "dropout": 0.05, "momentum": 0.01, "teacher_forcing_ratio": 0.05,
           "tf_end": 0.05}  # settings drawn as sliders, and their step; the others are number boxes or choices
RADIOS = {"coin": {"step": "per step (whole batch)", "token": "per token"},
          "custom_tokenization": {"char": "characters", "space": "space-separated words"}}
NAMES = {"optimizer": {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD + momentum"}}
NUMBER_STEPS = {"steps": 100, "eval_every": 10, "decay_steps": 100, "exp_k": 0.0005, "sigmoid_k": 10.0,
                "grad_clip": 0.5, "weight_decay": 0.01}
NOT_IN_URL = ("custom_data",)  # a link cannot carry uploaded pairs


def key(name: str) -> str:
    return SETTING_PREFIX + name


def keep_widget_state() -> None:
    """Seed every setting once (from the link on a fresh session), and keep it across page switches."""
    if key("task") not in st.session_state:
        for name, value in settings_from_url().items():
            st.session_state[key(name)] = value
    for name, value in DEFAULTS.as_dict().items():
        st.session_state.setdefault(key(name), value)
    for state_key in list(st.session_state):
        if str(state_key).startswith(SETTING_PREFIX):
            st.session_state[state_key] = st.session_state[state_key]


def settings_from_url() -> dict[str, Any]:
    """The settings a link holds; a value that is unknown or out of range keeps its default, with a message."""
    values: dict[str, Any] = {}
    for name in SETTINGS:
        if name in NOT_IN_URL or name not in st.query_params:
            continue
        text = st.query_params[name]
        try:
            value = coerce(name, text)
            problem = SETTINGS[name].check(value)
        except (TypeError, ValueError):
            problem = True
        if problem:
            st.session_state.setdefault("url_problems", []).append(
                f"The link's {label(name)} = {text!r} is not allowed (it must be {SETTINGS[name].allowed()}): "
                f"the default {getattr(DEFAULTS, name)!r} is used instead.")
        else:
            values[name] = value
    return values


def sync_url(config: TrainConfig | None, extra: dict[str, str] | None = None,
             owned: Iterable[str] = ()) -> None:
    """The link holds every setting that differs from the defaults, and the page's own keys (`extra`)."""
    if config is None:
        return
    wanted = {name: str(value) for name, value in config.changed().items() if name not in NOT_IN_URL}
    wanted |= extra or {}
    for name in [*SETTINGS, *owned]:
        if name not in wanted and name in st.query_params:
            del st.query_params[name]
    for name, value in wanted.items():
        if st.query_params.get(name) != value:
            st.query_params[name] = value


def share_link(page: str = "", leave_out: Iterable[str] = ()) -> None:
    """The experiment as a link to copy (st.code has a copy button): every setting that differs from its default.

    `page` is the page's URL path ("" for the default page); `leave_out` names keys that belong to this server
    only (a run id), so the link repeats the experiment rather than pointing at one run.
    """
    params = {name: value for name, value in st.query_params.to_dict().items() if name not in set(leave_out)}
    base = (st.context.url or "").rstrip("/")
    link = f"{base}/{page}" + (f"?{urlencode(params)}" if params else "")
    with st.sidebar:
        st.subheader("Share")
        st.caption("This link is the experiment: it holds every setting that differs from the defaults. "
                   "Opening it sets the widgets as they are now.")
        st.code(link, language=None, wrap_lines=True)


def glossary_link() -> None:
    """A link to the Glossary page, for pages whose words need explaining."""
    st.page_link("pages/glossary.py", label="Glossary: the words explained", icon=":material/menu_book:")


def url_problems() -> None:
    for problem in st.session_state.pop("url_problems", []):
        st.warning(problem)


def load_settings(config: TrainConfig) -> None:
    """Show a run's settings in the sidebar (call before the widgets are drawn)."""
    for name, value in config.as_dict().items():
        st.session_state[key(name)] = value


def attached_run(kind: RunKind, session_key: str, url_key: str,
                 show_settings: Callable[[BackgroundRun[Any]], None]) -> BackgroundRun[Any] | None:
    """The run a page shows: the session's, else the URL's (which survives a reload); forgotten if it is gone.

    A fresh session (a reload) calls `show_settings` so the sidebar shows the run's own settings; call this
    before `keep_widget_state`.
    """
    fresh_session = key("task") not in st.session_state
    run_id = st.session_state.get(session_key, st.query_params.get(url_key))
    if not run_id:
        return None
    run = open_run(run_id, kind)
    if run is None:  # a deleted or damaged run, or a foreign id in the URL
        st.session_state.pop(session_key, None)
        st.query_params.pop(url_key, None)
        return None
    st.session_state[session_key] = st.query_params[url_key] = run_id
    if fresh_session:
        show_settings(run)
    return run


def session_owner() -> str:
    """Who owns the runs this browser session starts (what shared mode filters by)."""
    return st.session_state.setdefault("session_owner", uuid.uuid4().hex)


def visible_runs() -> list[RunSummary]:
    """The runs this session may see: all of them, or in shared mode its own and those opened by a link."""
    return registry().list(session_owner(), frozenset(st.session_state.get("opened_runs", ())))


def open_run(run_id: str, kind: RunKind) -> BackgroundRun[Any] | None:
    """A run of this kind by id, or None (the reason is kept for `run_problem`); opening grants this session
    sight of it (a link is how a run is shared)."""
    st.session_state.setdefault("opened_runs", set()).add(run_id)
    try:
        run = registry().get(run_id)
    except (RunError, ValueError) as error:  # ValueError: a damaged run (config, checkpoint, task)
        st.session_state.run_problem = f"Cannot open run {run_id}: {error}"
        return None
    if run.kind != kind:
        st.session_state.run_problem = f"Run {run_id} is a {run.kind} run, not a {kind} run."
        return None
    return run


def custom_pairs() -> CustomPairs | None:
    """The uploaded CSV's pairs, parsed once per upload; they travel with the run, never as a path."""
    state = st.session_state
    upload = state.get("custom_upload")
    if upload is None:
        return state.get(CUSTOM_PAIRS_KEY)
    tokenization = state[key("custom_tokenization")]
    cached = state.get(CUSTOM_PAIRS_KEY)
    if state.get("custom_upload_id") != (upload.file_id, tokenization) or cached is None:
        state.custom_upload_id = (upload.file_id, tokenization)
        state[CUSTOM_PAIRS_KEY] = cached = parse_custom_csv(upload.getvalue(), tokenization)
    return cached


def current_settings(skip: Iterable[str] = (), force: Iterable[str] = ()) -> dict[str, Any]:
    """The settings as the widgets hold them right now, those that apply to the chosen task and optimizer.

    Read from session state, not from the last script run: a button's callback runs before the rerun that
    would redraw the widgets, so values returned by the widgets of the previous run can be stale.
    """
    values = {name: st.session_state[key(name)] for name in SETTINGS}
    return {name: values[name] for name in [*applicable(values), *force] if name not in skip}


def checked_config(skip: Iterable[str] = (),
                   force: Iterable[str] = ()) -> tuple[TrainConfig | None, CustomPairs | None, list[str]]:
    """The current settings as a validated config with its custom pairs, or the problems (named by label);
    `force` names settings to read although the sidebar's own choices would not apply them."""
    values = current_settings(skip, force)
    custom = None
    try:
        if values["task"] == "custom":
            custom = custom_pairs()
            values["custom_data"] = custom.fingerprint if custom is not None else ""
        config = TrainConfig.from_dict(values)
        build_task(config, custom)
    except ConfigError as error:
        return None, None, error.messages(label)
    except TaskError as error:
        return None, None, [str(error)]
    return config, custom, []


def setting_widget(container: Any, name: str) -> None:
    """One setting's widget, labelled and explained as `config.SETTINGS` says."""
    setting = SETTINGS[name]
    common = {"key": key(name), "help": setting.help}
    if name == "device":
        devices = {device.name: device.label for device in available_devices()}
        container.selectbox(setting.label, ["auto", *devices], **common,
                            format_func=lambda device: devices.get(device, "auto (GPU if present)"))
    elif name == "lr":
        container.select_slider(setting.label, LEARNING_RATES, **common)
    elif name in RADIOS:
        container.radio(setting.label, list(RADIOS[name]), horizontal=True, format_func=RADIOS[name].get, **common)
    elif setting.options:
        names = NAMES.get(name, {})
        container.selectbox(setting.label, list(setting.options), **common,
                            format_func=lambda value: names.get(value, value.replace("_", " ")))
    elif name in SLIDERS:
        kind = setting.kind
        container.slider(setting.label, kind(setting.low), kind(setting.high), step=kind(SLIDERS[name]), **common)
    else:  # a number box without hard limits: TrainConfig says what is allowed, in words
        integer = setting.kind is int
        container.number_input(setting.label, step=NUMBER_STEPS.get(name, 1 if integer else None),
                               format=None if integer else "%g", **common)


GROUP_TITLES = {"task": "Task", "model": "Model", "optimizer": "Optimizer", "forcing": "Teacher forcing",
                "run": "Run"}


def settings_sidebar(skip: Iterable[str] = ()) -> None:
    """Every setting that applies, grouped the way a person thinks about them; values live in `cfg_<name>`."""
    skipped = set(skip) | {"custom_data"}
    with st.sidebar:
        for group, title in GROUP_TITLES.items():
            shown = [name for name in applicable({n: st.session_state[key(n)] for n in SETTINGS})
                     if SETTINGS[name].group == group and name not in skipped]
            if not shown:
                continue
            st.subheader(title)
            for name in shown:
                setting_widget(st, name)
            if group == "task":
                st.caption(TASKS[st.session_state[key("task")]].description)
                if st.session_state[key("task")] == "custom":
                    st.file_uploader("CSV of source,target pairs", type=["csv", "txt"], key="custom_upload",
                                     help="One pair a row, source then target; at most 10 MB, 200,000 rows, "
                                          "64 tokens a side and 5,000 different tokens a side.")


CHART_FORMATS = {"png": "PNG (picture)", "svg": "SVG (vector, for slides and papers)"}


def chart(container: Any, figure: Any, key: str, name: str | None = None) -> None:
    """Every page's one way to draw a plotly figure: the shared toolbar and download settings, full width.

    The toolbar's camera saves the chart as PNG or SVG (the sidebar's "Chart downloads" choice) under a name
    taken from the title, so a saved file says what it shows.
    """
    config = chart_config(name or file_name(figure.layout.title.text or key))
    config["toImageButtonOptions"]["format"] = st.session_state.get("chart_format", "png")
    container.plotly_chart(figure, key=key, width="stretch", config=config)


def live_run_view(run: BackgroundRun[Any] | None, polling: bool, seconds: float, waiting: str, noun: str,
                  show: Callable[[Any, str], None]) -> None:
    """A run's view, redrawn every `seconds` while it trains (`show(snapshot, status)`), with one warning when it
    ended with a message, and a rerun then so the fragment re-registers without a timer."""
    @st.fragment(run_every=seconds if polling else None)
    def live() -> None:
        if run is None:
            st.info(waiting)
            return
        show(run.snapshot(), run.status)
        if run.status in FINAL_STATUSES:
            if run.message:
                st.warning(f"The {noun} ended ({run.status}): {run.message}")
            if polling:
                st.rerun()

    live()


def compounding_errors(container: Any, run: BackgroundRun[Any], key: str) -> None:
    """Where exposure bias compounds: error by output position, teacher-forced against free-running, for every
    model of an ended run, on its validation set; computed once per run and step (a few forward passes)."""
    cached = st.session_state.get(f"{key}_errors")
    if cached is None or cached[0] != (run.id, run.step):
        errors = {model.label: position_errors(model.model, model.task, model.val_pairs) for model in run.models()
                  if model.val_pairs}
        cached = st.session_state[f"{key}_errors"] = ((run.id, run.step), errors)
    if cached[1]:
        chart(container, position_errors_figure(cached[1]), key)


def chart_format_picker() -> None:
    """The format the charts' camera button saves (plotly offers one per button)."""
    st.sidebar.radio("Chart downloads (camera button)", list(CHART_FORMATS), format_func=CHART_FORMATS.get,
                     key="chart_format", horizontal=True,
                     help="What the camera button in a chart's toolbar saves: a PNG picture or an SVG drawing "
                          "that scales without blur; the file is named after the chart")


def run_label(run: BackgroundRun[Any]) -> str:
    return run.name if run.name != run.id else run.id


def state_preview(snapshot: TrainingSnapshot) -> None:
    """Encoder and decoder h_t (top layer) on one fixed validation example."""
    capture = snapshot.preview
    if capture is None:
        return
    st.markdown(f"**Hidden states h_t** of the top layer on one validation example, refreshed at each evaluation "
                f"(step {snapshot.rows[-1]['step']:.0f} or earlier). The **Hidden states** page shows more.")
    left, right = st.columns(2)
    chart(left, state_heatmap(capture.encoder[-1].h, capture.src_tokens, "Encoder h_t (reads the source)",
                              height=300, value_name="h"), "preview_encoder")
    labels = [f"{fed}→{out}" for fed, out in zip(capture.decoder_inputs, capture.predicted, strict=True)]
    chart(right, state_heatmap(capture.decoder[-1].h, labels, "Decoder h_t (input → prediction)",
                               height=300, value_name="h"), "preview_decoder")


def runs_panel(kind: RunKind, session_key: str, url_key: str, show_settings: Callable[[BackgroundRun[Any]], None],
               live_metrics: Callable[[], str | bytes], current: str | None) -> None:
    """The runs of one kind: open, rename, delete, download (the run on screen downloads its live rows)."""
    runs = registry()

    def open_listed(run_id: str) -> None:
        if (opened := open_run(run_id, kind)) is None:
            return
        st.session_state[session_key] = run_id
        show_settings(opened)

    with st.expander("Runs: open, rename, delete, download"):
        if problem := st.session_state.pop("run_problem", None):
            st.error(problem)
        labels = {summary.id: f"{summary.name} ({summary.status}, step {summary.step:,} of "
                              f"{summary.total_steps:,}) — {summary.id}"
                  for summary in visible_runs() if summary.kind == kind}
        if not labels:
            st.caption("No runs yet.")
            return
        chosen = st.selectbox("Run", list(labels), format_func=labels.get, key=f"manage_{kind}",
                              help="A run of this kind, newest first: its name, status, steps and folder id")
        columns = st.columns(4)
        columns[0].button("Open", key=f"open_{kind}", on_click=open_listed, args=(chosen,),
                      help="Show this run on the page, with its settings in the sidebar")
        new_name = columns[1].text_input("New name", key=f"new_name_{kind}", label_visibility="collapsed",
                                         placeholder="new name",
                                         help="A new name for the chosen run (its folder id stays the same)")
        if columns[2].button("Rename", key=f"rename_{kind}", help="Give the chosen run the name typed on the left"):
            try:
                runs.rename(chosen, new_name)
                st.rerun()
            except RunError as error:
                st.error(str(error))
        if columns[3].button("Delete", key=f"delete_{kind}",
                             help="Stop the chosen run if it trains and delete its folder: this cannot be undone"):
            try:
                runs.delete(chosen)
            except RunError as error:
                st.error(str(error))
            else:
                if st.session_state.get(session_key) == chosen:
                    st.session_state.pop(session_key)
                    st.query_params.pop(url_key, None)
                st.rerun()
        downloads = st.columns(2)  # the files are read only when a download is clicked
        downloads[0].download_button("Metrics (CSV)", lambda: live_metrics() if chosen == current
                                     else runs.metrics_file(chosen), f"{chosen}-metrics.csv", "text/csv",
                                     key=f"download_metrics_{kind}")
        downloads[1].download_button("Checkpoint (.pt)", lambda: runs.checkpoint_file(chosen), f"{chosen}.pt",
                                     "application/octet-stream", key=f"download_checkpoint_{kind}")


MAX_EXAMPLES = 200  # validation examples offered in the example picker


@dataclass
class Source:
    """Where an inspected model comes from; `model` is called for a fresh copy (a live run keeps training)."""

    label: str
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


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint and regenerating its validation data")
def checkpoint_source(data: bytes) -> tuple[Seq2Seq, TrainConfig, Task, list[Pair], str]:
    """The checkpoint's first model and its task; the validation set is regenerated from its config and pairs."""
    loaded = load_checkpoint(data)
    try:
        task = build_task(loaded.config, loaded.custom)
    except TaskError as error:
        raise CheckpointError(f"the checkpoint's task cannot be rebuilt: {error}") from None
    try:
        pairs, note = TaskData(task, loaded.config.seed, loaded.config.val_size).val_pairs, ""
    except TaskError as error:
        pairs, note = [], f"Validation examples cannot be regenerated ({error}); type a source below."
    return loaded.model, loaded.config, task, pairs, note


INSPECTION_URL_KEYS = ("run", "model", "example", "source", "target")  # what an inspection page's link holds


def link_choice(prefix: str, name: str, allowed: Iterable[Any], what: str) -> None:
    """Seed widget `{prefix}_{name}` from the link's `name` once per session, if the value is one of `allowed`;
    otherwise say, once, which value was ignored and what is allowed."""
    widget = f"{prefix}_{name}"
    if widget in st.session_state or name not in st.query_params:
        return
    text, choices = st.query_params[name], list(allowed)
    chosen = next((choice for choice in choices if str(choice) == text), None)
    if chosen is None:
        shown = ", ".join(map(str, choices[:5])) + (" …" if len(choices) > 5 else "")
        st.warning(f"The link's {what} {text!r} is not here (allowed: {shown}): showing the default instead.")
        return
    st.session_state[widget] = chosen


def link_settings(defaults: dict[str, Any], names: dict[str, str], options: dict[str, Iterable[Any]],
                  bounds: dict[str, tuple[int, int]]) -> None:
    """For a page whose settings are not a TrainConfig (the Study grid, the chosen lesson): widget key ->
    URL `names`, seeded once per session from the link (lists as comma-separated values, each one of its
    `options`; whole numbers within `bounds`; one message naming a value that is not allowed, whose widget keeps
    its default), then the link rewritten with every value that differs from `defaults`."""
    flag = f"linked_{next(iter(names))}"
    if not st.session_state.get(flag):
        st.session_state[flag] = True
        for widget, name in names.items():
            if name in st.query_params:
                _seed_from_link(widget, name, st.query_params[name], defaults[widget], options, bounds)
    for widget, name in names.items():
        value = st.session_state.get(widget, defaults[widget])
        if value == defaults[widget]:
            st.query_params.pop(name, None)
        else:
            text = ",".join(map(_link_text, value)) if isinstance(value, list) else _link_text(value)
            if st.query_params.get(name) != text:
                st.query_params[name] = text


def _link_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _seed_from_link(widget: str, name: str, text: str, default: Any, options: dict[str, Iterable[Any]],
                    bounds: dict[str, tuple[int, int]]) -> None:
    if widget in options:
        allowed = list(options[widget])
        by_text = {_link_text(option): option for option in allowed}
        parts = [part for part in text.split(",") if part] if isinstance(default, list) else [text]
        if parts and all(part in by_text for part in parts):
            chosen = [by_text[part] for part in parts]
            st.session_state[widget] = chosen if isinstance(default, list) else chosen[0]
            return
        shown = ", ".join(map(_link_text, allowed[:12])) + (" …" if len(allowed) > 12 else "")
        st.session_state.setdefault("url_problems", []).append(
            f"The link's {name} = {text!r} is not allowed (choose from {shown}): it keeps its default.")
        return
    low, high = bounds[widget]
    if text.isdigit() and low <= int(text) <= high:
        st.session_state[widget] = int(text)
        return
    st.session_state.setdefault("url_problems", []).append(
        f"The link's {name} = {text!r} is not allowed (a whole number from {low:,} to {high:,}): it keeps its "
        "default.")


def link_keep(**values: Any) -> None:
    """The inspection page's link: these values, and none of the other INSPECTION_URL_KEYS."""
    for name in INSPECTION_URL_KEYS:
        value = values.get(name)
        if value in (None, ""):
            st.query_params.pop(name, None)
        elif st.query_params.get(name) != str(value):
            st.query_params[name] = str(value)


def pick_source(prefix: str) -> Source | None:
    """A run of any kind (and, for a comparison, one of its models) or an uploaded checkpoint; widget keys start
    with `prefix` so two pages keep their own choices."""
    kind = st.radio("Model from", ["a training run", "a checkpoint file"], horizontal=True, key=f"{prefix}_from",
                    help="A run from the Train or Compare page (or the CLI), or a checkpoint file downloaded from one")
    if kind == "a checkpoint file":
        link_keep()  # an upload cannot travel in a link
        upload = st.file_uploader("Checkpoint (.pt, saved by the Train page)", type=["pt"], key=f"{prefix}_upload",
                                  help="Read with torch.load(weights_only=True): data only, never code")
        if upload is None:
            return None
        try:
            model, config, task, pairs, note = checkpoint_source(upload.getvalue())
        except CheckpointError as error:
            st.error(str(error))
            return None
        if note:
            st.info(note)
        return Source(upload.name, config, task, pairs, False, lambda: model)
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
        st.error(f"cannot open run {run_id}: {error}")
        return None
    index = 0
    if len(models) > 1:
        link_choice(prefix, "model", range(len(models)), "model number")
        index = st.selectbox("Model", range(len(models)), format_func=lambda k: models[k].label,
                             key=f"{prefix}_model", help="A comparison trains several models: pick which one")
    index = min(index, len(models) - 1)
    st.session_state[f"{prefix}_link"] = {"run": run_id, "model": index if len(models) > 1 else None}
    chosen = models[index]
    label = names[run_id] + (f" — {chosen.label}" if chosen.label else "")
    return Source(label, chosen.config, chosen.task, chosen.val_pairs, run.status == RunStatus.RUNNING,
                  lambda: run.models()[index].model, run.models if len(models) > 1 else None)


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
        index = st.selectbox("Validation example", range(len(pairs)), key=f"{prefix}_example",
                             format_func=lambda i: f"{source.src_vocab.join(pairs[i][0])} → "
                                                   f"{source.tgt_vocab.join(pairs[i][1])}",
                             help=f"The first {MAX_EXAMPLES} of the run's validation set, source → target")
        if link:  # from a run (an uploaded checkpoint has no link)
            link_keep(**link, example=index)
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
        link_keep(**link, source=text, target=target_text)
    src = source.src_vocab.tokenize(text)
    if not src:
        return None, []
    tgt = source.tgt_vocab.tokenize(target_text)
    problems = [f"{side} has tokens outside the model's vocabulary: {', '.join(map(repr, bad))}"
                for side, bad in (("The source", source.src_vocab.unknown(src)),
                                  ("The target", source.tgt_vocab.unknown(tgt))) if bad]
    return (None if problems else (src, tgt)), problems


def inspection_sidebar(prefix: str) -> tuple[Source | None, Pair | None]:
    """The model and example pickers in the sidebar; when either is missing, the page says what to do next."""
    with st.sidebar:
        source = pick_source(prefix)
        example, problems = pick_example(source, prefix) if source else (None, [])
    for problem in problems:
        st.error(problem)
    if source is None:
        st.info("Pick a training run or load a checkpoint file in the sidebar.")
    elif example is None and not problems:
        st.info("Type a source sequence in the sidebar.")
    return source, example
