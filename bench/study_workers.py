"""Study speed-up from Ray workers: the same small study on a local Ray with 1 worker, then 2, as a ratio.

Each figure is the wall time from submitting the cells to the last report, Ray's own start excluded (worker
processes, which import torch, are started within it for both). Run by `python -m playground bench --study`.
"""

from __future__ import annotations

import json
import time

import ray

from playground.analysis.study import StudyConfig
from playground.core.config import TrainConfig
from playground.runs.ray_study import StudyEngine, connect

STUDY = StudyConfig.build(TrainConfig(steps=300, eval_every=100, val_size=128, batch_size=32), ["reverse", "sort"],
                          [8], [3], [32, 48], [0.0, 0.5, 1.0], [], 2)  # 4 cells of 6 models
QUICK = StudyConfig.build(STUDY.base.replace(steps=20, eval_every=10), ["reverse"], [8], [3], [16, 24],
                          [0.0, 1.0], [], 2)


def timed(config: StudyConfig, workers: int) -> float:
    connect(num_cpus=workers)
    engine = StudyEngine(config)
    started = time.perf_counter()
    while not engine.finished:
        engine.advance()
    seconds = time.perf_counter() - started
    ray.shutdown()
    return seconds


def bench_study(quick: bool, as_json: bool) -> None:
    config = QUICK if quick else STUDY
    one, two = timed(config, 1), timed(config, 2)
    cells = len(config.grid())
    print(f"study of {cells} cells x {config.models_per_cell} models, {config.base.steps} steps: "
          f"1 worker {one:.1f} s, 2 workers {two:.1f} s, speed-up {one / two:.2f}x")
    if as_json:
        print(json.dumps({"cells": cells, "one_worker_s": round(one, 2), "two_workers_s": round(two, 2),
                          "speedup": round(one / two, 3)}))
