"""`runs`: every run folder of every kind, as the app lists them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from playground.cli.common import EXIT_OK, print_json
from playground.runs.registry import RunRegistry


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("runs", help="list the run folders (training runs and comparisons)")
    parser.add_argument("--runs-dir", default="runs", help="the runs folder (default runs)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line: a list of runs")


def run(args: argparse.Namespace) -> int:
    summaries = RunRegistry(Path(args.runs_dir)).list()
    if not summaries:
        print(f"no runs in {args.runs_dir}")
    for summary in summaries:
        print(f"{summary.id}  {summary.kind:<8} {summary.status:<9} {summary.step:>7}/{summary.total_steps:<7} "
              f"{summary.name}")
    if args.json:
        print_json([summary.as_dict() for summary in summaries])
    return EXIT_OK
