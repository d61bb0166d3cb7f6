"""Headless use: python -m playground tasks | train | compare | bench."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.steps import bench_command
from playground.analysis.compare import CompareConfig, CompareEngine, format_table, parse_ratios, reading, summary_rows
from playground.core.config import ConfigError, TrainConfig
from playground.core.devices import device_choices
from playground.core.tasks import TASKS, TaskError
from playground.training.storage import CHECKPOINT_FILE, create_run_dir, save_checkpoint, write_config, write_metrics
from playground.training.trainer import DivergedError, Trainer

ALIASES = {"teacher_forcing_ratio": ["--ratio"], "hidden_dim": ["--hidden"], "emb_dim": ["--emb"],
           "num_layers": ["--layers"]}


def add_config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per TrainConfig field (--hidden-dim, ...), all optional: unset keeps the default."""
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        if field.name in skip:
            continue
        flags = [f"--{field.name.replace('_', '-')}", *ALIASES.get(field.name, [])]
        default = getattr(defaults, field.name)
        parser.add_argument(*flags, dest=field.name, default=None, metavar=type(default).__name__.upper(),
                            help=f"default {default!r}")


def config_from_args(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if f.name not in skip and getattr(args, f.name) is not None}
    return TrainConfig.from_dict(values)


def progress_line(step: int, total: int, loss: float, steps_per_second: float) -> str:
    width = 30
    filled = int(width * step / total)
    left = (total - step) / steps_per_second if steps_per_second > 0 else 0.0
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {step}/{total} loss {loss:.4f} "
            f"{steps_per_second:.1f} steps/s {left:.0f}s left")


def train_command(args: argparse.Namespace) -> dict[str, Any]:
    config = config_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = Trainer(config)
    run_dir = create_run_dir(Path(args.runs_dir), args.name or f"{config.task}-cli")
    write_config(run_dir, config)
    rows: list[dict[str, float]] = []
    status, start, last_metrics, printed = "finished", time.perf_counter(), {}, 0.0
    try:
        while trainer.step < config.steps:
            row, evaluation = trainer.logged_step()
            elapsed = time.perf_counter() - start
            rows.append(row | {"seconds": elapsed})
            if evaluation:
                last_metrics = evaluation.metrics
            if not args.quiet and (elapsed - printed > 0.25 or trainer.step == config.steps):
                printed = elapsed
                print(progress_line(trainer.step, config.steps, row["train_loss"], trainer.step / elapsed),
                      end="", file=sys.stderr, flush=True)
    except DivergedError as error:
        status = "diverged"
        print(f"\n{error}", file=sys.stderr)
    except KeyboardInterrupt:
        status = "stopped"
    seconds = time.perf_counter() - start
    if not last_metrics or status != "finished":
        last_metrics = trainer.evaluate().metrics
    write_metrics(run_dir, rows)
    save_checkpoint(run_dir / CHECKPOINT_FILE, trainer)
    if not args.quiet:
        print(file=sys.stderr)
    return {
        "status": status, "task": config.task, "steps": trainer.step, "seconds": round(seconds, 2),
        "steps_per_second": round(trainer.step / seconds, 1) if seconds else 0.0,
        "device": str(trainer.device),
        "teacher_forced_exact_match": last_metrics["val_tf_exact"],
        "free_running_exact_match": last_metrics["val_fr_exact"],
        "teacher_forced_loss": last_metrics["val_tf_loss"],
        "free_running_loss": last_metrics["val_fr_loss"],
        "run_dir": str(run_dir),
    }


def print_train_summary(summary: dict[str, Any]) -> None:
    print(f"{summary['status']}: {summary['task']}, {summary['steps']} steps in {summary['seconds']} s "
          f"({summary['steps_per_second']} steps/s on {summary['device']})")
    print(f"validation exact match: teacher-forced {summary['teacher_forced_exact_match']:.1%}, "
          f"free-running {summary['free_running_exact_match']:.1%}")
    print(f"run folder: {summary['run_dir']}")


def compare_command(args: argparse.Namespace) -> None:
    config = CompareConfig.build(config_from_args(args, skip=("teacher_forcing_ratio", "schedule")),
                                 parse_ratios(args.ratios), parse_ratios(args.schedules), args.seeds)
    if args.threads:
        torch.set_num_threads(args.threads)
    snapshot = CompareEngine(config).run_to_end()
    table = summary_rows(snapshot)
    print(format_table(table))
    print(reading(table))
    if args.json:
        print(json.dumps({"task": config.base.task, "steps": snapshot.step, "seconds": round(snapshot.seconds, 2),
                          "rows": table}))


def tasks_command() -> None:
    width = max(map(len, TASKS))
    for name, info in TASKS.items():
        print(f"{name:<{width}}  {info.description}")


def _threads(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a whole number, 0 (torch's choice) to 1024")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m playground", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tasks", help="list the synthetic tasks")
    train = commands.add_parser("train", help="train one model and write a run folder")
    add_config_options(train)
    train.add_argument("--runs-dir", default="runs", help="where run folders go (default runs)")
    train.add_argument("--name", default="", help="run name (default: TASK-cli)")
    train.add_argument("--threads", type=_threads, default=0, help="torch CPU threads (default: torch's choice)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="end with one JSON line of results")
    compare = commands.add_parser("compare", help="train several teacher-forcing ratios side by side, batched")
    add_config_options(compare, skip=("teacher_forcing_ratio", "schedule"))
    compare.add_argument("--ratios", default="0,0.25,0.5,0.75,1",
                         help="comma-separated ratios (default 0,0.25,0.5,0.75,1)")
    compare.add_argument("--schedules", default="", help="comma-separated decaying schedules from 1 to --tf-end")
    compare.add_argument("--seeds", type=int, default=1, help="seeds per ratio, 1 to 3 (default 1)")
    compare.add_argument("--threads", type=_threads, default=1, help="torch CPU threads (default 1; 0: torch's choice)")
    compare.add_argument("--json", action="store_true", help="end with one JSON line: a row per ratio")
    bench = commands.add_parser("bench", help="training-step speed: ratios against a naive reference")
    bench.add_argument("--json", action="store_true", help="end with one JSON line of results")
    bench.add_argument("--quick", action="store_true", help="a few steps per case: checks, not measurements")
    bench.add_argument("--device", default="cpu", choices=device_choices(), help="default cpu")
    bench.add_argument("--threads", type=_threads, default=1, help="torch CPU threads (default 1; 0: torch's choice)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "tasks":
            tasks_command()
        elif args.command == "train":
            summary = train_command(args)
            print_train_summary(summary)
            if args.json:
                print(json.dumps(summary))
        elif args.command == "compare":
            compare_command(args)
        elif args.command == "bench":
            bench_command(args.quick, args.json, args.device, args.threads)
    except (ConfigError, TaskError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # e.g. a runs folder that cannot be written
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
