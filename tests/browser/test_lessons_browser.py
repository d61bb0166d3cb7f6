"""In a real browser: a link carries the experiment to a restarted server, and a lesson runs to its reading."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from playground.course.lessons import STEPS_ENV
from tests.browser.conftest import another_server, screenshot
from tests.browser.harness import set_number, wait_idle

pytestmark = pytest.mark.browser

CHANGED = {"Hidden size": ("hidden_dim", 32), "Max length": ("max_len", 12), "Batch size": ("batch_size", 16),
           "Seed": ("seed", 7), "Steps": ("steps", 300)}


@pytest.fixture(scope="module")
def restarted_server(tmp_path_factory: pytest.TempPathFactory, streamlit_server: str) -> Iterator[str]:
    """A second server with its own empty runs folder (a restart, or a colleague's machine); lessons are short."""
    with another_server(tmp_path_factory, "restarted", {STEPS_ENV: "60"}) as url:
        yield url


def test_a_link_restores_every_changed_setting_on_a_restarted_server(streamlit_server: str, restarted_server: str,
                                                                     browser, browser_page) -> None:
    page = browser_page
    page.goto(streamlit_server)
    wait_idle(page)
    for label, (_, value) in CHANGED.items():
        set_number(page, label, value)
    page.wait_for_function("() => new URL(location.href).searchParams.get('steps') === '300'")
    linked = parse_qs(urlsplit(page.url).query)
    assert {name: values[0] for name, values in linked.items()} == {
        name: str(value) for name, value in CHANGED.values()}
    pairs = [f"{name}={value}" for name, value in CHANGED.values()]
    # the link updates as the rerun starts, the Share box as it ends: wait for the box, not for the link
    page.wait_for_function("pairs => { const box = document.querySelector('[data-testid=stSidebar] "
                           "[data-testid=stCode]'); return box && pairs.every(pair => box.innerText.includes(pair)); }",
                           arg=pairs)

    context = browser.new_context(viewport={"width": 1500, "height": 1100})  # no cookies, no session
    try:
        fresh = context.new_page()
        fresh.set_default_timeout(60_000)
        # a fresh server's first request is a deep link: it must run through app.py's navigation too
        fresh.goto(restarted_server + "/lessons")
        fresh.wait_for_function("() => document.title === 'Lessons · Seq2Seq Playground'")
        assert "Compare ratios" in fresh.get_by_test_id("stSidebarNav").inner_text()
        fresh.goto(restarted_server + "/?" + urlsplit(page.url).query)
        wait_idle(fresh)
        for label, (_, value) in CHANGED.items():
            assert fresh.get_by_label(label, exact=True).input_value() == str(value), label
        assert fresh.locator("[data-testid=stAlert]").count() == 0  # no bad-link message
    finally:
        context.close()


def test_a_lesson_runs_to_a_reading_computed_from_its_numbers(restarted_server: str, browser_page) -> None:
    page = browser_page
    page.goto(restarted_server + "/lessons")
    wait_idle(page)
    page.wait_for_selector("text=1. Exposure bias")
    page.click(".st-key-prediction_exposure_bias [role=radiogroup] label >> nth=0")  # predict first
    wait_idle(page)
    page.click(".st-key-lesson_start button")
    page.wait_for_selector("text=What this run shows", timeout=90_000)
    reading = page.locator("[data-testid=stAlert]").last.inner_text()
    assert "After 60 steps, γ = 1 gets" in reading and "γ = 0 gets" in reading
    wait_idle(page)  # the rerun after the end may briefly hold the old chart beside the new one
    page.wait_for_function("() => document.querySelectorAll('.st-key-lesson_chart_1 .js-plotly-plot').length === 1")
    screenshot(page, "lesson-exposure-bias")


def test_the_attention_lesson_runs_to_its_reading(restarted_server: str, browser_page) -> None:
    page = browser_page
    page.goto(restarted_server + "/lessons")
    wait_idle(page)
    page.get_by_test_id("stRadio").get_by_text("4. The bottleneck and its cure", exact=True).click()
    wait_idle(page)
    page.click(".st-key-prediction_attention [role=radiogroup] label >> nth=0")  # predict first
    wait_idle(page)
    page.click(".st-key-lesson_start button")
    page.wait_for_selector("text=What this run shows", timeout=120_000)
    reading = page.locator("[data-testid=stAlert]").last.inner_text()
    assert "After 60 steps, outputs of" in reading and "without attention" in reading and "95% interval" in reading
    screenshot(page, "lesson-attention")


@pytest.mark.parametrize(("title", "key", "opening", "decides"), [
    ("7. Longer than it ever saw", "beyond", "free-running exact match on sources of 9 to 12 tokens", "Decided on"),
    ("8. One wrong token: does it recover?", "recovery", "the share of single wrong tokens", "Decided on"),
    ("9. Three regimes", "regimes", "free-running exact match: always sampling", "Decided on"),
    ("10. LSTM or Transformer?", "lstm_or_transformer", "free-running exact match: the LSTM",
     "Reaching 90% exact match"),
])
def test_a_lesson_with_seeds_runs_to_its_reading_and_keeps_its_prediction(
        restarted_server: str, browser_page, title: str, key: str, opening: str, decides: str) -> None:
    page = browser_page
    page.goto(restarted_server + "/lessons")
    wait_idle(page)
    page.get_by_test_id("stRadio").get_by_text(title, exact=True).click()
    wait_idle(page)
    page.click(f".st-key-prediction_{key} [role=radiogroup] label >> nth=1")  # predict first
    wait_idle(page)
    page.click(".st-key-lesson_start button")
    page.wait_for_selector("text=What this run shows", timeout=150_000)
    reading = page.locator("[data-testid=stAlert]").last.inner_text()
    assert f"After 60 steps, {opening}" in reading and decides in reading and "95% interval" in reading
    wait_idle(page)
    page.reload()  # the prediction is the run's, and the address holds it
    wait_idle(page)
    page.wait_for_selector("text=What this run shows", timeout=60_000)
    checked = page.locator(f".st-key-prediction_{key} input[type=radio]").evaluate_all(
        "inputs => inputs.map(input => input.checked)")
    assert checked.index(True) == 1
    screenshot(page, f"lesson-{key}")
