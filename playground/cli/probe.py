"""`probe`: does a trained model recover from one wrong token, and how far do its decoder states drift when it
feeds itself (the twin of the probe views on Train, Compare and Decode and of the drift on Hidden states)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from playground.cli.common import EXIT_OK, print_json
from playground.cli.decode import load_models
from playground.core.config import SETTINGS, whole_number
from playground.inspection.exposure import PROBED_EXAMPLES, Exposure, examine
from playground.reports.probe_reading import recovery_headline


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("probe", help="does a model recover after one wrong token; how its states drift")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (training or comparison) or a checkpoint .pt")
    parser.add_argument("--examples", type=examples, default=PROBED_EXAMPLES, metavar="N",
                        help=f"the first N validation examples (default {PROBED_EXAMPLES}; at most the run's own)")
    parser.add_argument("--no-drift", action="store_true", help="leave out the drift of the decoder's states")
    parser.add_argument("--json", action="store_true",
                        help="end with one JSON line: per model its recovery (and drift) by output position, and "
                             "the headline")


def examples(text: str) -> int:
    most = int(SETTINGS["val_size"].high or 0)  # the largest validation set a run may have
    if (number := whole_number(text)) is None or not 1 <= number <= most:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a whole number from 1 to {most:,}")
    return number


def run(args: argparse.Namespace) -> int:
    exposures = examine(load_models(Path(args.run_dir), with_validation=True), args.examples, not args.no_drift)
    for exposure in exposures:
        print(table(exposure))
    headline = recovery_headline(exposures)
    print(headline)
    if args.json:
        print_json({"run": args.run_dir, "examples": args.examples, "headline": headline,
                    "models": [exposure.as_dict() for exposure in exposures]})
    return EXIT_OK


def table(exposure: Exposure) -> str:
    """One model's probe by output position, as a text table."""
    recovery, drift = exposure.recovery, exposure.drift
    lines = [f"{exposure.label or 'model'} at step {exposure.step}: recovers after {recovery.overall:.1%} of the "
             f"wrong tokens injected",
             "  k  examples  error after true prefix  after own prefix  recovered  TV distance"
             + ("  state distance" if drift else "")]
    for k in recovery.positions:
        cells = [recovery.true_prefix_error[k], recovery.own_prefix_error[k], recovery.recovery[k]]
        row = f"{k:>3}  {recovery.count[k]:>8}  " + "  ".join(
            f"{value:>{width}}" for value, width in zip((percent(v) for v in cells), (23, 16, 9), strict=True))
        row += f"  {number(recovery.total_variation[k]):>11}"
        if drift is not None and k < drift.distance.size:
            row += f"  {number(drift.distance[k]):>14}"
        lines.append(row)
    return "\n".join(lines)


def percent(value: float) -> str:
    return f"{value:.1%}" if np.isfinite(value) else "-"


def number(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "-"
