"""Shared mode in a real browser (PLAYGROUND_SHARED=1, one run at a time): browser contexts are people, each with
the seat link the teacher issued them. B does not
see A's run and B's Start waits in the queue with its place shown; the attacks of issue 25 are refused: a guessed
or shared id gives no control, reloads do not multiply a person's quota, lesson runs are owned and bounded, and an
idle paused run frees its slot."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from playground.course.lessons import STEPS_ENV
from playground.runs.seats import SEATS_FILE, SeatBook
from tests.browser.conftest import screenshot, server_and_runs
from tests.browser.harness import set_number, wait_idle

pytestmark = pytest.mark.browser

Served = tuple[str, Path]  # the server's URL and runs folder
RUN_ID = re.compile(r"\d{8}-\d{6}-[\w.-]+-[0-9a-f]{16}")
PREDICT = ".st-key-prediction_exposure_bias [role=radiogroup] label >> nth=0"  # the default lesson's first choice


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with server_and_runs(tmp_path_factory, "shared", {"PLAYGROUND_SHARED": "1", "PLAYGROUND_MAX_ACTIVE": "1",
                                                      STEPS_ENV: "100000"}) as served:
        yield served


@contextmanager
def people(browser: object, count: int, server: Served) -> Iterator[list[object]]:
    """`count` people: each a browser context of their own (cookies included) that opened its seat link, on the
    Train page, hidden size 16."""
    url, runs_dir = server
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(count)]
    try:
        pages = [context.new_page() for context in contexts]
        for index, page in enumerate(pages):
            page.set_default_timeout(60_000)
            page.goto(f"{url}/?seat={SeatBook(runs_dir / SEATS_FILE).issue(f'person {index}')[1]}")
            page.wait_for_function("() => document.cookie.includes('playground_seat=')")  # kept for every page
            page.goto(url)
            wait_idle(page)
            set_number(page, "Hidden size", 16)
        yield pages
    finally:
        for context in contexts:
            context.close()


def listed_runs(page: object) -> str:
    page.get_by_text("Runs: open, rename, delete, download").click()
    wait_idle(page)
    return page.inner_text("[data-testid=stExpander]:has-text('Runs: open, rename, delete, download')")


def run_id(page: object) -> str:
    page.wait_for_function("() => new URL(location.href).searchParams.get('run')")
    return page.evaluate("() => new URL(location.href).searchParams.get('run')")


def button(page: object, key: str) -> object:
    """A keyed button (a disabled button with help is drawn twice: once inside its tooltip)."""
    return page.locator(f".st-key-{key} button").first


def stop(page: object) -> None:
    if button(page, "stop").is_enabled():
        page.click(".st-key-stop button")
        wait_idle(page)


def test_b_cannot_see_a_s_run_and_b_s_start_waits_in_the_queue(shared_server: Served, browser: object) -> None:
    with people(browser, 2, shared_server) as (alice, bob):
        set_number(alice, "Steps", 100_000)
        alice.fill("input[aria-label='Name of the next run']", "alices-run")
        alice.click(".st-key-start button")
        alice.wait_for_selector("text=alices-run — running")
        assert "alices-run" not in listed_runs(bob)
        set_number(bob, "Steps", 50)
        bob.click(".st-key-start button")
        bob.wait_for_selector("text=place 1 of 1 in the queue")
        assert "alices-run" not in bob.inner_text("[data-testid=stMain]")
        screenshot(bob, "shared-queued")
        alice.click(".st-key-stop button")
        bob.wait_for_selector("text=— finished —")  # B's run started by itself once A's slot was free


def test_a_guessed_or_shared_id_gives_no_control(shared_server: Served, browser: object) -> None:
    with people(browser, 2, shared_server) as (alice, bob):
        set_number(alice, "Steps", 100_000)
        alice.click(".st-key-start button")
        alice.wait_for_selector("text=— running —")
        alice_id = run_id(alice)
        assert RUN_ID.fullmatch(alice_id)  # the time and the name are no longer the whole id
        guess = alice_id.rsplit("-", 1)[0]  # what walking back from the current second finds
        bob.goto(f"{shared_server[0]}/?run={guess}")
        wait_idle(bob)
        assert "running" not in bob.inner_text("[data-testid=stMain]")
        assert "Cannot open run" in listed_runs(bob) and "/tmp" not in bob.inner_text("[data-testid=stApp]")
        bob.goto(f"{shared_server[0]}/?run={alice_id}")  # the id itself (a shared link): read-only
        wait_idle(bob)
        bob.wait_for_selector("text=— running —")
        bob.wait_for_selector(".st-key-start button:has-text('Train this experiment yourself')")
        wait_idle(bob)
        for name in ("pause", "step", "stop"):
            assert button(bob, name).is_disabled(), name
        listed_runs(bob)
        assert button(bob, "delete_train").is_disabled()
        assert button(bob, "rename_train").is_disabled()
        bob.click(".st-key-start button")  # trains the experiment as B's own run, which waits for the slot
        bob.wait_for_selector("text=place 1 of 1 in the queue")
        assert run_id(bob) != alice_id
        alice.reload()
        wait_idle(alice)
        alice.wait_for_selector("text=— running —")  # A's run was not touched
        stop(alice)
        bob.wait_for_selector("text=— running —")
        stop(bob)


def test_reloads_do_not_multiply_a_person_s_quota(shared_server: Served, browser: object) -> None:
    with people(browser, 2, shared_server) as (alice, bob):
        button(alice, "step").click()  # one step, then paused: it holds the slot with zero CPU
        alice.wait_for_selector("text=— paused —")
        first = run_id(alice)
        cookie = next(c["value"] for c in alice.context.cookies() if c["name"] == "playground_seat")
        alice.reload()
        wait_idle(alice)
        alice.wait_for_selector("text=— paused —")  # the same person after a reload: still the run's owner
        alice.wait_for_selector(".st-key-pause button:has-text('Resume'):enabled")
        for expected in ("place 1 of 1 in the queue", "waiting in the queue already", "waiting in the queue already"):
            alice.goto(shared_server[0])  # the app opened again, without the run: a new page load, the same person
            wait_idle(alice)
            set_number(alice, "Hidden size", 16)
            button(alice, "step").click()
            alice.wait_for_selector(f"text={expected}")
        assert next(c["value"] for c in alice.context.cookies() if c["name"] == "playground_seat") == cookie
        button(bob, "start").click()  # another person still gets a place
        bob.wait_for_selector("text=place 2 of 2 in the queue")
        stop(bob)
        alice.goto(f"{shared_server[0]}/?run={first}")
        wait_idle(alice)
        stop(alice)


def test_lesson_runs_are_owned_bounded_and_show_their_place(shared_server: Served, browser: object) -> None:
    with people(browser, 2, shared_server) as (alice, bob):
        set_number(alice, "Steps", 100_000)
        alice.click(".st-key-start button")
        alice.wait_for_selector("text=— running —")
        bob.goto(f"{shared_server[0]}/lessons")
        wait_idle(bob)
        bob.click(PREDICT)  # a lesson asks for a prediction before its Start
        wait_idle(bob)
        bob.click(".st-key-lesson_start button")
        bob.wait_for_selector("text=place 1 of 1 in the queue")
        assert button(bob, "lesson_start").is_disabled()  # no "Run it again" while queued
        bob.reload()
        wait_idle(bob)
        bob.wait_for_selector("text=place 1 of 1 in the queue")  # the person's lesson run, found again
        assert button(bob, "lesson_start").is_disabled()
        alice.goto(f"{shared_server[0]}/lessons")
        wait_idle(alice)
        assert "place 1 of 1" not in alice.inner_text("[data-testid=stMain]")
        alice.click(PREDICT)
        alice.wait_for_selector(".st-key-lesson_start button:has-text('Start this experiment'):enabled")
        bob.click(".st-key-lesson_stop button")
        wait_idle(bob)
        bob.click(PREDICT)  # the reload forgot the prediction (a new session)
        bob.wait_for_selector(".st-key-lesson_start button:enabled")  # out of the queue, Bob may start again
        alice.goto(shared_server[0])
        wait_idle(alice)
        alice.get_by_text("Runs: open, rename, delete, download").click()
        alice.click(".st-key-open_train button")
        wait_idle(alice)
        stop(alice)


def test_an_idle_paused_run_frees_its_slot(tmp_path_factory: pytest.TempPathFactory, browser: object) -> None:
    with server_and_runs(tmp_path_factory, "idle", {"PLAYGROUND_SHARED": "1", "PLAYGROUND_MAX_ACTIVE": "1",
                                                    "PLAYGROUND_IDLE_MINUTES": "0.05"}) as server, \
            people(browser, 2, server) as (alice, bob):
        alice.click(".st-key-step button")
        alice.wait_for_selector("text=— paused —")
        set_number(bob, "Steps", 30)
        bob.click(".st-key-start button")  # waits in the queue until the pause is 3 s old (or starts if it is)
        bob.wait_for_selector("text=— finished —")  # without the idle release: queued until a restart
        alice.reload()
        wait_idle(alice)
        alice.wait_for_selector("text=— stopped — step 1 of")  # saved; Train on continues it
        alice.wait_for_selector(".st-key-start button:has-text('Train on'):enabled")
