"""Links that always work, in a real browser: on every page, two changed values reach the address bar and the Share
box (the same link, within 2 s), and the Share box opens the same page with the same values in a fresh browser on
a restarted server; a reload of Lessons finds the reading of the lesson that finished, and its link to Decode opens
the lesson's model at an example it gets wrong."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from playground.course.lessons import STEPS_ENV
from tests.browser.harness import CHROMIUM, ROOT, set_number, streamlit_app, wait_idle

pytestmark = pytest.mark.browser

SHARE = "[data-testid=stSidebar] [data-testid=stCode] code"


def share_query(page: Any) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(page.locator(SHARE).first.inner_text().strip())
    return parts.path, parse_qs(parts.query, keep_blank_values=True)


def address_query(page: Any) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(page.url)
    return parts.path, parse_qs(parts.query, keep_blank_values=True)


def same_link_within(page: Any, seconds: float) -> tuple[str, dict[str, list[str]]]:
    """The Share box's link once the address bar holds the same one; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        shared, address = share_query(page), address_query(page)
        if shared == address or time.monotonic() > deadline:
            assert shared == address, (shared, address)
            return shared
        page.wait_for_timeout(100)


def settled(page: Any, read: dict[str, Callable[[Any], str]], expected: dict[str, str]) -> dict[str, str]:
    """The values a page shows once its first script run has drawn them (up to 20 s: the connection can report
    idle before that run starts)."""
    deadline = time.monotonic() + 20
    while (shown := {name: how(page) for name, how in read.items()}) != expected and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    return shown


def open_page(page: Any, url: str, nav: str) -> None:
    page.goto(url)
    wait_idle(page)
    if nav != "Train":
        page.get_by_test_id("stSidebarNav").get_by_text(nav, exact=True).click()
        wait_idle(page)


def click(page: Any, selector: str) -> None:
    page.click(selector)
    wait_idle(page)


def number(label: str) -> Callable[[Any], str]:
    return lambda page: page.get_by_label(label, exact=True).input_value()


def change_train(page: Any) -> None:
    set_number(page, "Hidden size", 32)
    set_number(page, "Seed", 3)


def change_compare(page: Any) -> None:
    set_number(page, "Hidden size", 24)
    set_number(page, "Seeds", 2)


def change_study(page: Any) -> None:
    click(page, '.st-key-study_schedules button[aria-label="Remove linear"]')  # no schedule at all
    set_number(page, "Seeds", 3)


def change_lessons(page: Any) -> None:
    click(page, ".st-key-lesson label:has-text('2. Scheduled sampling')")
    page.wait_for_selector("h3:has-text('2. Scheduled sampling')")


def change_states(page: Any) -> None:
    wait_idle(page)
    page.locator(".st-key-hs_order").get_by_role("combobox").click()
    page.keyboard.type("by variance")
    page.keyboard.press("Enter")
    wait_idle(page)
    click(page, ".st-key-hs_gates label")


def change_decode(page: Any) -> None:
    set_number(page, "Coin seed", 5)
    click(page, ".st-key-dc_length_norm label")


PAGES: dict[str, tuple[Callable[[Any], None], dict[str, Callable[[Any], str]], dict[str, str]]] = {
    # page: (what to change, how to read each value in a fresh browser, what it must read)
    "Train": (change_train, {"hidden": number("Hidden size"), "seed": number("Seed")},
              {"hidden": "32", "seed": "3"}),
    "Compare ratios": (change_compare, {"hidden": number("Hidden size"), "seeds": number("Seeds")},
                       {"hidden": "24", "seeds": "2"}),
    "Study": (change_study, {"schedules": lambda p: str(p.locator(".st-key-study_schedules [data-tag]").count()),
                             "seeds": number("Seeds")}, {"schedules": "0", "seeds": "3"}),
    "Lessons": (change_lessons, {"lesson": lambda p: p.locator("[data-testid=stMain] h3").first.inner_text()},
                {"lesson": "2. Scheduled sampling"}),
    "Hidden states": (change_states, {"order": lambda p: p.locator(".st-key-hs_order input").input_value(),
                                      "gates": lambda p: str(p.locator(".st-key-hs_gates input").is_checked())},
                      {"order": "by variance", "gates": "True"}),
    "Decode": (change_decode, {"seed": number("Coin seed"),
                               "norm": lambda p: str(p.locator(".st-key-dc_length_norm input").is_checked())},
               {"seed": "5", "norm": "True"}),
}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with one small trained run (for Hidden states and Decode), shared by both servers."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    folder = tmp_path_factory.mktemp("linked-runs")
    subprocess.run([sys.executable, "-m", "playground", "train", "--hidden-dim", "8", "--emb-dim", "8", "--steps",
                    "20", "--eval-every", "10", "--val-size", "32", "--runs-dir", str(folder), "--quiet"],
                   cwd=ROOT, check=True, timeout=120)
    return folder


def test_every_page_link_opens_the_same_values_on_a_restarted_server(runs_dir: Path, tmp_path: Path,
                                                                     browser) -> None:
    links = {}
    with (tmp_path / "first.log").open("w+") as log, streamlit_app(runs_dir, log) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        for nav, (change, _, _) in PAGES.items():
            open_page(page, url, nav)
            change(page)
            path, query = same_link_within(page, 2.0)
            links[nav] = path, query, page.locator(SHARE).first.inner_text().strip()
        context.close()
    assert links["Study"][1]["study_schedules"] == [""]  # an empty list, not the default "linear"
    with (tmp_path / "second.log").open("w+") as log, streamlit_app(runs_dir, log) as url:
        for nav, (_, read, expected) in PAGES.items():
            path, query, shared = links[nav]
            assert shared.startswith("http://127.0.0.1:") and path.count("/") <= 1, shared  # the path once
            context = browser.new_context(viewport={"width": 1400, "height": 1000})  # no cookies, no session
            fresh = context.new_page()
            fresh.set_default_timeout(60_000)
            fresh.goto(url + shared[shared.index("/", len("http://")):])
            wait_idle(fresh)
            assert settled(fresh, read, expected) == expected, (nav, shared)
            assert fresh.locator("[data-testid=stAlert]:has-text('cannot be used')").count() == 0, nav
            assert address_query(fresh) == (path, query), nav  # the page keeps the link it was opened with
            context.close()


def test_a_reload_of_lessons_shows_the_finished_lesson_and_its_reading(tmp_path: Path, browser) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    os.environ[STEPS_ENV] = "20"
    try:
        with (tmp_path / "lessons.log").open("w+") as log, streamlit_app(tmp_path / "runs", log) as url:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(120_000)
            open_page(page, url, "Lessons")
            click(page, ".st-key-prediction_exposure_bias [role=radiogroup] label >> nth=0")  # predict first
            click(page, ".st-key-lesson_start button")
            reading = page.locator("[data-testid=stAlert]:has-text('After 20 steps')")
            reading.wait_for()
            text = reading.inner_text()
            page.reload()
            wait_idle(page)
            reading.wait_for()
            assert reading.inner_text() == text
            assert "run" in address_query(page)[1]
            page.get_by_text("Step through it on Decode").click()  # where to look: the lesson's own model
            wait_idle(page)
            page.wait_for_selector("h1:has-text('Decode, step by step')")
            path, query = address_query(page)
            assert path == "/decode" and {"run", "model", "example"} <= set(query)
            settled(page, {"example": lambda p: p.locator(".st-key-dc_example input").input_value()[:2]},
                    {"example": "✗ "})
            context.close()
    finally:
        del os.environ[STEPS_ENV]
