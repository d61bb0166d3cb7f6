"""`train`: one model through the app's own run lifecycle (a run folder the app lists), and `--resume`."""

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
    config_from_args,
    follow,
    print_json,
    resume_run,
    runs_dir,
    tensorboard_log,
)
from playground.export.experiment import Experiment, read_experiment
from playground.runs.background import BackgroundRun
from playground.runs.registry import RunRegistry
from playground.runs.train_engine import TrainingEngine, TrainingSnapshot
from playground.training.metrics import EVALUATED, Metric, by_length
from playground.training.run_folder import RunKind


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("train", help="train one model and write a run folder the app lists")
    add_config_options(parser)
    add_run_options(parser, "TASK-cli", "continue a stopped, crashed or finished run exactly where it was saved "
                    "(with --steps N: up to N steps in all)", "the run's results")
    add_tensorboard_option(parser)


def run(args: argparse.Namespace) -> int:
    if args.resume:
        training = resume_run(Path(args.resume), args.steps, RunKind.TRAIN)
        log = tensorboard_log(args, read_experiment(Path(args.resume)))
    else:
        config, custom = config_from_args(args)
        name = args.name or f"{config.task}-cli"
        log = tensorboard_log(args, Experiment.of_run(name, config))  # before the start: a refusal leaves no run
        training = RunRegistry(runs_dir(args)).launch(name, TrainingEngine.create(config, custom), config,
                                                           custom)
    status = follow(training, args.quiet, log)
    snapshot: TrainingSnapshot = training.snapshot()
    summary = summarise(training, snapshot)
    print(f"{status}: {snapshot.config.task}, {snapshot.step} of {snapshot.total_steps} steps in "
          f"{snapshot.seconds:.1f} s ({snapshot.steps_per_second:.1f} steps/s)"
          + (f" — {training.message}" if training.message else ""))
    if evaluated := summary["free_running_exact_match"]:
        print(f"validation exact match: teacher-forced {summary['teacher_forced_exact_match']:.1%}, "
              f"free-running {evaluated:.1%}")
    if summary["beyond_exact"] is not None:
        print(f"beyond the training lengths, free-running exact match: {summary['beyond_exact']:.1%} (by length: "
              + ", ".join(f"{size} {value:.0%}" for size, value in summary["exact_by_length"].items()) + ")")
    print(f"run folder: {training.run_dir}")
    if args.json:
        print_json(summary)
    return EXIT_CODES.get(status, EXIT_OK)


def summarise(training: BackgroundRun[Any], snapshot: TrainingSnapshot) -> dict[str, Any]:
    last = next((row for row in reversed(snapshot.rows) if EVALUATED in row), {})
    return {
        "status": str(training.status), "message": training.message, "id": training.id,
        "task": snapshot.config.task, "steps": snapshot.step, "total_steps": snapshot.total_steps,
        "seconds": round(snapshot.seconds, 2), "steps_per_second": round(snapshot.steps_per_second, 1),
        "device": snapshot.config.device,
        "teacher_forced_exact_match": last.get(Metric.TF_EXACT),
        "free_running_exact_match": last.get(Metric.FR_EXACT),
        "teacher_forced_loss": last.get(Metric.TF_LOSS),
        "free_running_loss": last.get(Metric.FR_LOSS),
        "teacher_forced_token_accuracy": last.get(Metric.TF_TOKEN_ACC),
        "free_running_token_accuracy": last.get(Metric.FR_TOKEN_ACC),
        "exact_by_length": by_length(last), "tf_exact_by_length": by_length(last, "val_tf"),
        "beyond_exact": last.get(Metric.BEYOND_EXACT),
        "run_dir": str(training.run_dir),
    }
