"""A small study from the Study page in a real browser: Ray starts on demand, the progress bar and the results
(the chart with its intervals, the reading, the table, its results beside the pinned condition and arm at 800 px) are
drawn, a condition downloads as a PyTorch script, and the server outlives Ray's processes killed."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from playground.runs.study_engine import ADDRESS_ENV
from tests.browser.conftest import another_server, screenshot
from tests.browser.harness import set_number, wait_idle
from tests.browser.test_faults_browser import server_pid
from tests.processes import command_line
from tests.test_study_ray import MARK, marked_processes

pytestmark = pytest.mark.browser

ERROR_BARS = """() => {
  const plot = document.querySelector('.st-key-study_chart .js-plotly-plot');
  return plot && plot._fullData ? plot._fullData.map(t => [t.name, t.y.length, !!(t.error_y && t.error_y.visible)])
                                : [];
}"""

FIRST_COLUMNS = """() => [...document.querySelectorAll('.st-key-study_table th')].slice(0, 3).map(h => h.innerText)"""


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
    set_number(page, "Steps per condition", 60)
    set_number(page, "Evaluate every", 20)
    page.wait_for_selector("text=1 conditions x 4 models each")
    page.click(".st-key-study_start button")
    page.wait_for_selector("[data-testid=stProgress]")
    page.wait_for_selector("text=finished: 1 of 1 conditions done", timeout=180_000)
    page.wait_for_function(f"({ERROR_BARS})().length === 2")
    assert page.evaluate(ERROR_BARS) == [["γ = 0", 1, True], ["γ = 1", 1, True]]
    assert page.get_by_text("95% confidence interval").count() >= 1
    page.wait_for_selector(".st-key-study_table [data-testid=stDataFrame]", state="attached")
    page.set_viewport_size({"width": 800, "height": 1100})
    page.wait_for_timeout(1000)
    assert page.evaluate(FIRST_COLUMNS) == ["condition", "arm", "free-running exact"]  # the rest scrolls sideways
    assert page.get_by_role("button", name="Download CSV").count() == 1
    wait_idle(page)  # the rerun after the study's end has settled: a click during it is lost
    with page.expect_download() as download:  # the condition's script, written when clicked
        page.click(".st-key-study_script button")
    script = Path(download.value.path()).read_text(encoding="utf-8")
    assert "the task: Reverse the sequence" in script
    assert all(f"'label': 'γ = {ratio}, seed {seed}'" in script for ratio in (0, 1) for seed in (0, 1))
    screenshot(page, "study-finished")


def test_the_server_outlives_every_ray_process_killed_during_a_study(tmp_path_factory: pytest.TempPathFactory,
                                                                     browser: object) -> None:
    """kill -9 of the study's driver and of every Ray process (its local instance) while a study started from the
    Study page trains: the server lives on, the study is marked failed with why, and other pages keep working."""
    mark = uuid.uuid4().hex
    with another_server(tmp_path_factory, "raykill", {MARK: mark, ADDRESS_ENV: ""}) as url:
        server = server_pid(url)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/study?study_tasks=reverse&study_max_lens=4&study_hiddens=8&study_ratios=0&study_ratios=1"
                  "&study_schedules=&study_seeds=2&study_steps=100000&study_eval_every=10")
        wait_idle(page)
        page.wait_for_selector("text=1 conditions x 4 models each")  # the link's grid
        page.click(".st-key-study_start button")
        page.wait_for_selector("text=Ray cluster:", timeout=180_000)  # the driver has connected to its Ray
        page.wait_for_function("() => /running: 0 of 1 conditions done · step [1-9]/.test(document.body.innerText)",
                               timeout=120_000)
        killed = [pid for pid in marked_processes(mark) if pid != server and not run_machinery(pid)]
        assert len(killed) > 3  # the driver and Ray's processes (GCS, raylet, workers...)
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        page.wait_for_selector("text=failed: 0 of 1 conditions done", timeout=60_000)
        page.wait_for_selector("text=the study's driver process ended")
        page.get_by_test_id("stSidebarNav").get_by_text("Train", exact=True).click()
        page.wait_for_selector(".st-key-start button")
        wait_idle(page)
        os.kill(server, 0)  # still the same process
        for _ in range(100):  # the study's worker saw its driver end, marked the study and ended too
            if [pid for pid in marked_processes(mark) if not run_machinery(pid)] == [server]:
                break
            time.sleep(0.1)
        assert [pid for pid in marked_processes(mark) if not run_machinery(pid)] == [server]
        page.close()


def run_machinery(pid: int) -> bool:
    """The server's forkserver, its resource tracker and the run workers forked from it (their command line is the
    forkserver's): the server's own machinery, not the study's driver or Ray's processes."""
    line = command_line(pid)
    return "multiprocessing.forkserver" in line or "multiprocessing.resource_tracker" in line
