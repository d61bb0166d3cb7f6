"""Who is at the browser: the seat a run belongs to, the teacher, and the links that grant control.

In shared mode training needs a seat (`runs/seats.py`): a seat link the teacher issued on the Class page
(`?seat=KEY`), or a login through `st.login` where the teacher configured `[auth]` in the secrets. A seat link's
key is taken out of the address bar at once and kept in a cookie, so a reload or a new tab keeps the seat;
Streamlit reads cookies (`st.context.cookies`) but has no call that sets one, so the page sets it with a line of
JavaScript through `st.html` (the key is checked against the seat book first). A visitor without a seat may open
shared links and read, never start anything.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from playground.runs.background import RunError
from playground.runs.registry import registry
from playground.runs.seats import KEY_PATTERN, NO_SEAT, SEAT_PARAM, TEACHER

SEAT_COOKIE = "playground_seat"
COOKIE_DAYS = 180  # a course's length: the teacher revokes a seat, the cookie need not expire for that
TEACHER_ENV = "PLAYGROUND_TEACHER_TOKEN"
CONTROL_PARAM = "control"  # ?control=KEY: the second secret of a run, which its owner hands out
TEACHER_PARAM = "teacher"  # ?teacher=TOKEN once; the session keeps it


def session_owner() -> str:
    """The seat this session trains under: the teacher's, a seat link's (this session's or the browser's
    cookie), or a login's; '' without one, and outside shared mode (where runs have no owners). Each call tells the
    classroom the seat is here, so its runs are not stopped as idle."""
    classroom = registry().classroom
    if classroom is None:
        return ""
    owner = TEACHER if is_teacher() else ""
    key = st.session_state.get("seat_key") or _cookie()
    if not owner and key and (seat := classroom.book.by_key(key)) is not None:
        owner = seat.id
    if not owner and (user := _logged_in_user()) is not None and (seat := classroom.book.by_login(*user)):
        owner = seat.id
    if owner:
        _page_open(owner)
        classroom.presence.seen(owner)
    return owner


def _page_closed(seat_id: str) -> None:
    if (classroom := registry().classroom) is not None:
        classroom.presence.closed(seat_id)


@st.cache_resource(scope="session", show_spinner=False, on_release=_page_closed)
def _page_open(seat_id: str) -> str:
    """Once per session and seat: the seat has a page open until the session ends (the tab closed)."""
    if (classroom := registry().classroom) is not None:
        classroom.presence.opened(seat_id)
    return seat_id


def may_train() -> bool:
    """Whether this session may start runs: anyone outside shared mode, a seat in shared mode."""
    return not registry().shared or bool(session_owner())


def seat_notice(key: str) -> bool:
    """Where a page starts runs: without a seat, say how to get one (with a login button where the server offers
    login). True when this session may train."""
    if may_train():
        return True
    st.info(f"{NO_SEAT[:1].upper()}{NO_SEAT[1:]}.", icon=":material/event_seat:")
    providers = login_providers()
    for provider in providers or ([None] if login_offered() else []):
        st.button(f"Log in with {provider}" if provider else "Log in", key=f"{key}_{provider or 'default'}",
                  on_click=st.login, args=(provider,) if provider else (), icon=":material/login:",
                  help="Log in with the account your teacher set up: it gives you a seat on this server")
    return False


def _auth() -> Mapping[str, Any] | None:
    """The secrets' `[auth]` section, where the teacher configured a login (OpenID Connect)."""
    try:
        section = st.secrets.get("auth")
    except FileNotFoundError:  # no secrets at all (Streamlit's StreamlitSecretNotFoundError is one)
        return None
    return section if isinstance(section, Mapping) else None


def login_offered() -> bool:
    return _auth() is not None


def login_providers() -> list[str]:
    """The named providers of `[auth]` (its sub-sections); none when it configures one provider directly."""
    return [str(name) for name, value in (_auth() or {}).items() if isinstance(value, Mapping)]


def _logged_in_user() -> tuple[str, str, str] | None:
    """(issuer, subject, name) of the person `st.login` identified, where the server offers login."""
    if not login_offered() or not st.user.get("is_logged_in"):
        return None
    name = st.user.get("name") or st.user.get("email") or ""
    return str(st.user.get("iss") or ""), str(st.user.get("sub") or ""), str(name)


def remember_seat() -> None:
    """Ask the browser to keep a seat link's key (once per session, when its cookie does not hold it yet)."""
    key = st.session_state.get("seat_key", "")
    if not key or not KEY_PATTERN.fullmatch(key) or _cookie() == key or st.session_state.get("cookie_sent") == key:
        return
    st.session_state.cookie_sent = key
    secure = "; Secure" if (st.context.url or "").startswith("https:") else ""
    st.html(f"<script>document.cookie = '{SEAT_COOKIE}={key}; Max-Age={COOKIE_DAYS * 86400}; Path=/; "
            f"SameSite=Strict{secure}';</script>", unsafe_allow_javascript=True)


def _cookie() -> str:
    """The seat cookie the browser sent when it connected ('' without one; AppTest has no cookies)."""
    value = st.context.cookies.get(SEAT_COOKIE)
    return value if isinstance(value, str) else ""


def claim_link_secrets() -> None:
    """Take a seat key, a teacher token or a control key out of the URL (so no Share box repeats it, and Back does
    not bring it back) into the session."""
    params, state = st.query_params, st.session_state
    if CONTROL_PARAM in params:
        state.setdefault("control_keys", set()).add(params[CONTROL_PARAM][:64])
        _forget_in_place(CONTROL_PARAM)
    if SEAT_PARAM in params:
        key, classroom = params[SEAT_PARAM][:64], registry().classroom
        _forget_in_place(SEAT_PARAM)
        if classroom is not None and classroom.book.by_key(key) is not None:
            state.seat_key = key
        else:
            st.warning("This seat link is not one of this server's (revoked, replaced or mistyped): ask your "
                       "teacher for a new one.")
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
    """Stop, pause, resume, train on, rename, delete: the owner's seat, a holder of the run's control link, the
    teacher; anyone outside shared mode. Checked where the button is drawn and again in its callback."""
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
    return f"{base}/{page}?{urlencode({url_key: run_id, CONTROL_PARAM: key})}" if key else None


def seat_link(key: str) -> str:
    """The link that gives a student their seat (shown to the teacher once, when it is made)."""
    return f"{(st.context.url or '').rstrip('/')}/?{urlencode({SEAT_PARAM: key})}"
