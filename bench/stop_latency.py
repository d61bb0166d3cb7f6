"""How long Stop takes against how long a step takes (the goal: about a second at any allowed size).

Each case starts a real run (the registry and thread the pages use), waits until its third step is well under
way, presses Stop and times until the run has stopped training (its status) and until its files are saved.
The baseline is the length of a whole step, measured in the same run: before stops reached into a step, Stop
waited for the rest of it.
`python -m playground bench --stop [--largest]`; the largest allowed size needs about 14 GB and 5 minutes.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from playground.core.config import TrainConfig
from playground.runs.protocol import RunPlan
from playground.runs.registry import RunRegistry

LARGEST = TrainConfig(hidden_dim=1024, num_layers=4, batch_size=1024, min_len=50, max_len=50, emb_dim=512)
CASES = {"default": TrainConfig(), "large": LARGEST.replace(batch_size=128, min_len=30, max_len=30)}
INTO_THE_STEP = 0.4  # Stop is pressed this far into the step


def stop_latency(config: TrainConfig, runs_dir: Path) -> dict[str, float]:
    """Seconds of one whole step, and from Stop to the run's end when pressed `INTO_THE_STEP` into the next."""
    config = config.replace(steps=1_000_000, eval_every=1_000_000, val_size=16, device="cpu")
    run = RunRegistry(runs_dir, memory_budget=float("inf")).launch("stop", RunPlan.train(config))
    while run.step < 1:
        time.sleep(0.01)
    first = time.perf_counter()
    while run.step < 2:
        time.sleep(0.01)
    step_seconds = time.perf_counter() - first
    time.sleep(INTO_THE_STEP * step_seconds)
    pressed = time.perf_counter()
    run.stop()
    while run.active:
        time.sleep(0.005)
    stopped = time.perf_counter() - pressed
    run.join()
    return {"step_s": round(step_seconds, 3), "stop_s": round(stopped, 3),
            "saved_s": round(time.perf_counter() - pressed, 3), "steps_done": run.step}


def bench_stop(largest: bool, as_json: bool) -> None:
    cases = CASES | ({"largest, gamma 0.5": LARGEST, "largest, gamma 1": LARGEST.replace(teacher_forcing_ratio=1.0)}
                     if largest else {})
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, config in cases.items():
            figures = results[name] = stop_latency(config, Path(folder))
            print(f"{name}: a step {figures['step_s']:.2f} s, Stop {figures['stop_s']:.2f} s "
                  f"({figures['stop_s'] / figures['step_s']:.2f} of a step), saved after {figures['saved_s']:.2f} s",
                  flush=True)
    if as_json:
        print(json.dumps(results))
