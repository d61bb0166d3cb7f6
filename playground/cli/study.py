"""`study`: teacher-forcing arms over seeds, tasks, settings and sizes on Ray, with means, CIs and paired tests."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from playground.cli.common import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_OK,
    BadInput,
    add_config_options,
    add_run_options,
    add_variant_lists,
    config_from_args,
    print_json,
    runs_dir,
    variant_lists,
)
from playground.core.config import VARIANT_SETTINGS
from playground.experiments.comparison import parse_ratios
from playground.experiments.study_grid import StudyConfig
from playground.reports.study_table import format_summaries, study_reading
from playground.runs.background import BackgroundRun
from playground.runs.registry import RunRegistry
from playground.runs.study_engine import ADDRESS_ENV, StudyEngine, StudySnapshot

GRID = ("task", "max_len", "max_digits", "hidden_dim", "teacher_forcing_ratio", "schedule", "seed", *VARIANT_SETTINGS)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("study", help="a grid of teacher-forcing (and model) comparisons over seeds, on Ray")
    add_config_options(parser, skip=GRID)
    add_variant_lists(parser)
    parser.add_argument("--tasks", default="reverse", help="comma-separated tasks (default reverse)")
    parser.add_argument("--max-len", default="8", help="comma-separated max lengths for length tasks (default 8)")
    parser.add_argument("--digits", default="3", help="comma-separated digits for number tasks (default 3)")
    parser.add_argument("--hidden", default="64", help="comma-separated hidden sizes (default 64)")
    parser.add_argument("--ratios", default="0,0.5,1", help="comma-separated constant ratios (default 0,0.5,1)")
    parser.add_argument("--schedules", default="", help="comma-separated decaying schedules from 1 to --tf-end")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per arm, 2 to 30 (default 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed + 1, ...")
    parser.add_argument("--address", default=None,
                        help=f"a Ray cluster this machine is a node of: HEAD:6379; default ${ADDRESS_ENV}, else a "
                             "local Ray started for the study")
    add_run_options(parser, "study", "train the conditions of an unfinished study that are not done (in --runs-dir)",
                    "conditions with means, CIs, tests", resume_metavar="RUN_ID")


def _numbers(text: str, what: str) -> list[int]:
    try:
        return [int(part) for part in parse_ratios(text)]
    except ValueError:
        raise BadInput(f"--{what} {text!r} is not allowed: give comma-separated whole numbers") from None


def config_from(args: argparse.Namespace) -> StudyConfig:
    base, custom = config_from_args(args, skip=GRID)
    if custom is not None:
        raise BadInput("a study does not take --custom-csv: it runs the synthetic tasks")
    return StudyConfig.build(base.replace(seed=args.first_seed), parse_ratios(args.tasks),
                             _numbers(args.max_len, "max-len"), _numbers(args.digits, "digits"),
                             _numbers(args.hidden, "hidden"), parse_ratios(args.ratios),
                             parse_ratios(args.schedules), args.seeds, variant_lists(args))


def follow(study: BackgroundRun[StudySnapshot], quiet: bool) -> None:
    """Wait, printing conditions done / total; Ctrl-C stops the study (it saves what it has, the conditions cancel)."""
    def line() -> str:
        snapshot = study.snapshot()
        return (f"\rconditions {snapshot.conditions_done}/{snapshot.conditions_total} · "
                f"steps {snapshot.step}/{snapshot.total_steps}")
    try:
        while study.active:
            if not quiet:
                print(line(), end="", file=sys.stderr, flush=True)
            study.join(timeout=0.5)
    except KeyboardInterrupt:
        study.stop()
    study.join()
    if not quiet:
        print(line(), file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    registry = RunRegistry(runs_dir(args))
    if args.resume:
        study = registry.get(args.resume)
        if study.kind != StudyEngine.kind:
            raise BadInput(f"run {args.resume} is a {study.kind} run, not a study")
        if study.step < study.total_steps:
            study.continue_to(study.total_steps)
        study.start()
    else:
        config = config_from(args)
        study = registry.launch(args.name or "study", StudyEngine(config, address=args.address),
                                config.base)
    follow(study, args.quiet)
    snapshot = study.snapshot()
    print(format_summaries(snapshot.summaries))
    print(study_reading(snapshot.summaries).replace("**", ""))
    print(f"{study.status}; {snapshot.conditions_done} of {snapshot.conditions_total} conditions done; "
          f"run folder: {study.run_dir}")
    if study.message:
        print(study.message, file=sys.stderr)
    if args.json:
        print_json({"status": str(study.status), "message": study.message, "id": study.id,
                    "conditions_done": snapshot.conditions_done, "conditions_total": snapshot.conditions_total,
                    "groups_total": snapshot.conditions_total, "groups_run": snapshot.groups_run,
                    "groups_reused": snapshot.groups_reused, "groups_failed": snapshot.groups_failed,
                    "seconds": round(snapshot.seconds, 2), "run_dir": str(study.run_dir),
                    "address": snapshot.address,
                    "conditions": snapshot.summaries})
    if snapshot.groups_failed and study.status == "finished":
        return EXIT_FAILED  # the rest finished; the failed conditions are in the table with their reason
    return EXIT_CODES.get(study.status, EXIT_OK)
