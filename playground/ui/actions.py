"""The pages' buttons (Start, Stop, Pause, Resume, Step, Train on, ...) act through one guard, so an action that is
refused becomes one message on the page, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec

import streamlit as st

from playground.runs.background import RunError

P = ParamSpec("P")
# what a refused action raises: a run that cannot do it now or is not this person's (RunError), and bad input or a
# damaged run folder (ValueError: ConfigError, TaskError, DamagedFile)
REFUSALS = (RunError, ValueError)


def _message_key(page: str) -> str:
    return f"{page}_error"


def guarded_action(page: str) -> Callable[[Callable[P, object]], Callable[P, None]]:
    """Wrap a button's callback so that a refusal is kept for `show_refusal(page)`: a callback runs before the
    page's script, so its message can only be drawn by the run of the script that follows it."""

    def guard(action: Callable[P, object]) -> Callable[P, None]:
        @functools.wraps(action)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                action(*args, **kwargs)
            except REFUSALS as error:
                st.session_state[_message_key(page)] = str(error)

        return guarded

    return guard


def show_refusal(page: str) -> None:
    """The message of the page's last refused action, once."""
    if message := st.session_state.pop(_message_key(page), None):
        st.error(message)
