"""The first screen of every page in a real browser: the model and the task before any click, honest empty charts,
Stop redrawing the buttons, no truncated button at 800 px; screenshots at 800 and 1400 px in test-artifacts/."""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import screenshot
from tests.browser.harness import set_number, wait_idle

pytestmark = pytest.mark.browser

PAGES = {"train": "Train", "hidden-states": "Hidden states", "decode": "Decode", "compare": "Compare ratios",
         "study": "Study", "lessons": "Lessons", "glossary": "Glossary"}
LAYOUTS = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p._fullLayout).map(p => {
  const l = p._fullLayout, x = l.xaxis, y = l.yaxis;
  return {title: l.title.text, x: x.range, y: y.range, points: p._fullData.some(t => t.x && t.x.length > 0)};
})"""
TRUNCATED = """() => [...document.querySelectorAll('[data-testid=stMain] button')].filter(b => b.offsetParent)
  .map(b => ({text: b.innerText.trim(),
              over: [b, ...b.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1)}))
  .filter(b => b.text && b.over).map(b => b.text)"""
HIDDEN_CHOICES = """() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stMultiSelect]')]
  .filter(m => m.offsetParent).filter(m => {
    const tags = m.querySelector('.react-aria-ComboBox [data-testid=stMultiSelectTagsContainer]');
    return tags && tags.scrollWidth > tags.clientWidth + 1;
  }).map(m => m.querySelector('[data-testid=stWidgetLabel]').innerText.trim())"""  # chosen values scrolled away
DIAGRAM_TITLE = "() => document.querySelector('.st-key-model_diagram p').innerText"


def open_page(page, url: str, name: str) -> None:
    page.goto(url)
    wait_idle(page)
    if name != "Train":
        page.get_by_test_id("stSidebarNav").get_by_text(name, exact=True).click()
        wait_idle(page)
    page.wait_for_timeout(500)


def test_train_page_shows_model_and_task_before_any_click(streamlit_server: str, browser_page) -> None:
    page = browser_page
    open_page(page, streamlit_server, "Train")
    page.wait_for_selector(".st-key-model_diagram svg")
    page.wait_for_selector(".st-key-task_preview [data-testid=stDataFrame]", state="attached")
    assert "token accuracy" in page.inner_text(".st-key-task_preview")
    assert page.title().startswith("Train")
    assert page.locator("[data-testid=stAppDeployButton]").count() == 0
    before = page.evaluate(DIAGRAM_TITLE)
    set_number(page, "Hidden size", 32)
    page.wait_for_function(f"({DIAGRAM_TITLE})() !== {before!r}")
    assert "parameters" in page.evaluate(DIAGRAM_TITLE)
    for chart in page.evaluate(LAYOUTS):  # the empty loss and accuracy charts
        assert not chart["points"] and chart["x"][0] >= 0 and chart["y"][0] >= 0, chart


def test_stop_enables_start_within_two_seconds(streamlit_server: str, browser_page) -> None:
    page = browser_page
    open_page(page, streamlit_server, "Train")
    set_number(page, "Hidden size", 16)
    set_number(page, "Steps", 100_000)
    page.click(".st-key-start button")
    page.wait_for_selector(".st-key-stop button:not([disabled])")
    page.wait_for_timeout(1500)
    page.click(".st-key-stop button")
    pressed = time.monotonic()
    page.wait_for_selector(".st-key-start button:not([disabled])", timeout=2000)
    page.wait_for_selector(".st-key-stop button[disabled]", timeout=2000)
    page.wait_for_selector(".st-key-pause button[disabled]", timeout=2000)
    print(f"seconds from Stop to the buttons' new state: {time.monotonic() - pressed:.2f}")
    page.click(".st-key-reset button")
    wait_idle(page)


@pytest.mark.parametrize("width", [800, 1400])
def test_every_page_first_screen(streamlit_server: str, browser_page, width: int) -> None:
    page = browser_page
    page.set_viewport_size({"width": width, "height": 1000})
    for slug, name in PAGES.items():
        open_page(page, streamlit_server, name)
        page.wait_for_function("() => !document.querySelector('[data-testid=stSkeleton]')")  # drawn, not pending
        page.wait_for_timeout(500)  # charts lay out after their elements appear
        assert name in page.title()
        assert page.evaluate(TRUNCATED) == [], f"{name} at {width} px"
        assert page.evaluate(HIDDEN_CHOICES) == [], f"{name} at {width} px"
        for chart in page.evaluate(LAYOUTS):
            if not chart["points"]:
                assert chart["x"][0] >= 0 and chart["y"][0] >= 0, chart
        screenshot(page, f"first-screen-{slug}-{width}")
