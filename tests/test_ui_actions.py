"""The guard every page button acts through: a refusal is one message on the next run, anything else is a bug."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def guarded_page() -> None:
    import streamlit as st

    from playground.runs.background import RunError
    from playground.ui.actions import guarded_action, show_refusal

    @guarded_action("demo")
    def act(kind: str) -> None:
        st.session_state.acted = kind
        raise {"run": RunError("run refused"), "input": ValueError("input refused"),
               "bug": KeyError("a bug")}[kind]

    for kind in ("run", "input", "bug"):
        st.button(kind, key=kind, on_click=act, args=(kind,))
    show_refusal("demo")


def test_a_refused_action_is_shown_once_and_a_bug_is_not_swallowed() -> None:
    at = AppTest.from_function(guarded_page, default_timeout=30).run()
    for kind in ("run", "input"):
        at.button(key=kind).click().run()
        assert at.session_state.acted == kind and [error.value for error in at.error] == [f"{kind} refused"]
        at.run()
        assert not at.error  # shown once
    at.button(key="bug").click().run()
    assert at.exception and not at.error
