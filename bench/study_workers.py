"""Study speed-up from Ray nodes: the same small study on a cluster of 1 node (1 CPU), then of 2 nodes, as a ratio.

The cluster is started on this machine as the README's steps start one on several (`ray start --head`, then
`ray start --address`, with token authentication; bench/ray_cluster.py), and the study runs as the app runs it:
`StudyEngine`, its driver process, `--address` of the head. Each figure is the wall time from the driver's
connection to the last report (starting the driver and Ray's nodes excluded; their workers start within it for
both). Run by `python -m playground bench --study`.
"""

from __future__ import annotations

import json
import os
import time

from bench.ray_cluster import LocalCluster
from playground.core.config import TrainConfig
from playground.experiments.study_grid import StudyConfig
from playground.runs.study_engine import StudyEngine

STUDY = StudyConfig.build(TrainConfig(steps=300, eval_every=100, val_size=128, batch_size=32), ["reverse", "sort"],
                          [8], [3], [32, 48], [0.0, 0.5, 1.0], [], 2)  # 4 conditions of 6 models
QUICK = StudyConfig.build(STUDY.base.replace(steps=20, eval_every=10), ["reverse"], [8], [3], [16, 24],
                          [0.0, 1.0], [], 2)


def timed(config: StudyConfig, address: str) -> float:
    """Seconds from the driver's connection to the study's end."""
    engine = StudyEngine(config, address=address)
    connected = None
    try:
        while not engine.finished:
            engine.advance()
            if connected is None and engine.ran_on:
                connected = time.perf_counter()
    finally:
        engine.halt()
    if engine.conditions_done < len(engine.conditions) or connected is None:
        raise RuntimeError(f"the study did not finish: {engine.conditions_done} of {len(engine.conditions)} "
                           "conditions done")
    return time.perf_counter() - connected


def bench_study(quick: bool, as_json: bool) -> None:
    config = QUICK if quick else STUDY
    cluster = LocalCluster()
    os.environ.update(cluster.env)  # the token, for the study's driver
    try:
        address = cluster.start_head(num_cpus=1)
        one = timed(config, address)
        cluster.add_node(num_cpus=1)
        two = timed(config, address)
    finally:
        cluster.stop()
    conditions = len(config.grid())
    print(f"study of {conditions} conditions x {config.models_per_condition} models, {config.base.steps} steps: "
          f"1 node {one:.1f} s, 2 nodes {two:.1f} s, speed-up {one / two:.2f}x")
    if as_json:
        print(json.dumps({"conditions": conditions, "one_node_s": round(one, 2), "two_nodes_s": round(two, 2),
                          "speedup": round(one / two, 3)}))
