"""`export`: a run as a standalone PyTorch script and/or TensorBoard event files (the pages' "PyTorch script")."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from playground.cli.common import EXIT_OK, BadInput, print_json
from playground.export.experiment import read_experiment
from playground.export.script import TOLERANCE, pytorch_script
from playground.export.tensorboard import TensorBoardMissing, export_tensorboard


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("export", help="a run as a standalone PyTorch script or as TensorBoard event files")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (training run, comparison or study)")
    parser.add_argument("--script", metavar="OUT.py", default=None,
                        help="write one self-contained script (torch and the standard library) that trains the same "
                             f"experiment with the same seeds and prints the same validation figures ({TOLERANCE})")
    parser.add_argument("--tensorboard", metavar="DIR", default=None,
                        help="write each model's metrics as scalars and its settings as hyperparameters under DIR "
                             "(then: tensorboard --logdir DIR); training runs and comparisons")
    parser.add_argument("--condition", "--cell", dest="condition", type=int, default=None, metavar="N",
                        help="a study's condition (task, setting, hidden size) to export as a script, counted from "
                             "0 (a study only)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line: what was written")


def run(args: argparse.Namespace) -> int:
    if not args.script and not args.tensorboard:
        raise BadInput("nothing to export: give --script OUT.py, --tensorboard DIR or both")
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir} is not a run folder")
    if args.tensorboard and args.condition is not None:
        raise BadInput("--tensorboard exports a training run or a comparison; a study's condition goes to --script")
    written: dict[str, Any] = {"run_dir": str(run_dir)}
    try:
        experiment = read_experiment(run_dir, args.condition)
        if args.script:
            Path(args.script).write_text(pytorch_script(experiment), encoding="utf-8")
            written["script"] = args.script
            print(f"script: {args.script} ({len(experiment.configs)} model(s); run it with python {args.script})")
        if args.tensorboard:
            folders = export_tensorboard(run_dir, Path(args.tensorboard))
            written["tensorboard"] = [str(folder) for folder in folders]
            print(f"TensorBoard: {len(folders)} model(s) under {args.tensorboard} "
                  f"(see them with tensorboard --logdir {args.tensorboard})")
    except (ValueError, TensorBoardMissing) as error:  # ExportError, or a damaged file named by its reader
        raise BadInput(str(error)) from None
    if args.json:
        print_json(written)
    return EXIT_OK
