"""Step through decoding and run a beam search on the Decode page in a real browser; at 800 px no chart title
runs under its toolbar."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import screenshot
from tests.browser.harness import upload_checkpoint, wait_idle
from tests.browser.test_train_browser import TITLES_AND_TOOLBARS

pytestmark = pytest.mark.browser

BARS = """() => {
  const plot = document.querySelector('.st-key-dc_top_k_chart .js-plotly-plot');
  return plot && plot._fullData ? [Array.from(plot._fullData[0].x), Array.from(plot._fullData[0].y)] : null;
}"""

def test_step_through_and_beam_search(streamlit_server: str, browser_page, trained_checkpoint: Path) -> None:
    page = browser_page
    upload_checkpoint(page, streamlit_server, "Decode", "Decode, step by step", trained_checkpoint)
    page.wait_for_selector(".st-key-dc_top_k_chart .js-plotly-plot")
    wait_idle(page)
    bars = [page.evaluate(BARS)]
    for step in (1, 2, 3):
        page.locator(".st-key-dc_next button").first.click()  # a button with help text renders a measuring twin
        page.wait_for_selector(f"text=Step {step} of")
        wait_idle(page)
        page.wait_for_function(f"previous => JSON.stringify(({BARS})()) !== JSON.stringify(previous)", arg=bars[-1],
                               timeout=20_000)  # plotly redraws after the script run ends
        bars.append(page.evaluate(BARS))
        assert page.get_by_text("model's own output").count() == 1
    assert all(bar is not None for bar in bars) and len({str(bar) for bar in bars}) == 4
    page.set_viewport_size({"width": 800, "height": 1100})
    page.wait_for_timeout(1000)  # plotly re-lays out to the new width
    charts = page.evaluate(TITLES_AND_TOOLBARS)  # "Step 3: fed 'x', top 5 next tokens" clear of the toolbar
    assert charts and not [chart["title"] for chart in charts if chart["overlap"]], charts
    page.set_viewport_size({"width": 1500, "height": 1100})
    slider = page.locator(".st-key-dc_width input[type=range]")
    slider.focus()
    for _ in range(2):
        slider.press("ArrowRight")
    page.wait_for_selector("text=Beam search of width 5")
    wait_idle(page)
    assert page.locator(".st-key-dc_beam_tables [data-testid=stDataFrame]").count() == 2
    assert page.locator(".st-key-dc_positions .js-plotly-plot").count() == 1
    screenshot(page, "decode")
    page.locator(".st-key-dc_restart button").first.click()
    page.wait_for_selector("text=Step 0 of")
    wait_idle(page)
    page.locator(".st-key-dc_play button").first.click()
    page.wait_for_selector("text=Step 2 of", timeout=20_000)  # Play advances on the fragment's timer
