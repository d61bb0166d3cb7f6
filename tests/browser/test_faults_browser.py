"""Fault injection on the app server: SIGKILL the `streamlit run` process while a run started from the Train page
trains. What it had saved stays: the run is listed as stopped (by the CLI and by a new server) and resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playground.runs.shown import locked_elsewhere
from playground.training.run_folder import CHECKPOINT_FILE, METRICS_FILE
from tests.browser.harness import ROOT, ServerError, set_number, streamlit_app, wait_idle

pytestmark = pytest.mark.browser


def server_pid(url: str) -> int:
    """The `streamlit run` process serving `url` (the harness starts it on a port of its own)."""
    port = url.rsplit(":", 1)[1]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(words) and port.encode() in words:
            return int(pid)
    raise LookupError(f"no streamlit process on port {port}")


def test_a_killed_app_server_keeps_its_run_which_is_listed_and_resumes(tmp_path: Path, browser: object) -> None:
    runs_dir = tmp_path / "runs"
    with (tmp_path / "server.log").open("w+") as log:
        try:
            with streamlit_app(runs_dir, log) as url:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(url)
                wait_idle(page)
                set_number(page, "Hidden size", 16)
                set_number(page, "Steps", 100_000)
                page.click(".st-key-start button")
                deadline = time.monotonic() + 60
                while not list(runs_dir.glob(f"*/{CHECKPOINT_FILE}")) and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(1.0)
                os.kill(server_pid(url), signal.SIGKILL)
                page.close()
        except ServerError as error:
            pytest.fail(str(error))
    (run_dir,) = runs_dir.iterdir()
    deadline = time.monotonic() + 60
    while locked_elsewhere(run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)  # the run's worker saw its server go, saves and ends
    assert {"run.json", METRICS_FILE, CHECKPOINT_FILE} <= {path.name for path in run_dir.iterdir()}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "playground", "--threads", "1", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    listed = json.loads(cli("runs", "--runs-dir", str(runs_dir), "--json").stdout.splitlines()[-1])
    assert [(run["kind"], run["status"]) for run in listed] == [("train", "stopped")] and listed[0]["step"] > 0
    with (tmp_path / "again.log").open("w+") as log, streamlit_app(runs_dir, log) as url:  # a restarted server
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        wait_idle(page)
        page.get_by_text("Runs: open, rename, delete, download").click()
        wait_idle(page)
        shown = page.get_by_label("Run", exact=True).input_value()
        assert f"(stopped, step {listed[0]['step']:,} of 100,000)" in shown and run_dir.name in shown
        page.close()
    resumed = cli("train", "--resume", str(run_dir), "--steps", str(listed[0]["step"] + 20), "--quiet", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1])["total_steps"] == listed[0]["step"] + 20
