"""Shared mode in a real browser (PLAYGROUND_SHARED=1, one run at a time): two browser contexts are two people;
B does not see A's run, and B's Start waits in the queue with its place shown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.conftest import another_server, screenshot
from tests.browser.harness import set_number, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with another_server(tmp_path_factory, "shared", {"PLAYGROUND_SHARED": "1", "PLAYGROUND_MAX_ACTIVE": "1"}) as url:
        yield url


def listed_runs(page: object) -> str:
    page.get_by_text("Runs: open, rename, delete, download").click()
    wait_idle(page)
    return page.inner_text("[data-testid=stExpander]:has-text('Runs: open, rename, delete, download')")


def test_b_cannot_see_a_s_run_and_b_s_start_waits_in_the_queue(shared_server: str, browser: object) -> None:
    people = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    try:
        alice, bob = (context.new_page() for context in people)
        for page in (alice, bob):
            page.set_default_timeout(60_000)
            page.goto(shared_server)
            wait_idle(page)
            set_number(page, "Hidden size", 16)
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
    finally:
        for context in people:
            context.close()
