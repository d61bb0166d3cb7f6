"""The settings sidebar, drawn from `config.SETTINGS` (label, help, range: a setting is described once), and
the link that holds every setting that differs from its default (`st.query_params`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from playground.core.config import (
    DEFAULTS,
    SETTINGS,
    ConfigError,
    TrainConfig,
    applicable,
    label,
)
from playground.core.devices import available_devices
from playground.core.tasks import MAX_CUSTOM_BYTES, TASKS, CustomPairs, TaskError
from playground.training.trainer import build_task
from playground.training.upload_reader import read_custom_csv
from playground.ui.text import plain

SETTING_PREFIX = ""  # a setting's widget key is its name, which is also its name in the link (bind="query-params")


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
BOUND = {"bind": "query-params", "persist_state": "session"}  # a widget in the link, kept across page switches


def key(name: str) -> str:
    return SETTING_PREFIX + name


def setting_value(name: str) -> Any:
    """A setting as its widget holds it, or its default before its widget was ever drawn in this session."""
    return st.session_state.get(key(name), getattr(DEFAULTS, name))


def shown_as(name: str, value: Any) -> str:
    """How a setting's widget shows a value, which is also how the link writes it (Streamlit binds the label)."""
    if name == "device":
        return value if value != "auto" else "auto (GPU if present)"
    if name in RADIOS:
        return RADIOS[name].get(value, str(value))
    if SETTINGS[name].options:
        return NAMES.get(name, {}).get(value, str(value).replace("_", " "))
    return link_text(value)


@dataclass
class Share:
    """A page's Share box (the top of the sidebar) and the link the page was opened with."""

    slot: Any
    opened_with: dict[str, list[str]]
    first_visit: bool


TYPED_TEXT_KEYS = ("source", "target")  # a typed source may read as a number ("inf" of a custom task's letters)


def drop_unreadable_numbers() -> None:
    """Take out of the link every value that reads as a number but no finite one (`steps=1e309`, `seed=-inf`)
    before a widget sees it: Streamlit's whole-number widgets read a link's value as a float and then fail on
    int(inf), a traceback instead of the page. The page's Share box names the value, with what is allowed."""
    unreadable = {name: st.query_params.get_all(name) for name in st.query_params
                  if name not in TYPED_TEXT_KEYS and not all(map(_finite_or_text, st.query_params.get_all(name)))}
    context = get_script_run_ctx()
    if not unreadable or context is None:
        return
    st.session_state.setdefault("dropped_link_values", {}).update(unreadable)
    with context.session_state.query_params() as params:  # widgets are seeded from the initial values: both go
        for name in unreadable:
            params.remove_param(name)
        params.set_initial_query_params_from_current()


def _finite_or_text(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return True


def share_slot(page: str) -> Share:
    """Where the page's Share box goes, filled by `share_link` once the page knows its values."""
    first_visit = not st.session_state.get(f"link_read_{page}")
    st.session_state[f"link_read_{page}"] = True
    opened_with = {name: st.query_params.get_all(name) for name in st.query_params}
    opened_with |= st.session_state.pop("dropped_link_values", {})
    return Share(st.sidebar.container(), opened_with, first_visit)


Texts = dict[str, str | list[str]]


def settings_share(share: Share, values: dict[str, Any], extra: Texts | None = None,
                   extra_defaults: Texts | None = None, extra_allowed: dict[str, str] | None = None,
                   run: dict[str, str] | None = None) -> None:
    """The Share box of a page whose link holds the settings (`values`, as `current_settings` gives them), the
    page's own bound values (`extra`, with their defaults and what they allow) and a run id (`run`)."""
    defaults = {name: shown_as(name, value) for name, value in DEFAULTS.as_dict().items() if name not in NOT_IN_URL}
    allowed = {name: ", ".join(shown_as(name, option) for option in SETTINGS[name].options)
               if SETTINGS[name].options else SETTINGS[name].allowed() for name in defaults}
    share_link(share, {name: shown_as(name, value) for name, value in values.items() if name not in NOT_IN_URL}
               | (extra or {}), defaults | (extra_defaults or {}), run, allowed | (extra_allowed or {}))


def share_link(share: Share, values: Texts, defaults: Texts, extra: dict[str, str] | None = None,
               allowed: dict[str, str] | None = None) -> None:
    """The page as a link to copy (st.code has a copy button) that opens the same page with the same values.

    `values` are every bound widget's value as the widget writes it in the address bar, `defaults` theirs at
    their defaults (left out of the link, as Streamlit does), `extra` what the page adds itself (a run id).
    On a session's first visit a value of the opening link that the page could not use (Streamlit drops a
    value that is not a choice or out of range) is named once, with what is `allowed`.
    """
    if share.first_visit:
        for name, asked in share.opened_with.items():
            if name not in values:
                continue
            now = values[name] if isinstance(values[name], list) else [values[name]]
            if asked != now and not (asked == [""] and now == []):
                st.warning(plain(f"The link's {label(name)} = {', '.join(asked)!r} cannot be used "  # as typed
                                 f"(allowed: {(allowed or {}).get(name, 'see the help of its widget')}): the page "
                                 f"shows {', '.join(now) or 'none'!r} instead."))
    params = {name: value if value != [] else "" for name, value in values.items()  # an empty list: `name=`
              if value != defaults.get(name)} | (extra or {})
    parts = urlsplit(st.context.url or "")
    link = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(params, doseq=True), ""))
    with share.slot:
        st.subheader("Share")
        st.caption("This link is what you see: it opens this page with the same values in any browser.")
        st.code(link, language=None, wrap_lines=True)


