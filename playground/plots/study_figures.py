"""The study's figure: free-running exact match per arm in every condition, with 95% confidence intervals over seeds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go

from playground.plots.common import arm_colours, tidy
from playground.training.metrics import Metric


def study_figure(summaries: list[dict[str, Any]]) -> go.Figure:
    """One marker per (condition, arm), arms side by side within a condition, error bars = the 95% CI (percent)."""
    reported = [summary for summary in summaries if summary["arms"]]
    labels = [row["arm"] for row in reported[0]["arms"]] if reported else []
    figure = go.Figure()
    colours = arm_colours(labels)
    for arm, label in enumerate(labels):
        values = [summary["arms"][arm][Metric.FR_EXACT] for summary in reported]
        means = np.array([value["mean"] * 100 for value in values])
        lows = np.array([value["ci"][0] * 100 if math.isfinite(value["ci"][0]) else np.nan for value in values])
        highs = np.array([value["ci"][1] * 100 if math.isfinite(value["ci"][1]) else np.nan for value in values])
        figure.add_trace(go.Scatter(
            x=[summary["label"] for summary in reported], y=means, mode="markers", name=label,
            marker={"color": colours[label], "size": 10},
            error_y={"type": "data", "symmetric": False, "array": highs - means, "arrayminus": means - lows},
            offsetgroup=str(arm), hovertemplate="%{x}<br>" + label + ": %{y:.1f}%<extra></extra>"))
    figure.update_layout(title="Free-running exact match per arm (mean over seeds, 95% CI)", scattermode="group",
                         xaxis_title="condition (task, setting, hidden size)",
                         yaxis_title="validation sequences fully right (%)",
                         legend_title="teacher forcing", height=460)
    return tidy(figure)
