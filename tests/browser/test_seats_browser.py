"""Seats against a real server (PLAYGROUND_SHARED=1): an identity costs a seat the teacher issued, not a page load.

A websocket client that never stores a cookie and clicks Start by hand takes no slot without a seat, and with one
seat link no more than the seat's quota however often it reconnects; its runs stop once it has no page open. Five
fresh Chromium contexts from one machine, without a seat, start nothing; a seat link is kept by the browser across
a reload."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

from playground.course.lessons import STEPS_ENV
from playground.runs.seats import SEATS_FILE, SeatBook
from playground.training.run_folder import read_run_file
from tests.browser.conftest import server_and_runs
from tests.browser.harness import wait_idle

pytestmark = pytest.mark.browser

SETTINGS = "hidden_dim=16&emb_dim=8&val_size=32&steps=100000"
IDLE_MINUTES = 0.1  # 6 s: the runs of a seat with no page open stop after this
SESSION_TTL = "2"  # seconds Streamlit keeps a closed connection's session (and its open page) before releasing it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A shared server whose runs folder the test reads (and whose seats it issues, as the CLI would)."""
    with server_and_runs(tmp_path_factory, "seats", {
            "PLAYGROUND_SHARED": "1", "PLAYGROUND_IDLE_MINUTES": str(IDLE_MINUTES), STEPS_ENV: "100000",
            "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": SESSION_TTL}) as served:
        yield served


def run_folders(runs_dir: Path) -> list[Path]:
    return [path for path in runs_dir.iterdir() if path.is_dir()] if runs_dir.is_dir() else []


def script_run(socket: object, query: str, clicked: str | None = None) -> dict[str, str]:
    """One script run as a hand-made client asks for it (no cookie, any widget id it likes): the ids of the
    keyed buttons the page drew, by key."""
    message = BackMsg()
    message.rerun_script.query_string = query
    if clicked is not None:
        state = message.rerun_script.widget_states.widgets.add()
        state.id, state.trigger_value = clicked, True
    socket.send(message.SerializeToString())
    buttons: dict[str, str] = {}
    while True:
        reply = ForwardMsg()
        reply.ParseFromString(socket.recv(timeout=120))
        if reply.WhichOneof("type") == "delta" and reply.delta.new_element.WhichOneof("type") == "button":
            widget_id = reply.delta.new_element.button.id
            buttons[widget_id.rsplit("-", 1)[-1]] = widget_id
        if reply.WhichOneof("type") == "script_finished":
            return buttons


def hostile_client(url: str, query: str) -> None:
    """Open the Train page without a cookie, press Start (enabled or not), leave."""
    with connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"]) as socket:
        buttons = script_run(socket, query)
        script_run(socket, query, clicked=buttons["start"])


def steps_on_disk(folders: list[Path]) -> list[int]:
    return [int((read_run_file(folder) or {}).get("step", 0)) for folder in folders]


def test_a_client_that_keeps_no_cookie_takes_no_slot_and_one_seat_s_share_at_most(server: tuple[str, Path]) -> None:
    url, runs_dir = server
    for _ in range(5):  # five "people" without a seat
        hostile_client(url, SETTINGS)
    assert run_folders(runs_dir) == []
    _, key = SeatBook(runs_dir / SEATS_FILE).issue("shared link")  # the server reads the file at its next page
    for _ in range(5):  # one seat's link, reconnected five times without a cookie
        hostile_client(url, f"{SETTINGS}&seat={key}")
    folders = run_folders(runs_dir)
    print(f"\nwith one seat, five cookieless connections made {len(folders)} run(s)", flush=True)
    assert 1 <= len(folders) <= 2  # the seat's quota: one training, one queued
    assert len({json.loads((folder / "run.json").read_text())["owner"] for folder in folders}) == 1
    deadline = time.monotonic() + IDLE_MINUTES * 60 + int(SESSION_TTL) + 40
    before = steps_on_disk(folders)
    while time.monotonic() < deadline:  # nobody has the page open: the runs stop and are saved
        time.sleep(5)
        now = steps_on_disk(folders)
        if now == before and max(now) > 0:
            break
        before = now
    else:
        pytest.fail(f"the seat's runs kept training with no page open: steps {before}")


def test_five_fresh_browser_contexts_without_a_seat_start_nothing(server: tuple[str, Path], browser: object) -> None:
    url, runs_dir = server
    existing = {folder.name for folder in run_folders(runs_dir)}
    contexts = [browser.new_context(viewport={"width": 1300, "height": 900}) for _ in range(5)]
    try:
        for context in contexts:
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{url}/?{SETTINGS}")
            wait_idle(page)
            assert page.locator(".st-key-start button").first.is_disabled()
            page.locator(".st-key-start button").first.click(force=True)
            page.goto(f"{url}/lessons")
            wait_idle(page)
            page.click(".st-key-prediction_exposure_bias [role=radiogroup] label >> nth=0")
            wait_idle(page)
            assert page.locator(".st-key-lesson_start button").first.is_disabled()
        new = [folder for folder in run_folders(runs_dir) if folder.name not in existing]
        assert len(new) <= 1 and new == []  # the bound the class needs is one; without a seat it is none
    finally:
        for context in contexts:
            context.close()


def test_a_seat_link_is_kept_by_the_browser_across_a_reload(server: tuple[str, Path], browser: object) -> None:
    url, runs_dir = server
    _, key = SeatBook(runs_dir / SEATS_FILE).issue("Ada")
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{url}/?seat={key}")
        wait_idle(page)
        page.wait_for_function("() => !new URL(location.href).searchParams.has('seat')")
        page.wait_for_function("() => document.cookie.includes('playground_seat=')")
        page.goto(f"{url}/?{SETTINGS.replace('100000', '20')}")  # a new page load: the cookie is the seat
        wait_idle(page)
        page.click(".st-key-start button")
        page.wait_for_selector("text=— finished —")
    finally:
        context.close()
