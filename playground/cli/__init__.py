"""Headless use, the twin of every page: python -m playground tasks | train | compare | runs | decode | probe |
estimate | study | lesson | export | seats | bench.

Each command is a module with `add_parser` and `run`; train and compare go through the same run registry as the
app, so their folders are app runs. Exit codes: 0 done or stopped, 1 unexpected error, 2 bad input, 3 diverged,
4 failed (for example the disk filled); every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

from playground.cli import compare, decode, estimate, export, lesson, probe, runs, seats, study, train
from playground.cli.common import EXIT_BAD_INPUT, EXIT_ERROR, EXIT_FAILED, EXIT_OK, BadInput, threads
from playground.core.config import ConfigError
from playground.core.devices import device_choices
from playground.core.files import DamagedFile, FileTooLarge
from playground.core.tasks import TASKS, TaskError
from playground.runs.background import RunError

COMMANDS = {"train": train, "compare": compare, "runs": runs, "decode": decode, "probe": probe, "estimate": estimate,
            "study": study, "lesson": lesson, "export": export, "seats": seats}


def tasks_command(_: argparse.Namespace) -> int:
    width = max(map(len, TASKS))
    for name, info in TASKS.items():
        print(f"{name:<{width}}  {info.description}")
    return EXIT_OK


def bench_command(args: argparse.Namespace) -> int:
    if args.study:
        from bench.study_workers import bench_study  # the benchmarks live beside the package, not in it

        bench_study(args.quick, args.json)
        return EXIT_OK
    if args.first_point:
        from bench.first_point import bench_first_point

        bench_first_point(args.json)
        return EXIT_OK
    if args.stop:
        from bench.stop_latency import bench_stop

        bench_stop(args.largest, args.json)
        return EXIT_OK
    from bench.steps import bench_command as bench

    bench(args.quick, args.json, args.device, args.threads)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m playground", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=threads, default=0,
                        help="torch CPU threads for this process, set once at start (default: torch's choice)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tasks", help="list the synthetic tasks")
    for module in COMMANDS.values():
        module.add_parser(commands)
    bench = commands.add_parser("bench", help="training-step speed against fused and naive references")
    bench.add_argument("--json", action="store_true", help="end with one JSON line of results")
    bench.add_argument("--quick", action="store_true", help="a few steps per case: checks, not measurements")
    bench.add_argument("--study", action="store_true", help="instead: a study on a Ray cluster here, 1 node vs 2")
    bench.add_argument("--stop", action="store_true", help="instead: how long Stop takes against a step's length")
    bench.add_argument("--first-point", action="store_true",
                       help="instead: seconds from Start to the first loss point, a run in its worker process")
    bench.add_argument("--largest", action="store_true", help="with --stop: the largest allowed size too (14 GB)")
    bench.add_argument("--device", default="cpu", choices=device_choices(), help="default cpu")
    bench.add_argument("--threads", type=threads, default=1, help="torch CPU threads (default 1; 0: torch's choice)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    handlers: dict[str, Any] = {"tasks": tasks_command, "bench": bench_command,
                                **{name: module.run for name, module in COMMANDS.items()}}
    try:
        return handlers[args.command](args)
    except (ConfigError, TaskError, DamagedFile, FileTooLarge, BadInput, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:  # e.g. a runs folder that cannot be written
        print(f"error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # never a traceback: one line and a non-zero code
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_ERROR
