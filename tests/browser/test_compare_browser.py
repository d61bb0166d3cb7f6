"""A short comparison of three ratios in a real browser: three live curves, one colour each."""

from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot
from tests.browser.harness import set_number, wait_idle

pytestmark = pytest.mark.browser

CURVES = """() => {
  const plot = document.querySelector('.st-key-compare_train_loss .js-plotly-plot');
  if (!plot || !plot._fullData) return [];
  return plot._fullData.filter(t => t.showlegend !== false && t.x && t.x.length > 1)
    .map(t => [t.name, t.line.color, t.x.length]);
}"""



def test_three_ratios_train_live(streamlit_server: str, browser_page) -> None:
    page = browser_page
    page.goto(streamlit_server)
    wait_idle(page)
    page.get_by_role("link", name="Compare ratios").click()
    page.wait_for_selector("text=Compare teacher-forcing ratios")
    wait_idle(page)
    for ratio in ("0.25", "0.75"):
        page.click(f'.st-key-compare_ratios button[aria-label="Remove {ratio}"]')
        wait_idle(page)
    assert page.locator('.st-key-compare_ratios [data-tag]').count() == 3
    set_number(page, "Hidden size", 32)
    set_number(page, "Steps", 100_000)  # still running when Stop is pressed, however fast the machine
    set_number(page, "Evaluate every", 20)
    page.click(".st-key-compare_start button")
    page.wait_for_function(f"({CURVES})().length === 3 && ({CURVES})().every(c => c[2] > 20)")
    curves = page.evaluate(CURVES)
    assert [name for name, _, _ in curves] == ["γ = 0", "γ = 0.5", "γ = 1"]
    assert len({colour for _, colour, _ in curves}) == 3
    page.wait_for_selector("text=Download CSV")
    screenshot(page, "compare-running")
    page.click(".st-key-compare_stop button")
    wait_idle(page)
    page.reload()  # the run id is in the URL: a reload finds the comparison again
    wait_idle(page)
    page.wait_for_function(f"({CURVES})().length === 3")
    assert page.locator(".st-key-compare_ratios [data-tag]").count() == 3  # the run's own settings are shown
    assert page.get_by_label("Hidden size", exact=True).input_value() == "32"
    assert page.get_by_text("stopped: step").count() == 1
    page.wait_for_selector(".st-key-compare_train_on button:not([disabled])", timeout=2000)  # it can be continued
    screenshot(page, "compare-after-reload")
