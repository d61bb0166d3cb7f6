"""Start training in a real browser, watch the loss chart fill, stop, reload, find the run again; at 800 and 1400 px
the model diagram's text is readable and no metric label, button or table column is cut."""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import screenshot
from tests.browser.harness import set_number, wait_idle
from tests.browser.test_pages_browser import TRUNCATED

pytestmark = pytest.mark.browser

LOSS_POINTS = """() => {
  const plot = document.querySelector('.st-key-loss_chart .js-plotly-plot');
  if (!plot || !plot._fullData) return 0;
  const line = plot._fullData.find(trace => trace.name === 'training loss');
  return line && line.x ? line.x.length : 0;
}"""
TITLES_AND_TOOLBARS = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.offsetParent).map(p => {
  const title = p.querySelector('.gtitle'), bar = p.querySelector('.modebar');
  if (!title || !bar) return null;
  const a = title.getBoundingClientRect(), b = bar.getBoundingClientRect();
  const overlap = a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  return {title: title.textContent, overlap};
}).filter(chart => chart)"""  # the toolbar is laid out (transparent) before the pointer hovers
CUT_LABELS = """() => [...document.querySelectorAll(
  '[data-testid=stMetricLabel], [data-testid=stMain] [data-testid=stWidgetLabel]')].filter(l => l.offsetParent)
  .filter(l => [l, ...l.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1)).map(l => l.innerText)"""
DIAGRAM_FONT_PX = """() => {
  const svg = document.querySelector('[data-testid=stGraphVizChart] svg');
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  const sizes = [...svg.querySelectorAll('text[font-size]')].map(t => parseFloat(t.getAttribute('font-size')));
  return Math.min(...sizes) * scale;
}"""  # graphviz sizes text in the drawing's own units; the page scales the drawing to its width
CUT_TABLES = """() => [...document.querySelectorAll('[data-testid=stDataFrame]')].filter(d => d.offsetParent)
  .filter(d => {
  const grid = d.querySelector('.dvn-scroller');
  return grid && grid.scrollWidth > grid.clientWidth + 1;
  }).map(d => [...d.querySelectorAll('th')].map(h => h.innerText).join(', '))"""  # columns past the right edge



def test_start_watch_stop_reload(streamlit_server: str, browser_page) -> None:
    page = browser_page
    page.goto(streamlit_server)
    wait_idle(page)
    for width in (1400, 800):
        page.set_viewport_size({"width": width, "height": 1100})
        page.wait_for_selector("[data-testid=stGraphVizChart] svg text")
        page.wait_for_timeout(500)
        assert page.evaluate(DIAGRAM_FONT_PX) >= 10, width  # was under 5 px at 800 px, left to right
    set_number(page, "Hidden size", 32)
    set_number(page, "Steps", 100_000)  # still running when Stop is pressed, however fast the machine
    set_number(page, "Evaluate every", 50)
    pressed = time.monotonic()
    page.click(".st-key-start button")
    page.wait_for_function(f"({LOSS_POINTS})() > 0")
    first_point = time.monotonic() - pressed
    print(f"seconds from Start to the first point on the loss chart: {first_point:.2f}")
    page.wait_for_function(f"({LOSS_POINTS})() > 100")
    page.wait_for_selector(".st-key-preview_encoder .js-plotly-plot")
    for width in (1400, 800):
        page.set_viewport_size({"width": width, "height": 1100})
        page.wait_for_timeout(1000)  # plotly re-lays out to the new width
        charts = page.evaluate(TITLES_AND_TOOLBARS)
        assert len(charts) >= 5 and not [chart["title"] for chart in charts if chart["overlap"]], (width, charts)
        page.wait_for_selector("[data-testid=stMetricLabel]")
        assert page.evaluate(CUT_LABELS) == [], width  # "Token accuracy, free-running" and "Log scale" in full
        page.wait_for_selector("[data-testid=stDataFrame] th:has-text('prediction')", state="attached")
        assert page.evaluate(CUT_TABLES) == [], width  # the predictions' "correct" and "prediction" in view
        assert page.evaluate(TRUNCATED) == [], width  # "What am I looking at?" under the γ chart in full
        screenshot(page, f"train-running-{width}")
    page.set_viewport_size({"width": 1500, "height": 1100})
    screenshot(page, "train-running")
    page.click(".st-key-stop button")
    page.wait_for_selector("text=stopped")
    wait_idle(page)
    page.reload()
    wait_idle(page)
    page.wait_for_selector(".st-key-loss_chart .js-plotly-plot")
    assert page.evaluate(LOSS_POINTS) > 100
    assert page.get_by_text("stopped").count() > 0
    screenshot(page, "train-after-reload")
