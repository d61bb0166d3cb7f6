"""`runs`: every run folder of every kind, as the app lists them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from playground.cli.common import EXIT_OK, print_json
from playground.core.config import MODEL_SHAPE, variant_label
from playground.runs.registry import RunRegistry
from playground.training.run_folder import read_config


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("runs", help="list the run folders (training runs and comparisons)")
    parser.add_argument("--runs-dir", default="runs", help="the runs folder (default runs)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line: a list of runs")


def run(args: argparse.Namespace) -> int:
    summaries = RunRegistry(Path(args.runs_dir)).list()
    if not summaries:
        print(f"no runs in {args.runs_dir}")
    models = {summary.id: model_of(Path(args.runs_dir) / summary.id) for summary in summaries}
    for summary in summaries:
        model = variant_label(models[summary.id]) if models[summary.id] else "?"
        print(f"{summary.id}  {summary.kind:<8} {summary.status:<9} {summary.step:>7}/{summary.total_steps:<7} "
              f"{model:<12} {summary.name}")
    if args.json:
        print_json([summary.as_dict() | {"model": models[summary.id]} for summary in summaries])
    return EXIT_OK


def model_of(run_dir: Path) -> dict[str, str] | None:
    """The run's model settings (`MODEL_SHAPE`: architecture, cell, heads, ...) from its config, None where it cannot
    be read."""
    try:
        config = read_config(run_dir).as_dict()
    except (OSError, ValueError):  # ConfigError and FileTooLarge are ValueErrors
        return None
    return {name: config[name] for name in MODEL_SHAPE}