def glossary_link() -> None:
    """A link to the Glossary page, for pages whose words need explaining."""
    st.page_link("app_pages/glossary.py", label="Glossary: the words explained", icon=":material/menu_book:")


def load_settings(config: TrainConfig) -> None:
    """Show a run's settings in the sidebar (call before the widgets are drawn)."""
    for name, value in config.as_dict().items():
        st.session_state[key(name)] = value


def custom_pairs() -> CustomPairs | None:
    """The uploaded CSV's pairs, read once per upload and tokenization by the uploads' reader, outside the server;
    a refusal is remembered as well, so a refused file is not read again at the next rerun. The pairs travel
    with the run, never as a path."""
    state = st.session_state
    upload = state.get("custom_upload")
    if upload is None:
        return state.get(CUSTOM_PAIRS_KEY)
    read_as = (upload.file_id, setting_value("custom_tokenization"))
    if state.get("custom_upload_id") != read_as:
        state.custom_upload_id = read_as
        try:
            state[CUSTOM_PAIRS_KEY], state.custom_refusal = read_custom_csv(upload.getvalue(), read_as[1]), ""
        except TaskError as error:
            state[CUSTOM_PAIRS_KEY], state.custom_refusal = None, str(error)
    if state.get("custom_refusal"):
        raise TaskError(state.custom_refusal)
    return state.get(CUSTOM_PAIRS_KEY)


def current_settings(skip: Iterable[str] = (), force: Iterable[str] = ()) -> dict[str, Any]:
    """The settings as the widgets hold them right now, those that apply to the chosen task and optimizer.

    Read from session state, not from the last script run: a button's callback runs before the rerun that
    would redraw the widgets, so values returned by the widgets of the previous run can be stale.
    """
    values = {name: setting_value(name) for name in SETTINGS}
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
    """One setting's widget, labelled and explained as `config.SETTINGS` says, bound to the link under its name
    (Streamlit writes it in the address bar as it changes and leaves it out at its default)."""
    setting = SETTINGS[name]
    default = getattr(DEFAULTS, name)
    common = {"key": key(name), "help": setting.help, **BOUND}
    if name == "device":
        devices = ["auto", *(device.name for device in available_devices())]
        container.selectbox(setting.label, devices, devices.index(default), **common,
                            format_func=lambda device: shown_as("device", device))
    elif name == "lr":
        container.select_slider(setting.label, LEARNING_RATES, default, **common)
    elif name in RADIOS:
        options = list(RADIOS[name])
        container.radio(setting.label, options, options.index(default), horizontal=True,
                        format_func=RADIOS[name].get, **common)
    elif setting.options:
        options = list(setting.options)
        container.selectbox(setting.label, options, options.index(default), **common,
                            format_func=lambda value: shown_as(name, value))
    elif name in SLIDERS:
        kind = setting.kind
        container.slider(setting.label, kind(setting.low), kind(setting.high), kind(default),
                         step=kind(SLIDERS[name]), **common)
    else:  # a number box without hard limits: TrainConfig says what is allowed, in words
        integer = setting.kind is int
        container.number_input(setting.label, value=default, step=NUMBER_STEPS.get(name, 1 if integer else None),
                               format=None if integer else "%g", **common)


GROUP_TITLES = {"task": "Task", "model": "Model", "optimizer": "Optimizer", "forcing": "Teacher forcing",
                "run": "Run"}


def settings_sidebar(skip: Iterable[str] = ()) -> None:
    """Every setting that applies, grouped the way a person thinks about them. Whether a setting applies is asked
    just before its widget, so a link's task or optimizer decides which settings follow it."""
    skipped = set(skip) | {"custom_data"}
    with st.sidebar:
        for group, title in GROUP_TITLES.items():
            names = [name for name, setting in SETTINGS.items() if setting.group == group and name not in skipped]
            titled = False
            for name in names:
                if name not in applicable({n: setting_value(n) for n in SETTINGS}):
                    continue
                if not titled:
                    st.subheader(title)
                    titled = True
                setting_widget(st, name)
            if group == "task":
                st.caption(TASKS[setting_value("task")].description)
                if setting_value("task") == "custom":
                    st.file_uploader("CSV of source,target pairs", type=["csv", "txt"], key="custom_upload",
                                     max_upload_size=MAX_CUSTOM_BYTES // 1024**2,  # the browser refuses more
                                     help="One pair a row, source then target; at most 10 MB, 200,000 rows, "
                                          "64 tokens a side and 5,000 different tokens a side.")


def schedule_name(schedule: str) -> str:
    """A forcing schedule as the pages name it (and as its widgets write it in a link)."""
    return schedule.replace("_", " ")


def link_text(value: Any) -> str:
    """How a value is written in a link: 0.5 not 0.50000, whole numbers and names as they are."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def allowed_text(choices: list[Any], most: int) -> str:
    """The first `most` allowed values, for a message about a value that is not."""
    return ", ".join(map(link_text, choices[:most])) + (" …" if len(choices) > most else "")
