"""The slide a teacher used to draw by hand: the final gap and the final free-running exact match against γ, one
line per model, with each point's 95% interval over seeds as a band. Constant-γ arms only (a schedule has no one γ).

It reads the rows the CLI prints (`compare --json` rows, a `study --json` condition's arms), so the chart and its
headless twin hold the same numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground.core.config import VARIANT_SETTINGS
from playground.plots.common import arm_colours, empty_state, rgba, tidy
from playground.reports.comparison_table import GAP
from playground.training.metrics import Metric

Point = tuple[float, float, float, float]  # γ, mean, interval low, interval high (NaN: one seed)
PANELS = ((GAP, "final gap (teacher-forced − free-running tokens)"), (Metric.FR_EXACT, "final free-running exact"))


def _model(row: Mapping[str, Any], varied: Sequence[str]) -> str:
    return ", ".join(f"{name} {row[name]}" for name in varied) or "the model"


def _lines(arms: Sequence[Mapping[str, Any]], value: Any) -> dict[str, dict[str, list[Point]]]:
    """model -> measure -> points sorted by γ, from rows whose schedule is constant; `value(row, measure)` reads
    (mean, low, high)."""
    constant = [row for row in arms if row.get("schedule", "constant") == "constant"]
    varied = [name for name in VARIANT_SETTINGS if len({row.get(name) for row in constant}) > 1]
    lines: dict[str, dict[str, list[Point]]] = {}
    for row in sorted(constant, key=lambda row: row["ratio"]):
        by_measure = lines.setdefault(_model(row, varied), {measure: [] for measure, _ in PANELS})
        for measure, _ in PANELS:
            by_measure[measure].append((row["ratio"], *value(row, measure)))
    return lines


def compare_lines(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[Point]]]:
    """From `summary_rows` (a compare --json row): the mean and its `_ci_low`, `_ci_high` fields."""
    names = {GAP: GAP, Metric.FR_EXACT: "fr_exact"}
    return _lines(rows, lambda row, measure: (row[measure], row[f"{names[measure]}_ci_low"],
                                              row[f"{names[measure]}_ci_high"]))


def study_lines(arms: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[Point]]]:
    """From one study condition's arms (study --json): each measure's mean and ci."""
    return _lines(arms, lambda row, measure: (row[measure]["mean"], *row[measure]["ci"]))


def ratio_figure(lines: dict[str, dict[str, list[Point]]], seeds: int) -> go.Figure:
    figure = make_subplots(rows=1, cols=2, subplot_titles=[title for _, title in PANELS], horizontal_spacing=0.12)
    colours = arm_colours(list(lines))
    for column, (measure, _) in enumerate(PANELS, start=1):
        for model, by_measure in lines.items():
            points = np.array(by_measure[measure], dtype=float).reshape(-1, 4)
            ratios, means, lows, highs = points.T
            colour = colours[model]
            if seeds > 1 and np.isfinite(lows).all() and len(ratios) > 1:
                figure.add_trace(go.Scatter(x=np.concatenate([ratios, ratios[::-1]]),
                                            y=np.concatenate([highs, lows[::-1]]), fill="toself",
                                            fillcolor=rgba(colour, 0.15), line={"width": 0}, hoverinfo="skip",
                                            showlegend=False, legendgroup=model), row=1, col=column)
            figure.add_trace(go.Scatter(x=ratios, y=means, mode="lines+markers", name=model, legendgroup=model,
                                        showlegend=column == 1, line={"color": colour, "width": 2},
                                        hovertemplate="γ = %{x}: %{y:.1%}<extra>" + model + "</extra>"),
                             row=1, col=column)
        figure.update_xaxes(title="teacher-forcing ratio γ", range=[-0.05, 1.05], row=1, col=column)
        figure.update_yaxes(tickformat=".0%", row=1, col=column)
    band = f" (mean over {seeds} seeds, band: 95% interval)" if seeds > 1 else ""
    figure.update_layout(title="Final gap and exact match against γ" + band, height=380, legend={"title": "model"})
    tidy(figure)
    if not any(points for by_measure in lines.values() for points in by_measure.values()):
        empty_state(figure, "Needs arms with a constant γ, once they have been evaluated.", (0, 1), (0, 1))
    return figure


def has_ratios(lines: dict[str, dict[str, list[Point]]]) -> bool:
    """Worth drawing: some model has two γ or more."""
    return any(len(by_measure[GAP]) > 1 for by_measure in lines.values())
