"""Figures of a comparison: one colour per arm (`common.arm_colours`, the same on every page); with several seeds a
mean and a band."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from playground.experiments.comparison import CompareSnapshot
from playground.experiments.statistics import Value, by_step, token_gap
from playground.plots.common import arm_colours, empty_state, has_points, rgba, tidy
from playground.plots.length_figures import length_figure
from playground.reports.comparison_table import GAP, LENGTHS
from playground.training.metrics import Metric

MAX_POINTS = 2000
LOSS_RANGE = (0.0, 3.5)  # an empty loss chart's y axis: from 0 to a little above ln|V| of the default tasks


def metric(name: str) -> Value:
    return lambda row: row.get(name)


def series(rows_by_seed: list[list[dict[str, float]]], value: Value) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, mean over seeds and the seeds' spread (std) at the steps every seed has logged."""
    frame = by_step(rows_by_seed, value)
    if len(frame) > MAX_POINTS:
        frame = frame.iloc[[*range(0, len(frame), len(frame) // MAX_POINTS + 1), len(frame) - 1]]
    values = frame.to_numpy(dtype=float)  # (steps, seeds): numpy's reductions, cheaper per live tick than pandas'
    return frame.index.to_numpy(dtype=float), values.mean(1), values.std(1)


def curve_figure(snapshot: CompareSnapshot, value: Value, title: str, y_title: str, percent: bool = False,
                 height: int = 340, evaluated: bool = True, empty_range: tuple[float, float] = (0.0, 1.0),
                 ) -> go.Figure:
    """One metric of every arm; before its first point, real axes and when it comes (`evaluated`: at evaluations)."""
    figure = go.Figure()
    colours = arm_colours(snapshot.labels)
    for arm, label in enumerate(snapshot.labels):
        steps, mean, spread = series(snapshot.arm_rows(arm), value)
        if snapshot.seeds > 1 and len(steps):
            band = np.concatenate([mean + spread, (mean - spread)[::-1]])
            figure.add_trace(go.Scatter(x=np.concatenate([steps, steps[::-1]]), y=band, fill="toself",
                                        fillcolor=rgba(colours[label], 0.15), line={"width": 0}, hoverinfo="skip",
                                        showlegend=False, legendgroup=label))
        figure.add_trace(go.Scatter(x=steps, y=mean, mode="lines", name=label, legendgroup=label,
                                    line={"color": colours[label], "width": 2}))
    band_note = f" (mean ± std over {snapshot.seeds} seeds)" if snapshot.seeds > 1 else ""
    figure.update_layout(title=title + band_note, height=height, margin={"l": 60, "r": 10},
                         legend={"title": "arm"})
    figure.update_xaxes(title="training step", rangemode="nonnegative")
    figure.update_yaxes(title=y_title, tickformat=".1~%" if percent else None)
    tidy(figure)
    if not has_points(figure):
        first = snapshot.config.base.eval_every if evaluated else 1
        empty_state(figure, f"Each ratio's curve appears at step {first:,}" + (" (the first evaluation)." if evaluated
                                                                              else "."),
                    (0, snapshot.total_steps), empty_range)
    return figure


def arm_length_figure(snapshot: CompareSnapshot, height: int = 340) -> go.Figure:
    """Free-running exact match by length at the latest evaluation, every arm: where errors compound, and how far
    beyond the training lengths each arm carries the task."""
    seeds = snapshot.seeds
    return length_figure({label: snapshot.exact_by_length[arm * seeds:(arm + 1) * seeds]
                          for arm, label in enumerate(snapshot.labels)}, snapshot.config.base, height)


@dataclass(frozen=True)
class ArmCurve:
    """One metric of every arm over training, as the Compare page and the lessons draw it."""

    value: Value
    title: str
    y_title: str
    percent: bool = False
    evaluated: bool = True  # logged at evaluations; else every few steps
    empty_range: tuple[float, float] = (0.0, 1.0)


ARM_CURVES: dict[str, ArmCurve] = {
    Metric.TRAIN_LOSS: ArmCurve(metric(Metric.TRAIN_LOSS), "Training loss (each model's own ratio)",
                                "cross-entropy (nats/token)", evaluated=False, empty_range=LOSS_RANGE),
    Metric.FR_EXACT: ArmCurve(metric(Metric.FR_EXACT), "Free-running exact match (validation)",
                              "sequences fully right", percent=True),
    Metric.TF_LOSS: ArmCurve(metric(Metric.TF_LOSS), "Validation loss, teacher-forced (γ = 1)",
                             "cross-entropy (nats/token)", empty_range=LOSS_RANGE),
    Metric.FR_LOSS: ArmCurve(metric(Metric.FR_LOSS), "Validation loss, free-running (greedy)",
                             "cross-entropy (nats/token)", empty_range=LOSS_RANGE),
    GAP: ArmCurve(token_gap, "Exposure-bias gap: teacher-forced minus free-running tokens", "accuracy gap",
                  percent=True),
    Metric.TF_TOKEN_ACC: ArmCurve(metric(Metric.TF_TOKEN_ACC), "Teacher-forced token accuracy (validation)",
                                  "tokens right", percent=True),
    Metric.FR_TOKEN_ACC: ArmCurve(metric(Metric.FR_TOKEN_ACC), "Free-running token accuracy (validation)",
                                  "tokens right", percent=True),
    Metric.GAMMA: ArmCurve(metric(Metric.GAMMA), "Teacher-forcing ratio γ during training", "γ", evaluated=False),
}


def arm_figure(snapshot: CompareSnapshot, name: str) -> go.Figure:
    """The chart `name` (a key of ARM_CURVES, or LENGTHS) of every arm."""
    if name == LENGTHS:
        return arm_length_figure(snapshot)
    curve = ARM_CURVES[name]
    return curve_figure(snapshot, curve.value, curve.title, curve.y_title, curve.percent, evaluated=curve.evaluated,
                        empty_range=curve.empty_range)
