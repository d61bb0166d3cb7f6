"""`compare`: several teacher-forcing arms side by side in one run folder, as the Compare page makes, and
`--resume`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from playground.cli.common import (
    EXIT_CODES,
    EXIT_OK,
    add_config_options,
    add_run_options,
    add_tensorboard_option,
    add_variant_lists,
    config_from_args,
    follow,
    print_json,
    resume_run,
    runs_dir,
    tensorboard_log,
    variant_lists,
)
from playground.core.config import VARIANT_SETTINGS
from playground.experiments.comparison import CompareConfig, parse_ratios
from playground.export.experiment import Experiment, read_experiment
from playground.reports.comparison_table import comparison_reading, format_table, summary_rows
from playground.runs.compare_engine import CompareEngine
from playground.runs.registry import RunRegistry
from playground.training.run_folder import RunKind

PER_ARM = ("teacher_forcing_ratio", "schedule")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("compare",
                                 help="train several teacher-forcing ratios (and models) side by side, batched")
    add_config_options(parser, skip=PER_ARM + VARIANT_SETTINGS)
    add_variant_lists(parser)
    parser.add_argument("--ratios", default="0,0.25,0.5,0.75,1",
                        help="comma-separated ratios (default 0,0.25,0.5,0.75,1)")
    parser.add_argument("--schedules", default="", help="comma-separated decaying schedules from 1 to --tf-end")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per ratio, 1 to 3 (default 1)")
    add_run_options(parser, "TASK-compare", "continue a stopped, crashed or finished comparison (or lesson) "
                    "exactly where it was saved, with its own settings (with --steps N: up to N steps in all)",
                    "a row per arm, its settings (ratio, schedule, cell, attention, reverse_source) beside its label")
    add_tensorboard_option(parser)


def run(args: argparse.Namespace) -> int:
    if args.resume:
        comparison = resume_run(Path(args.resume), args.steps, RunKind.COMPARE)
        log = tensorboard_log(args, read_experiment(Path(args.resume)))
    else:
        base, custom = config_from_args(args, skip=PER_ARM + VARIANT_SETTINGS)
        config = CompareConfig.build(base, parse_ratios(args.ratios), parse_ratios(args.schedules), args.seeds,
                                     variants=variant_lists(args))
        name = args.name or f"{base.task}-compare"
        log = tensorboard_log(args, Experiment.of_comparison(name, config))  # before the start: a refusal leaves no run
        comparison = RunRegistry(runs_dir(args)).launch(name, CompareEngine(config, custom), base, custom)
    status = follow(comparison, args.quiet, log)
    snapshot = comparison.snapshot()
    table = summary_rows(snapshot)
    print(format_table(table))
    print(comparison_reading(table))
    print(f"{status}; run folder: {comparison.run_dir}")
    if args.json:
        print_json({"status": str(status), "message": comparison.message, "id": comparison.id,
                    "task": snapshot.config.base.task, "steps": snapshot.step,
                    "total_steps": snapshot.total_steps, "seconds": round(snapshot.seconds, 2),
                    "run_dir": str(comparison.run_dir), "rows": table})
    return EXIT_CODES.get(status, EXIT_OK)
