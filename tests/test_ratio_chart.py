"""The chart of the final gap and exact match against γ: it draws what compare and study rows hold, constant-γ arms
only, one line per model, a band only where seeds give an interval."""

from __future__ import annotations

import numpy as np

from playground.core.config import TrainConfig
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.plots import compare_lines, has_ratios, ratio_figure, study_lines
from playground.reports.comparison_table import GAP, summary_rows
from playground.training.metrics import Metric


def comparison(ratios: tuple[float, ...], seeds: int) -> CompareSnapshot:
    """A finished comparison whose arm with ratio r ends with a gap of r / 5 and exact match 0.9 - r / 2 (+ a
    little per seed), and a decaying schedule beside them."""
    config = CompareConfig.build(TrainConfig(steps=100, eval_every=100), ratios, ("linear",), seeds=seeds)
    rows = []
    for arm in config.arms():
        ratio = arm.settings()["ratio"]
        for seed in range(seeds):
            exact = 0.9 - ratio / 2 + 0.01 * seed
            rows.append([{"step": 100, Metric.TRAIN_LOSS: 0.3, Metric.FR_EXACT: exact, Metric.TF_TOKEN_ACC: 0.95,
                          Metric.FR_TOKEN_ACC: 0.95 - ratio / 5 - 0.01 * seed, Metric.TF_LOSS: 0.1,
                          Metric.FR_LOSS: 0.2}])
    return CompareSnapshot([arm.label for arm in config.arms()], seeds, rows, [{}] * len(rows), 100, 100, 1.0, config)


def test_the_gamma_chart_draws_the_compare_rows_per_constant_arm_with_seed_bands() -> None:
    lines = compare_lines(summary_rows(comparison((0.0, 0.5, 1.0), 3)))
    assert list(lines) == ["the model"] and has_ratios(lines)  # the schedule has no one γ: left out
    gaps = np.array(lines["the model"][GAP])
    assert gaps[:, 0].tolist() == [0.0, 0.5, 1.0]
    assert np.allclose(gaps[:, 1], [0.01, 0.11, 0.21])  # r / 5 + the seeds' mean 0.01
    exact = np.array(lines["the model"][Metric.FR_EXACT])
    assert (exact[:, 2] >= 0.0).all() and (exact[:, 3] <= 1.0).all() and (exact[:, 2] <= exact[:, 1]).all()
    figure = ratio_figure(lines, 3)
    bands = [trace for trace in figure.data if trace.fill == "toself"]
    assert len(bands) == 2 and len(figure.data) == 4  # a band and a line per panel
    single = ratio_figure(compare_lines(summary_rows(comparison((0.0, 1.0), 1))), 1)
    assert not [trace for trace in single.data if trace.fill == "toself"]  # one seed: no interval to draw
    assert not has_ratios(compare_lines(summary_rows(comparison((1.0,), 1))))


def test_a_study_condition_gives_the_same_lines() -> None:
    arms = [{"arm": f"γ = {ratio:g}", "ratio": ratio, "schedule": "constant", "cell": "lstm", "attention": "none",
             "reverse_source": "off", GAP: {"mean": ratio / 5, "ci": [0.0, 0.5]},
             Metric.FR_EXACT: {"mean": 0.5, "ci": [0.4, 0.6]}} for ratio in (0.0, 1.0)]
    lines = study_lines(arms)
    assert lines["the model"][GAP] == [(0.0, 0.0, 0.0, 0.5), (1.0, 0.2, 0.0, 0.5)]
