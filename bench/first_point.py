"""How long from Start to the first loss point, now that a run trains in a worker process of its own.

Each case launches a real run through the registry (what the pages and the CLI call) and times until its first
row has come back from the worker. The baseline, measured in this process: building the same run's engine and
taking its first step here, which is what Start cost when runs trained in a thread of the server. The first
start of a process also waits for the forkserver to import torch and the library; the app starts it with its
first page, so it is reported apart. `python -m playground bench --first-point`.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from playground.core.config import TrainConfig
from playground.runs.protocol import RunPlan
from playground.runs.registry import RunRegistry
from playground.runs.train_engine import TrainingEngine

STARTS = 5


def seconds_to_first_point(registry: RunRegistry, config: TrainConfig) -> float:
    started = time.perf_counter()
    run = registry.launch("first point", RunPlan.train(config))
    while not run.snapshot().rows:
        time.sleep(0.002)
    seconds = time.perf_counter() - started
    run.stop(wait=60)
    return seconds


def in_process_seconds(config: TrainConfig) -> float:
    started = time.perf_counter()
    TrainingEngine.create(config).advance()
    return time.perf_counter() - started


def bench_first_point(as_json: bool) -> None:
    config = TrainConfig(steps=1_000_000, device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        registry = RunRegistry(Path(folder), memory_budget=float("inf"))
        cold = seconds_to_first_point(registry, config)
        worker = statistics.median(seconds_to_first_point(registry, config) for _ in range(STARTS))
    baseline = statistics.median(in_process_seconds(config) for _ in range(STARTS))
    result = {"first_start_s": round(cold, 3), "start_to_first_point_s": round(worker, 3),
              "in_process_s": round(baseline, 3), "ratio": round(worker / baseline, 2)}
    print(f"Start to the first loss point: {worker:.2f} s in a worker (median of {STARTS}), {baseline:.2f} s in "
          f"this process ({result['ratio']:.2f}x); the process's first start {cold:.2f} s (the forkserver imports "
          "torch)")
    if as_json:
        print(json.dumps(result))
