"""A small study from the Study page in a real browser: Ray starts on demand, the progress bar and the results
(the chart with its intervals, the reading, the table) are drawn, and a cell downloads as a PyTorch script."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import screenshot
from tests.browser.harness import set_number, wait_idle

pytestmark = pytest.mark.browser

ERROR_BARS = """() => {
  const plot = document.querySelector('.st-key-study_chart .js-plotly-plot');
  return plot && plot._fullData ? plot._fullData.map(t => [t.name, t.y.length, !!(t.error_y && t.error_y.visible)])
                                : [];
}"""


def test_a_small_study_runs_with_progress_and_results(streamlit_server: str, browser_page) -> None:
    page = browser_page
    page.goto(streamlit_server)
    wait_idle(page)
    page.get_by_test_id("stSidebarNav").get_by_text("Study", exact=True).click()
    page.wait_for_selector("text=Study: teacher forcing, measured")
    wait_idle(page)
    for key, chip in (("study_tasks", "sort"), ("study_max_lens", "16"), ("study_ratios", "0.5"),
                      ("study_schedules", "linear")):
        page.click(f'.st-key-{key} button[aria-label="Remove {chip}"]')
        wait_idle(page)
    set_number(page, "Seeds", 2)
    set_number(page, "Steps per cell", 60)
    set_number(page, "Evaluate every", 20)
    page.wait_for_selector("text=1 cells x 4 models each")
    page.click(".st-key-study_start button")
    page.wait_for_selector("[data-testid=stProgress]")
    page.wait_for_selector("text=finished: 1 of 1 cells done", timeout=180_000)
    page.wait_for_function(f"({ERROR_BARS})().length === 2")
    assert page.evaluate(ERROR_BARS) == [["γ = 0", 1, True], ["γ = 1", 1, True]]
    assert page.get_by_text("95% confidence interval").count() >= 1
    page.wait_for_selector(".st-key-study_table [data-testid=stDataFrame]", state="attached")
    assert page.get_by_role("button", name="Download CSV").count() == 1
    with page.expect_download() as download:  # the cell's script, written when clicked
        page.click(".st-key-study_script button")
    script = Path(download.value.path()).read_text(encoding="utf-8")
    assert "the task: Reverse the sequence" in script
    assert all(f"'label': 'γ = {ratio}, seed {seed}'" in script for ratio in (0, 1) for seed in (0, 1))
    screenshot(page, "study-finished")
