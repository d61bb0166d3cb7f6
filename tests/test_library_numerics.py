"""Metrics computed with pandas keep the numbers the hand-written loops gave: a comparison's recorded rows
(tests/fixtures/compare_metrics.json, 3 arms x 2 seeds, and a ragged copy where every second seed stopped early)
and what the old code computed from them (EMA, seeds aligned by step and by length, steps to a level, the CSV
and the terminal table)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from playground.core.config import TrainConfig
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.experiments.statistics import gap_over_time, steps_to_reach
from playground.plots.comparison_figures import arm_length_figure, metric, series
from playground.plots.curves import column, ema
from playground.reports.comparison_table import format_table, summary_csv, summary_rows
from playground.training.metrics import Metric

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "compare_metrics.json").read_text())
ROWS = {"aligned": RECORDED["rows"], "aligned_ragged": RECORDED["ragged_rows"]}
VALUES = {"series_fr_exact": metric(Metric.FR_EXACT), "series_gap": lambda row: (
    row[Metric.TF_TOKEN_ACC] - row[Metric.FR_TOKEN_ACC] if Metric.TF_TOKEN_ACC in row else None)}


def snapshot() -> CompareSnapshot:
    values = RECORDED["config"]
    config = CompareConfig.build(TrainConfig.from_dict(values["base"]), values["ratios"], values["schedules"],
                                 values["seeds"])
    return CompareSnapshot(RECORDED["labels"], RECORDED["seeds"], RECORDED["rows"],
                           [{int(n): v for n, v in d.items()} for d in RECORDED["exact_by_length"]],
                           RECORDED["step"], RECORDED["total_steps"], RECORDED["seconds"], config)


@pytest.mark.parametrize("smoothing", ["0.0", "0.6", "0.9", "0.99"])
def test_ema_keeps_the_recorded_numbers(smoothing: str) -> None:
    _, losses = column(RECORDED["rows"][0], Metric.TRAIN_LOSS)
    assert ema(losses, float(smoothing)) == pytest.approx(RECORDED["ema_train_loss"][smoothing], rel=1e-12)


@pytest.mark.parametrize("kind", list(ROWS))
def test_seeds_aligned_by_step_keep_the_recorded_numbers(kind: str) -> None:
    expected = RECORDED[kind]
    arms = len(RECORDED["labels"])
    by_arm = [ROWS[kind][arm * 2:(arm + 1) * 2] for arm in range(arms)]
    for name, value in VALUES.items():
        for arm, rows_by_seed in enumerate(by_arm):
            steps, mean, spread = series(rows_by_seed, value)
            recorded_steps, recorded_mean, recorded_spread = expected[name][arm]
            assert steps.tolist() == recorded_steps
            assert mean == pytest.approx(np.array(recorded_mean), rel=1e-12, abs=1e-15)
            assert spread == pytest.approx(np.array(recorded_spread), rel=1e-9, abs=1e-15)
    for rows_by_seed, recorded in zip(by_arm, expected["gap_over_time"], strict=True):
        assert np.array(gap_over_time(rows_by_seed)) == pytest.approx(np.array(recorded), rel=1e-12, abs=1e-15)
    assert [[steps_to_reach(rows, level) for level in RECORDED["levels"]] for rows in by_arm] == \
        expected["steps_to_reach"]
    if kind == "aligned_ragged":  # the second seeds stopped at step 80: only the steps both seeds logged count
        assert expected["gap_over_time"][0][-1][0] < RECORDED["step"]


def test_lengths_aligned_over_seeds_and_the_csv_keep_the_recorded_numbers() -> None:
    shown = snapshot()
    lines = [trace for trace in arm_length_figure(shown).data if trace.showlegend is not False]  # not the bands
    assert len(lines) == len(RECORDED["length_means"])
    for trace, (lengths, means) in zip(lines, RECORDED["length_means"], strict=True):
        assert list(trace.x) == lengths and np.asarray(trace.y) == pytest.approx(np.array(means), rel=1e-12)
    table = summary_rows(shown)
    recorded = pd.read_csv(io.StringIO(RECORDED["summary_csv"])).rename(columns={"ratio": "label"})
    now = pd.read_csv(io.StringIO(summary_csv(table)))  # the model family added columns; the recorded ones keep
    pd.testing.assert_frame_equal(now[recorded.columns], recorded)  # their numbers (the label was once "ratio")
    assert summary_csv([]) == ""
    printed = [line.split() for line in format_table(table).splitlines()]
    recorded_lines = RECORDED["terminal_table"].replace("ratio", "arm", 1).splitlines()  # the first column's new name
    assert printed == [line.split() for line in recorded_lines]  # cells, not padding
