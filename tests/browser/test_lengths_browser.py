"""A finished Train run tested beyond its training lengths, in real Chromium at 800 and 1400 px: exact match by
length shades what it trained on, and the error-by-position chart's plot fills its frame, legend under it."""

from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot
from tests.browser.harness import set_number, wait_idle

pytestmark = pytest.mark.browser

PLOT_SHARE = """key => {
  const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  if (!plot || !plot._fullLayout) return null;
  const layout = plot._fullLayout, legend = plot.querySelector('.legend');
  const area = plot.querySelector('.nsewdrag').getBoundingClientRect();
  return {share: layout._size.w / layout.width,
          legendBelow: !legend || legend.getBoundingClientRect().top >= area.bottom,
          traces: plot._fullData.length, annotations: (layout.annotations || []).map(a => a.text)};
}"""


def test_lengths_and_positions_of_a_finished_run(streamlit_server: str, browser_page) -> None:
    page = browser_page
    page.goto(streamlit_server)
    wait_idle(page)
    set_number(page, "Hidden size", 32)
    set_number(page, "Steps", 150)
    set_number(page, "Evaluate every", 50)
    set_number(page, "Test lengths up to", 12)
    page.click(".st-key-start button")
    page.wait_for_selector(".st-key-train_positions .js-plotly-plot", timeout=120_000)
    wait_idle(page)
    for width in (1400, 800):
        page.set_viewport_size({"width": width, "height": 1100})
        page.wait_for_timeout(1500)  # plotly re-lays out to the new width
        positions = page.evaluate(PLOT_SHARE, "train_positions")
        lengths = page.evaluate(PLOT_SHARE, "train_lengths")
        print(f"{width} px: error-by-position plot area {positions['share']:.0%} of its frame, "
              f"exact-by-length {lengths['share']:.0%}")
        assert positions["share"] >= 0.5 and positions["legendBelow"], (width, positions)
        assert lengths["share"] >= 0.5 and "trained on" in lengths["annotations"], (width, lengths)
        page.locator(".st-key-lengths_and_positions").screenshot(
            path=str(screenshot(page, f"train-lengths-positions-{width}").with_name(
                f"train-lengths-positions-{width}-charts.png")))
