"""What the open Train page costs a run: its steps/s in the app against the same run from the CLI.

Each round trains the default settings (same seed) three ways: the CLI with one torch thread (as the app's
worker uses), the app with the Train page open and polling in headless Chromium, and the app with the page
closed right after Start (the worker alone in the server process). Rates are steps over the run's own
training seconds; the figures are medians over the rounds, the ratios are against the CLI of the same rounds.

    .venv/bin/python -m bench.page_cost [--steps 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playground.runs.registry import RunRegistry
from playground.training.run_folder import read_metrics
from tests.browser.harness import ROOT, chromium, set_number, streamlit_app, wait_idle

LOSS_POINTS = """() => {
  const plot = document.querySelector('.st-key-loss_chart .js-plotly-plot');
  const line = plot && plot._fullData && plot._fullData.find(trace => trace.name === 'training loss');
  return line && line.x ? line.x.length : 0;
}"""


def cli_rate(steps: int, runs_dir: Path) -> float:
    result = subprocess.run(
        [sys.executable, "-m", "playground", "--threads", "1", "train", "--steps", str(steps), "--quiet", "--json",
         "--runs-dir", str(runs_dir)], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])["steps_per_second"]


def app_rate(browser: Any, url: str, runs_dir: Path, steps: int, page_open: bool) -> tuple[float, float]:
    """Steps/s of one run started from the Train page, and the seconds from Start to the first loss point."""
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.set_default_timeout(600_000)
    page.goto(url)
    wait_idle(page)
    set_number(page, "Steps", steps)
    pressed = time.monotonic()
    page.click(".st-key-start button")
    page.wait_for_function(f"({LOSS_POINTS})() > 0")
    first_point = time.monotonic() - pressed
    registry = RunRegistry(runs_dir)
    run_id = registry.list()[0].id
    if page_open:
        page.wait_for_selector("text=finished")
    page.close()
    while registry.list()[0].status != "finished":
        time.sleep(0.2)
    rows = read_metrics(runs_dir / run_id)
    return rows[-1]["step"] / rows[-1]["seconds"], first_point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"cli": [], "page_open": [], "page_closed": []}
    first_points: list[float] = []
    with tempfile.TemporaryDirectory() as folder, (Path(folder) / "streamlit.log").open("w+") as log:
        runs_dir = Path(folder) / "runs"
        with streamlit_app(runs_dir, log) as url, chromium() as browser:
            for _ in range(args.rounds):
                rates["cli"].append(cli_rate(args.steps, Path(folder) / "cli"))
                rate, first_point = app_rate(browser, url, runs_dir, args.steps, page_open=True)
                rates["page_open"].append(rate)
                first_points.append(first_point)
                rates["page_closed"].append(app_rate(browser, url, runs_dir, args.steps, page_open=False)[0])
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"{name:<12} {medians[name]:7.1f} steps/s  (rounds: {', '.join(f'{v:.1f}' for v in values)})")
    result = {
        "steps": args.steps, "rounds": args.rounds, "steps_per_second": {k: round(v, 1) for k, v in medians.items()},
        "page_open_vs_cli": round(medians["page_open"] / medians["cli"], 3),
        "page_closed_vs_cli": round(medians["page_closed"] / medians["cli"], 3),
        "seconds_to_first_point": round(statistics.median(first_points), 2),
    }
    print(f"page open / CLI {result['page_open_vs_cli']}, page closed / CLI {result['page_closed_vs_cli']}, "
          f"Start to first loss point {result['seconds_to_first_point']} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
