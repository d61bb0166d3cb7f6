"""What every command shares: flags built from the settings table, exit codes, strict JSON, the run loop."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from playground.core.config import DEFAULTS, SETTINGS, SWITCH, VARIANT_SETTINGS, TrainConfig
from playground.core.tasks import CustomPairs, load_custom_csv
from playground.runs.background import BackgroundRun
from playground.runs.engine import RunStatus

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


def threads(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a whole number, 0 (torch's choice) to 1024")
    return int(text)


def strict(value: Any) -> Any:
    """JSON-safe: non-finite numbers become null (the status says why)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(strict(value), allow_nan=False))


def follow(run: BackgroundRun[Any], quiet: bool) -> RunStatus:
    """Wait for a started run, drawing a progress bar; Ctrl-C stops it (it saves what it has)."""
    try:
        while run.active:
            if not quiet:
                print(progress_line(run.step, run.total_steps), end="", file=sys.stderr, flush=True)
            run.join(timeout=0.25)
    except KeyboardInterrupt:
        run.stop()
    run.join()
    if not quiet:
        print(progress_line(run.step, run.total_steps), file=sys.stderr)
    return run.status


def progress_line(step: int, total: int) -> str:
    width = 30
    filled = int(width * min(step / max(total, 1), 1.0))
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {step}/{total} steps"



