"""What every command shares: flags built from the settings table, exit codes, strict JSON, the run loop."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from playground.core.config import DEFAULTS, SETTINGS, SWITCH, VARIANT_SETTINGS, TrainConfig, whole_number
from playground.core.tasks import CustomPairs, load_custom_csv
from playground.export.experiment import Experiment
from playground.export.tensorboard import TensorBoardLog, TensorBoardMissing
from playground.runs.background import BackgroundRun, RunError
from playground.runs.registry import RunRegistry
from playground.runs.shown import locked_elsewhere
from playground.runs.worker import ELSEWHERE
from playground.training.run_folder import RunKind, RunStatus, read_run_file, runs_folder

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_FAILED = 0, 1, 2, 3, 4
EXIT_CODES = {RunStatus.DIVERGED: EXIT_DIVERGED, RunStatus.FAILED: EXIT_FAILED}
ALIASES = {"teacher_forcing_ratio": ["--ratio"], "hidden_dim": ["--hidden"], "emb_dim": ["--emb"],
           "num_layers": ["--layers"]}
NOT_FLAGS = ("custom_data",)  # set from --custom-csv, never typed


class BadInput(ValueError):
    """A problem with what was typed; the CLI prints it on one line and exits with code 2."""


def add_config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per setting (--hidden-dim, ...), all optional: unset keeps the default."""
    for name, setting in SETTINGS.items():
        if name in skip or name in NOT_FLAGS:
            continue
        default = getattr(DEFAULTS, name)
        switch = {"nargs": "?", "const": "on"} if setting.choices == SWITCH else {}  # --reverse-source alone: on
        parser.add_argument(f"--{name.replace('_', '-')}", *ALIASES.get(name, []), dest=name, default=None,
                            metavar=setting.kind.__name__.upper(), help=f"{setting.help} Default {default!r}.",
                            **switch)
    if "task" not in skip:
        parser.add_argument("--custom-csv", default=None, metavar="PATH",
                            help="source,target pairs for --task custom (read once; the pairs go into the run)")


def add_variant_lists(parser: argparse.ArgumentParser) -> None:
    """--cell, --attention, --reverse-source as comma-separated lists: the models to compare (the product of the
    lists, with the ratios and schedules); pass `skip=VARIANT_SETTINGS` to `add_config_options` beside it."""
    for name in VARIANT_SETTINGS:
        setting = SETTINGS[name]
        switch = {"nargs": "?", "const": "on"} if setting.choices == SWITCH else {}
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default="", metavar="LIST", **switch,
                            help=f"comma-separated, to compare several: {', '.join(setting.options)} "
                                 f"(default {getattr(DEFAULTS, name)}). {setting.help}")


def variant_lists(args: argparse.Namespace) -> list[list[str]]:
    """The lists `add_variant_lists` read, in VARIANT_SETTINGS order (an empty list: the default)."""
    return [[part.strip() for part in getattr(args, name).split(",") if part.strip()] for name in VARIANT_SETTINGS]


