"""The statistics of comparisons and studies: aligning seeds by step, means with intervals, paired tests.

A leaf: pandas and scipy only, so the definitions, the reports and the course all compute one way."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from scipy import stats

from playground.experiments.comparison import TARGET_ACCURACY, CompareSnapshot
from playground.training.metrics import Metric, by_length


def mean_or_nan(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def evaluated(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    return [row for row in rows if Metric.FR_EXACT in row]


Value = Callable[[dict[str, float]], float | None]


def token_gap(row: dict[str, float]) -> float | None:
    """Teacher-forced minus free-running token accuracy, in an evaluated row (exact match cannot differ, see
    `summary_rows`)."""
    if Metric.TF_TOKEN_ACC not in row:
        return None
    return row[Metric.TF_TOKEN_ACC] - row[Metric.FR_TOKEN_ACC]


def shared_keys(values_by_seed: list[dict[Any, float]]) -> pd.DataFrame:
    """One column per seed, one row per key (a step, a target length) that every seed has a value for, sorted."""
    if not values_by_seed:
        return pd.DataFrame(dtype=float)
    return pd.concat([pd.Series(values, dtype=float) for values in values_by_seed], axis=1, join="inner",
                     ignore_index=True).sort_index()


def by_step(rows_by_seed: list[list[dict[str, float]]], value: Value) -> pd.DataFrame:
    """`value` of each seed's rows at the steps every seed has logged it: the one alignment of seeds by step."""
    return shared_keys([{row["step"]: v for row in rows if (v := value(row)) is not None} for rows in rows_by_seed])


def mean_exact_by_length(snapshot: CompareSnapshot, arm: int = 0) -> pd.Series:
    """Free-running exact match by target length at the latest evaluation, averaged over the arm's seeds (at the
    lengths every seed has), indexed by length."""
    return shared_keys(snapshot.exact_by_length[arm * snapshot.seeds:(arm + 1) * snapshot.seeds]).mean(axis=1)


def final_by_length(finals: list[dict[str, float]], prefix: str = "val_fr") -> dict[int, float]:
    """Exact match by size in final rows (teacher-forced with prefix val_tf), averaged over the seeds at the sizes
    every seed has; empty for runs older than the by-size figures."""
    return {int(size): float(value)
            for size, value in shared_keys([by_length(row, prefix) for row in finals]).mean(axis=1).items()}


def steps_to_reach(rows_by_seed: list[list[dict[str, float]]], level: float = TARGET_ACCURACY) -> int | None:
    """First evaluated step where the seeds' mean free-running exact match reaches `level`."""
    means = by_step(rows_by_seed, lambda row: row.get(Metric.FR_EXACT)).mean(axis=1)
    reached = means.index[means >= level]
    return int(reached[0]) if len(reached) else None


def gap_over_time(rows_by_seed: list[list[dict[str, float]]]) -> list[tuple[float, float]]:
    """(step, seed-mean gap) at every evaluation all seeds share: teacher-forced minus free-running tokens."""
    means = by_step(rows_by_seed, token_gap).mean(axis=1)
    return list(zip(means.index.tolist(), means.tolist(), strict=True))


def seed_spread(values: list[float]) -> float:
    return statistics.pstdev(values) if len(values) > 1 else 0.0


LEVEL = 0.95  # confidence of the intervals; a paired test's p below 1 - LEVEL is "more than seed noise"


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int


def mean_ci(values: list[float], level: float = LEVEL) -> Estimate:
    """Mean and t-based confidence interval over seeds (no interval from one seed)."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = statistics.fmean(values)
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf((1.0 + level) / 2.0, n - 1) * stats.sem(values))
    return Estimate(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class Paired:
    difference: Estimate  # mean of a - b over seeds, with its interval
    t: float
    p: float

    @property
    def within_noise(self) -> bool:
        return not self.p < 1.0 - LEVEL


def paired_test(a: list[float], b: list[float]) -> Paired:
    """Paired t-test of a - b over seeds. Identical differences on every seed give p = 0 (or 1 if all zero)."""
    differences = [x - y for x, y in zip(a, b, strict=True)]
    estimate = mean_ci(differences)
    n = len(differences)
    if n < 2:
        return Paired(estimate, math.nan, math.nan)
    if statistics.stdev(differences) == 0.0:  # scipy answers nan (and warns) where no spread is left to test
        return Paired(estimate, 0.0 if estimate.mean == 0 else math.copysign(math.inf, estimate.mean),
                      1.0 if estimate.mean == 0 else 0.0)
    result = stats.ttest_rel(a, b)
    return Paired(estimate, float(result.statistic), float(result.pvalue))


# --- tables and reading ---------------------------------------------------------------------------------------
