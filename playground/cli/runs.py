"""`runs`: every run folder of every kind, as the app lists them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from playground.cli.common import EXIT_OK, add_runs_dir_option, print_json, runs_dir
from playground.core.config import MODEL_SHAPE, TrainConfig, variant_label
from playground.runs.registry import RunRegistry
from playground.training.run_folder import read_config


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("runs", help="list the run folders (training runs and comparisons)")
    add_runs_dir_option(parser, "the runs folder")
    parser.add_argument("--json", action="store_true", help="end with one JSON line: a list of runs")


def run(args: argparse.Namespace) -> int:
    folder = runs_dir(args)
    summaries = RunRegistry(folder).list()
    if not summaries:
        print(f"no runs in {folder}")
    configs = {summary.id: config_of(folder / summary.id) for summary in summaries}
    for summary in summaries:
        config = configs[summary.id]
        model = variant_label(config.as_dict()) if config else "?"
        print(f"{summary.id}  {summary.kind:<8} {summary.status:<9} {summary.step:>7}/{summary.total_steps:<7} "
              f"{model:<12} {tested_text(config):<14} {summary.name}")
    if args.json:
        print_json([summary.as_dict() | settings_of(configs[summary.id]) for summary in summaries])
    return EXIT_OK


def config_of(run_dir: Path) -> TrainConfig | None:
    """The run's config, None where it cannot be read."""
    try:
        return read_config(run_dir)
    except (OSError, ValueError):  # ConfigError and FileTooLarge are ValueErrors
        return None


def tested_text(config: TrainConfig | None) -> str:
    """"tested to 12" for a run whose validation goes beyond its training sizes."""
    return f"tested to {config.size_range().tested}" if config and config.size_range().beyond else ""


def settings_of(config: TrainConfig | None) -> dict[str, Any]:
    """The run's model settings (`MODEL_SHAPE`: architecture, cell, heads, ...) and its sizes: trained smallest to
    largest, and tested up to; None where the config cannot be read."""
    if config is None:
        return {"model": None, "sizes": None}
    sizes = config.size_range()
    return {"model": {name: getattr(config, name) for name in MODEL_SHAPE},
            "sizes": {"smallest": sizes.smallest, "trained": sizes.trained, "tested": sizes.tested}}