def config_from_args(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> tuple[TrainConfig, CustomPairs | None]:
    values = {name: getattr(args, name) for name in SETTINGS
              if name not in skip and name not in NOT_FLAGS and getattr(args, name, None) is not None}
    custom = None
    if getattr(args, "custom_csv", None):
        custom = load_custom_csv(args.custom_csv, values.get("custom_tokenization", DEFAULTS.custom_tokenization))
        values["custom_data"] = custom.fingerprint
    return TrainConfig.from_dict(values), custom


def resume_run(run_dir: Path, steps: str | None, kind: RunKind) -> BackgroundRun[Any]:
    """Continue a saved run of `kind` exactly where it was saved, up to `steps` in all (default: its own total),
    and start it; a folder of another kind or one that cannot be loaded is bad input, said in one line."""
    if locked_elsewhere(run_dir):  # one writer per run folder: said before anything is loaded or written
        raise BadInput(f"{run_dir}: {ELSEWHERE}")
    info = read_run_file(run_dir)
    if info is not None and info["kind"] != kind:  # said before loading: a study's loader would start Ray
        raise BadInput(f"{run_dir} holds a {info['kind']} run: continue it with "
                       f"`{resume_command(RunKind(info['kind']), run_dir)}`")
    try:
        run = RunRegistry(run_dir.parent).get(run_dir.name)
    except (ValueError, RuntimeError) as error:  # RunError, a damaged file, weights that do not fit the config
        first_line = next(iter(str(error).strip().splitlines()), type(error).__name__)
        raise BadInput(f"{run_dir} is not a run folder that can be resumed: {first_line}") from None
    total = TrainConfig.from_dict({"steps": steps}).steps if steps is not None else run.total_steps
    if total <= run.step:
        raise BadInput(f"the run has done {run.step:,} of {run.total_steps:,} steps: give --steps N "
                       f"with N above {run.step:,} to train on")
    try:
        run.train_on(total)
    except RunError as error:
        raise BadInput(str(error)) from None
    return run


def resume_command(kind: RunKind, run_dir: Path) -> str:
    """The command that continues a run of `kind` in `run_dir`."""
    if kind == RunKind.STUDY:
        return f"python -m playground study --resume {run_dir.name} --runs-dir {run_dir.parent}"
    return f"python -m playground {kind} --resume {run_dir}"


def add_run_options(parser: argparse.ArgumentParser, default_name: str, resumes: str, json_holds: str,
                    resume_metavar: str = "RUN_DIR") -> None:
    """The options of every command that trains a run: where its folder goes, its name, continuing a saved one,
    no progress line, and the closing JSON line."""
    add_runs_dir_option(parser)
    parser.add_argument("--name", default="", help=f"run name (default: {default_name})")
    parser.add_argument("--resume", metavar=resume_metavar, default=None, help=resumes)
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument("--json", action="store_true", help=f"end with one JSON line: {json_holds}")


def add_runs_dir_option(parser: argparse.ArgumentParser, what: str = "where run folders go") -> None:
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help=f"{what} (default: $PLAYGROUND_RUNS_DIR, as the app, else runs)")


def runs_dir(args: argparse.Namespace) -> Path:
    """The runs folder a command uses: --runs-dir, else the app's."""
    return args.runs_dir if args.runs_dir is not None else runs_folder()


def add_tensorboard_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tensorboard", metavar="DIR", default=None,
                        help="log every model's metrics and settings to TensorBoard under DIR while training "
                             "(needs the tensorboard package of requirements-dev.txt)")


def tensorboard_log(args: argparse.Namespace, experiment: Experiment) -> TensorBoardLog | None:
    """The run's TensorBoard log when --tensorboard asks for one."""
    if not args.tensorboard:
        return None
    try:
        return TensorBoardLog(Path(args.tensorboard), experiment)
    except TensorBoardMissing as error:
        raise BadInput(str(error)) from None


def threads(text: str) -> int:
    if (number := whole_number(text)) is None or not 0 <= number <= 1024:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a whole number, 0 (torch's choice) to 1024")
    return number


def strict(value: Any) -> Any:
    """JSON-safe: non-finite numbers become null (the status says why)."""
    if isinstance(value, np.generic):  # a numpy bool or number among a reading's facts
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(strict(value), allow_nan=False))


def follow(run: BackgroundRun[Any], quiet: bool, tensorboard: TensorBoardLog | None = None) -> RunStatus:
    """Wait for a started run, drawing a progress bar (and logging its rows to TensorBoard as they come); Ctrl-C
    stops it (it saves what it has)."""
    try:
        while run.active:
            if not quiet:
                print(progress_line(run.step, run.total_steps), end="", file=sys.stderr, flush=True)
            run.join(timeout=0.25)
            if tensorboard:
                tensorboard.write_models(live_rows(run))
    except KeyboardInterrupt:
        run.stop()
    run.join()
    if tensorboard:
        tensorboard.write_models(live_rows(run))
        tensorboard.close()
    if not quiet:
        print(progress_line(run.step, run.total_steps), file=sys.stderr)
    return run.status


def progress_line(step: int, total: int) -> str:
    width = 30
    filled = int(width * min(step / max(total, 1), 1.0))
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {step}/{total} steps"


def live_rows(run: BackgroundRun[Any]) -> list[list[dict[str, float]]]:
    """The rows so far of a training run or a comparison that is training, one list per model."""
    snapshot = run.snapshot()
    return [snapshot.rows] if run.kind == RunKind.TRAIN else snapshot.rows
