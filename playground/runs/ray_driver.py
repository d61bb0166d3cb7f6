"""A study's Ray driver: a process of its own, `python -m playground.runs.ray_driver`, one streaming task per condition.

The app and the CLI never talk to Ray: `StudyEngine` (playground/runs/study_engine.py) starts this module as a child
process, writes the study (its grid and the results it has) to its stdin as one JSON line, and reads JSON lines
back from its stdout: that it is connecting, the address it really ran on, then every condition's latest result as it
arrives. So
whatever Ray or a cluster does (a worker returning a pickle, Ray's processes dying, a cluster going away) happens
in this process; what reaches the app is JSON, validated by `ConditionResult.from_dict`. It ends, cancelling
its conditions and shutting its Ray down, when its conditions are done, on SIGTERM (a stop), or when its stdin
closes (the app or the CLI that started it is gone).

Ray runs on this machine (a local instance started here, `--num-cpus` workers) unless `--address` names a
cluster. Either way the package `playground/` is shipped to the workers as a Ray `py_modules` entry, so a
local study's workers import exactly what a cluster's would.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import ray
import torch
from ray.exceptions import RayError, RayTaskError

from playground.experiments.comparison import CompareConfig
from playground.experiments.study_grid import Condition, ConditionResult, StudyConfig
from playground.runs.compare_engine import CompareEngine

ATTEMPTS = 2  # a failing condition (its exception, a lost worker or node) is trained again once, then marked failed
POLL_SECONDS = 0.2
PACKAGE = Path(__file__).resolve().parents[1]  # playground/: the code every worker imports
RUNTIME_ENV = {"py_modules": [str(PACKAGE)], "excludes": ["__pycache__", "*.pyc"]}


def connect(address: str | None = None, num_cpus: int | None = None) -> str:
    """Ray on this machine (`num_cpus` workers, default one per core) or the cluster at `address` (this machine is
    one of its nodes); the address it really runs on (the cluster's GCS address as Ray reports it)."""
    if address:
        ray.init(address=address, runtime_env=RUNTIME_ENV, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, runtime_env=RUNTIME_ENV,
                 log_to_driver=False)
    return ray.get_runtime_context().gcs_address


def condition_reports(compare: CompareConfig) -> Iterator[dict[str, Any]]:
    """Train one condition's models together; yield each model's latest evaluation (and this worker's Ray node) at every
    evaluation."""
    torch.set_num_threads(1)  # this worker process's setting: one core per task
    node = ray.get_runtime_context().get_node_id()
    # only evaluations are reported; one thread of models, as Ray counts this task as one CPU
    engine = CompareEngine(compare, log_every=compare.base.steps, workers=1)
    while not engine.finished:
        engine.advance()
        if engine.step % compare.base.eval_every == 0 or engine.finished:
            report = ConditionResult.from_rows(engine.rows, engine.step, engine.finished, engine.seconds)
            yield replace(report, node=node).as_dict()


# Ray retries nothing itself: the driver trains a failed condition once more, then records why it failed
train_condition = ray.remote(num_cpus=1, num_returns="streaming", max_retries=0)(condition_reports)


class StudyConditions:
    """The grid's conditions on Ray: submit those not done, take reports as they come, retry a failed condition once."""

    def __init__(self, config: StudyConfig, results: dict[int, ConditionResult]) -> None:
        self.conditions: list[Condition] = config.conditions()
        self.results = dict(results)
        self._running: dict[Any, int] = {}  # streaming generator -> condition index
        self._attempts: dict[int, int] = {}

    @property
    def finished(self) -> bool:
        return all(self.results.get(condition.index, ConditionResult()).ended for condition in self.conditions)

    def submit_pending(self) -> None:
        for condition in self.conditions:
            if not self.results.get(condition.index, ConditionResult()).done:
                self._submit(condition)

    def poll(self, timeout: float = POLL_SECONDS) -> list[int]:
        """Take the reports that arrive within `timeout`; the conditions whose result changed."""
        ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=timeout)
        changed = []
        for generator in ready:
            index = self._running[generator]
            try:
                report = ray.get(next(generator))
            except StopIteration:
                del self._running[generator]
                continue
            except RayError as error:  # the condition's own exception (DivergedError...), a lost worker or node, OOM
                del self._running[generator]
                self._failed(self.conditions[index], error)
                changed.append(index)
                continue
            try:
                self.results[index] = ConditionResult.from_dict(report)
            except (ValueError, TypeError, AttributeError) as error:  # not what a condition reports
                ray.cancel(generator, force=True)
                del self._running[generator]
                self.results[index] = ConditionResult(failed=f"its worker sent something that is not a result: {error}")
            changed.append(index)
        return changed

    def _submit(self, condition: Condition) -> None:
        self.results[condition.index] = ConditionResult()
        self._attempts[condition.index] = self._attempts.get(condition.index, 0) + 1
        self._running[train_condition.remote(condition.compare)] = condition.index

    def _failed(self, condition: Condition, error: RayError) -> None:
        """Once: train the condition again from step 0 (on whichever node has room). Twice: record why."""
        if self._attempts.get(condition.index, 0) < ATTEMPTS:
            self._submit(condition)
            return
        cause = error.cause if isinstance(error, RayTaskError) else None
        reason = str(cause) if cause is not None else f"{type(error).__name__}: {str(error).splitlines()[0]}"
        self.results[condition.index] = replace(self.results.get(condition.index, ConditionResult()), failed=reason)

    def halt(self) -> None:
        """Cancel the conditions still training (a stop)."""
        for generator in self._running:
            ray.cancel(generator, force=True)
        self._running.clear()


def _channel() -> IO[str]:
    """The JSON lines go to a private copy of stdout; fd 1 then points at stderr, so nothing Ray or a library
    prints can be mistaken for a result."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return channel


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _input_closed() -> bool:
    """Whether the process that started this driver has gone (its end of our stdin closed)."""
    readable, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(readable) and not sys.stdin.readline()


def drive(config: StudyConfig, results: dict[int, ConditionResult], address: str | None, num_cpus: int | None,
          channel: IO[str]) -> None:
    _send(channel, {"connecting": address or "local"})  # started and imported: the connect timeout runs from here
    address = connect(address, num_cpus)  # a SIGTERM meanwhile ends this process at once: nothing to cancel yet
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _send(channel, {"address": address})
    conditions = StudyConditions(config, results)
    conditions.submit_pending()
    try:
        while not conditions.finished and not stop.is_set() and not _input_closed():
            for index in conditions.poll():
                _send(channel, {"condition": index, "result": conditions.results[index].as_dict()})
    finally:
        conditions.halt()
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playground.runs.ray_driver", description=__doc__)
    parser.add_argument("--address", default=None, help="a Ray cluster; default: a local Ray started here")
    parser.add_argument("--num-cpus", type=int, default=None, help="workers of a local Ray (default: one per core)")
    args = parser.parse_args(argv)
    channel = _channel()
    study = json.loads(sys.stdin.readline())
    config = StudyConfig.from_dict(study["config"])
    results = {int(key): ConditionResult.from_dict(value) for key, value in study["results"].items()}
    try:
        drive(config, results, args.address, args.num_cpus, channel)
    except Exception as error:  # the traceback for a person reading stderr, then one last line for the app
        traceback.print_exc()
        first_line = next(iter(str(error).strip().splitlines()), "")
        print(f"{type(error).__name__}: {first_line}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
