"""Plotly figures for training curves: pure functions from metrics rows to go.Figure.

Curves are numpy arrays (plotly sends typed arrays) and downsampled to a few
thousand points, since the whole figure is re-sent on every live refresh.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from playground.training.rules import Metric

MAX_POINTS = 600
TRAIN_COLOR, TF_COLOR, FR_COLOR, GAMMA_COLOR = "#636efa", "#00a884", "#ef553b", "#ab63fa"


def ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average; smoothing 0 returns the values."""
    if smoothing <= 0 or values.size == 0:
        return values
    smoothed = np.empty_like(values, dtype=float)
    last, weight = 0.0, 0.0
    for i, value in enumerate(values):
        last = smoothing * last + (1 - smoothing) * value
        weight = smoothing * weight + (1 - smoothing)
        smoothed[i] = last / weight
    return smoothed


def column(rows: list[dict[str, float]], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of the rows that have `name` (evaluation columns are sparse)."""
    pairs = [(row["step"], row[name]) for row in rows if name in row]
    if not pairs:
        return np.empty(0), np.empty(0)
    steps, values = np.array(pairs, dtype=float).T
    return steps, values


def downsample(steps: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    if steps.size <= max_points:
        return steps, values
    keep = np.linspace(0, steps.size - 1, max_points).round().astype(int)
    return steps[keep], values[keep]


def _line(rows: list[dict[str, float]], name: str, label: str, color: str, smoothing: float = 0.0,
          percent: bool = False, dash: str | None = None) -> go.Scatter:
    steps, values = column(rows, name)
    values = ema(values, smoothing) * (100 if percent else 1)
    steps, values = downsample(steps, values)
    unit = "%" if percent else ""
    return go.Scatter(x=steps, y=values, name=label, mode="lines+markers" if steps.size < 30 else "lines",
                      line={"color": color, "dash": dash},
                      hovertemplate=f"{label}<br>step %{{x:.0f}}<br>%{{y:.4g}}{unit}<extra></extra>")


def _layout(figure: go.Figure, title: str, y_title: str, changes: list[tuple[int, str]], height: int) -> go.Figure:
    for step, text in changes:
        figure.add_vline(x=step, line_dash="dot", line_color="gray", annotation_text=text,
                         annotation_position="top left", annotation_font_size=10)
    figure.update_layout(title=title, height=height, margin={"l": 60, "r": 20, "t": 50, "b": 45},
                         legend={"orientation": "h", "y": -0.25}, hovermode="x unified")
    figure.update_xaxes(title_text="training step")
    figure.update_yaxes(title_text=y_title)
    return figure


def loss_figure(rows: list[dict[str, float]], smoothing: float = 0.6, log_y: bool = False,
                changes: list[tuple[int, str]] = (), note: str = "") -> go.Figure:
    """Training loss (smoothed, raw faint) and validation loss teacher-forced and free-running."""
    raw = _line(rows, Metric.TRAIN_LOSS, "training loss (raw)", TRAIN_COLOR)
    raw.update(opacity=0.25, showlegend=False, hoverinfo="skip", hovertemplate=None)
    traces = [raw, _line(rows, Metric.TRAIN_LOSS, "training loss", TRAIN_COLOR, smoothing),
              _line(rows, Metric.TF_LOSS, "validation, teacher-forced", TF_COLOR),
              _line(rows, Metric.FR_LOSS, "validation, free-running", FR_COLOR)]
    figure = _layout(go.Figure(traces), "Loss", "cross-entropy (nats per token)", list(changes), 360)
    if log_y:
        figure.update_yaxes(type="log")
    if note:
        figure.add_annotation(text=note, xref="paper", yref="paper", x=0.5, y=0.95, showarrow=False,
                              font={"color": "#d62728", "size": 14}, bgcolor="rgba(255,255,255,0.8)")
    return figure


def accuracy_figure(rows: list[dict[str, float]], changes: list[tuple[int, str]] = ()) -> go.Figure:
    """Token accuracy both ways, and exact match (equal both ways under greedy decoding)."""
    traces = [_line(rows, Metric.TF_TOKEN_ACC, "token, teacher-forced", TF_COLOR, percent=True),
              _line(rows, Metric.FR_TOKEN_ACC, "token, free-running", FR_COLOR, percent=True),
              _line(rows, Metric.FR_EXACT, "whole sequence (exact match)", "#444", percent=True, dash="dash")]
    figure = _layout(go.Figure(traces), "Validation accuracy", "accuracy (%)", list(changes), 360)
    figure.update_yaxes(range=[0, 101])
    return figure


def gamma_figure(rows: list[dict[str, float]], changes: list[tuple[int, str]] = ()) -> go.Figure:
    figure = _layout(go.Figure([_line(rows, Metric.GAMMA, "gamma", GAMMA_COLOR)]),
                     "Teacher-forcing ratio gamma", "P(true previous token)", list(changes), 260)
    figure.update_yaxes(range=[-0.03, 1.03])
    figure.update_layout(showlegend=False)
    return figure
