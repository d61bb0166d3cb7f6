"""Who is at the browser: the person a run belongs to, the teacher, and the links that grant control.

A person is a random identity kept in a cookie, so a reload or a second tab is the same person (one quota).
Streamlit reads cookies (`st.context.cookies`) but has no call that sets one (`st.login` needs an identity
provider), so the page sets it with a line of JavaScript through `st.html`; the value is the server's own random
token, never something the browser chose.
"""

from __future__ import annotations

import json
import os
import re
import secrets

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from playground.runs.background import RunError
from playground.runs.registry import registry

COOKIE = "playground_person"
COOKIE_DAYS = 30
TEACHER_ENV = "PLAYGROUND_TEACHER_TOKEN"
CONTROL_PARAM = "control"  # ?control=KEY: the second secret of a run, which its owner hands out
TEACHER_PARAM = "teacher"  # ?teacher=TOKEN once; the session keeps it
_IDENTITY = re.compile(r"[0-9a-f]{32}")


def session_owner() -> str:
    """The person at this browser: their cookie, else a new identity the browser is asked to keep. Each call
    tells the registry the person is here (their queued runs keep their place)."""
    state = st.session_state
    if "session_owner" not in state:
        cookie = _cookie()
        state.session_owner = cookie if _IDENTITY.fullmatch(cookie) else secrets.token_hex(16)
    registry().seen(state.session_owner)
    return state.session_owner


def remember_person() -> None:
    """Ask the browser to keep the identity (once per session, when its cookie does not hold it yet)."""
    owner = session_owner()
    if _cookie() == owner or st.session_state.get("cookie_sent"):
        return
    st.session_state.cookie_sent = True
    st.html(f"<script>document.cookie = '{COOKIE}={owner}; Max-Age={COOKIE_DAYS * 86400}; Path=/; "
            "SameSite=Strict';</script>", unsafe_allow_javascript=True)


def _cookie() -> str:
    """The identity cookie the browser sent when it connected ('' without one; AppTest has no cookies)."""
    value = st.context.cookies.get(COOKIE)
    return value if isinstance(value, str) else ""


def claim_link_secrets() -> None:
    """Take a teacher token or a control key out of the URL (so no Share box repeats it, and Back does not bring
    it back) into the session."""
    params, state = st.query_params, st.session_state
    if CONTROL_PARAM in params:
        state.setdefault("control_keys", set()).add(params[CONTROL_PARAM][:64])
        _forget_in_place(CONTROL_PARAM)
    if TEACHER_PARAM in params:
        given, token = params[TEACHER_PARAM], os.environ.get(TEACHER_ENV, "")
        _forget_in_place(TEACHER_PARAM)
        if token and secrets.compare_digest(given.encode(), token.encode()):
            state.teacher = True
        else:
            st.warning("This link's teacher token is not this server's.")


def _forget_in_place(param: str) -> None:
    """Take `param` out of the address bar by replacing the tab's history entry, so Back does not bring it back.
    Removing it through st.query_params would push a new entry and leave the secret one behind it; the server's
    copy is dropped without telling the browser, which removes its own (Streamlit's call for a parameter the
    browser no longer has)."""
    context = get_script_run_ctx()
    if context is not None:
        with context.session_state.query_params() as params:
            params.discard_param_no_forward_msg(param)
    st.html(f"<script>const url = new URL(window.location.href); url.searchParams.delete({json.dumps(param)}); "
            "window.history.replaceState(window.history.state, '', url);</script>", unsafe_allow_javascript=True)


def is_teacher() -> bool:
    return bool(os.environ.get(TEACHER_ENV)) and bool(st.session_state.get("teacher"))


def may_control(run_id: str) -> bool:
    """Stop, pause, resume, train on, rename, delete: the owner, a holder of the run's control link, the teacher;
    anyone outside shared mode. Checked where the button is drawn and again in its callback."""
    return is_teacher() or registry().may_control(run_id, session_owner(), st.session_state.get("control_keys", ()))


def check_control(run_id: str) -> None:
    """What a control button's callback calls first: a hand-made request for a disabled button is refused too."""
    if not may_control(run_id):
        raise RunError("only the run's owner (or whoever holds its control link) may do that; "
                       "you can train this experiment yourself: Reset, then Start")


def control_link(page: str, url_key: str, run_id: str) -> str | None:
    """A link that grants control of a run (shared mode, for the person who controls it): view link + key."""
    runs = registry()
    if not runs.shared or not may_control(run_id):
        return None
    try:
        key = runs.get(run_id).control_key
    except (RunError, ValueError):
        return None
    base = (st.context.url or "").rstrip("/")
    return f"{base}/{page}?{url_key}={run_id}&{CONTROL_PARAM}={key}" if key else None
