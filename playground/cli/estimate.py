"""`estimate`: what one training step of these settings will cost on this machine, before anything runs."""

from __future__ import annotations

import argparse
from typing import Any

from playground.cli.common import EXIT_OK, add_config_options, config_from_args, print_json
from playground.training.cost import estimate, gigabytes, memory_budget
from playground.training.trainer import build_task


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("estimate", help="FLOPs, peak memory and seconds per training step of a config")
    add_config_options(parser)
    parser.add_argument("--json", action="store_true",
                        help='end with one JSON line: {"flops_per_step", "peak_memory_bytes", "seconds_per_step"}')


def run(args: argparse.Namespace) -> int:
    config, custom = config_from_args(args)
    cost = estimate(config, build_task(config, custom))
    print(f"{cost.flops_per_step / 1e9:,.2f} GFLOP per step, peak memory {gigabytes(cost.peak_memory_bytes)}, "
          f"{cost.seconds_per_step:.3g} s per step on this machine ({cost.parameters:,} parameters); "
          f"the app's memory budget for runs training at once is {gigabytes(memory_budget())}")
    if args.json:
        print_json(cost.as_dict())
    return EXIT_OK
