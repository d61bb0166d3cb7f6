"""Training: the one-model trainer and the K-model engine, the rules they share (coins, finiteness, scoring,
metric names), and run folders on disk (configs, metrics, checkpoints). Knows nothing of threads or pages."""

from playground.training.cost import WARN_SECONDS_PER_STEP, estimate, gigabytes
from playground.training.metrics import EVALUATED, Metric
from playground.training.run_folder import FINAL_STATUSES, RunKind, RunStatus, metrics_csv
from playground.training.trainer import build_task, warm_imports

__all__ = [
    "EVALUATED",
    "FINAL_STATUSES",
    "WARN_SECONDS_PER_STEP",
    "Metric",
    "RunKind",
    "RunStatus",
    "build_task",
    "estimate",
    "gigabytes",
    "metrics_csv",
    "warm_imports",
]
