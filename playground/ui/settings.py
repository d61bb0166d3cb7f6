"""The settings sidebar, drawn from `config.SETTINGS` (label, help, range: a setting is described once), and
the link that holds every setting that differs from its default (`st.query_params`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from playground.core.config import (
    DEFAULTS,
    SETTINGS,
    ConfigError,
    TrainConfig,
    applicable,
    coerce,
    label,
    whole_number,
)
from playground.core.devices import available_devices
from playground.core.tasks import MAX_CUSTOM_BYTES, TASKS, CustomPairs, TaskError, parse_custom_csv
from playground.training.trainer import build_task
from playground.ui.text import plain

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
    st.page_link("app_pages/glossary.py", label="Glossary: the words explained", icon=":material/menu_book:")


def url_problems() -> None:
    for problem in st.session_state.pop("url_problems", []):
        st.warning(plain(problem))  # a problem quotes the link's value: shown as typed, never as Markdown


def load_settings(config: TrainConfig) -> None:
    """Show a run's settings in the sidebar (call before the widgets are drawn)."""
    for name, value in config.as_dict().items():
        st.session_state[key(name)] = value


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
                                     max_upload_size=MAX_CUSTOM_BYTES // 1024**2,  # the browser refuses more
                                     help="One pair a row, source then target; at most 10 MB, 200,000 rows, "
                                          "64 tokens a side and 5,000 different tokens a side.")


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
            text = ",".join(map(link_text, value)) if isinstance(value, list) else link_text(value)
            if st.query_params.get(name) != text:
                st.query_params[name] = text


def link_text(value: Any) -> str:
    """How a value is written in a link: 0.5 not 0.50000, whole numbers and names as they are."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def allowed_text(choices: list[Any], most: int) -> str:
    """The first `most` allowed values, for a message about a value that is not."""
    return ", ".join(map(link_text, choices[:most])) + (" …" if len(choices) > most else "")


def _seed_from_link(widget: str, name: str, text: str, default: Any, options: dict[str, Iterable[Any]],
                    bounds: dict[str, tuple[int, int]]) -> None:
    if widget in options:
        allowed = list(options[widget])
        by_text = {link_text(option): option for option in allowed}
        parts = [part for part in text.split(",") if part] if isinstance(default, list) else [text]
        if parts and all(part in by_text for part in parts):
            chosen = [by_text[part] for part in parts]
            st.session_state[widget] = chosen if isinstance(default, list) else chosen[0]
            return
        st.session_state.setdefault("url_problems", []).append(
            f"The link's {name} = {text!r} is not allowed (choose from {allowed_text(allowed, 12)}): it keeps its "
            "default.")
        return
    low, high = bounds[widget]
    if (number := whole_number(text)) is not None and low <= number <= high:
        st.session_state[widget] = number
        return
    st.session_state.setdefault("url_problems", []).append(
        f"The link's {name} = {text!r} is not allowed (a whole number from {low:,} to {high:,}): it keeps its "
        "default.")
