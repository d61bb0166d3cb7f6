"""Plotly figures for training curves: pure functions from metrics rows to go.Figure.

Curves are numpy arrays (plotly sends typed arrays) and downsampled to a few
thousand points, since the whole figure is re-sent on every live refresh.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from playground.plots.common import SCORING_DASH, empty_state, has_points, tidy
from playground.training.metrics import Metric

MAX_POINTS = 600
MARKER_GAP = 0.05  # live-change markers closer than this share of the step axis share one label
Changes = list[tuple[int, str]]
TRAIN_COLOR, VALIDATION_COLOR, EXACT_COLOR, GAMMA_COLOR = "#636efa", "#444444", "#8c564b", "#ab63fa"
# colour says the quantity; how the model is scored is the line style (common.SCORING_DASH), as on every page


def ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average (pandas' adjusted `ewm` is the same average); smoothing 0
    returns the values."""
    if smoothing <= 0 or values.size == 0:
        return values
    return pd.Series(values, dtype=float).ewm(alpha=1 - smoothing, adjust=True).mean().to_numpy()


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


def group_changes(changes: Changes, span: float, gap: float = MARKER_GAP) -> list[tuple[int, list[str]]]:
    """Changes close together (within `gap` of the axis `span`) as one group at the first one's step."""
    groups: list[tuple[int, list[str]]] = []
    for step, text in sorted(changes):
        if groups and step - groups[-1][0] <= gap * span:
            groups[-1][1].append(f"step {step}: {text}")
        else:
            groups.append((step, [f"step {step}: {text}"]))
    return groups


def _marker_label(texts: list[str]) -> str:
    if len(texts) == 1:
        return texts[0].split(": ", 1)[1]
    return f"{len(texts)} changes (hover)"


def _layout(figure: go.Figure, title: str, y_title: str, changes: Changes, height: int,
            total_steps: int | None = None) -> go.Figure:
    span = max(total_steps or 0, max((step for step, _ in changes), default=0), 1)
    for step, texts in group_changes(changes, span):
        figure.add_vline(x=step, line_dash="dot", line_color="gray")
        figure.add_annotation(x=step, y=1, xref="x", yref="paper", yanchor="bottom", xanchor="left",
                              text=_marker_label(texts), hovertext="<br>".join(texts), showarrow=False,
                              font={"size": 10, "color": "#555"})
    figure.update_layout(title=title, height=height, margin={"l": 60, "r": 20, "t": 50, "b": 45},
                         hovermode="x unified")
    figure.update_xaxes(title_text="training step", rangemode="nonnegative")
    figure.update_yaxes(title_text=y_title)
    return tidy(figure)


def _waiting(figure: go.Figure, what: str, when: str, total_steps: int | None,
             y_range: tuple[float, float] | None) -> go.Figure:
    """The empty state of a training chart: real axes and a note of what comes, and when."""
    if has_points(figure):
        return figure
    return empty_state(figure, f"{what}<br>{when}", (0, max(total_steps or 100, 1)), y_range)


def loss_figure(rows: list[dict[str, float]], smoothing: float = 0.6, log_y: bool = False,
                changes: Changes = (), note: str = "", total_steps: int | None = None,
                chance_loss: float | None = None) -> go.Figure:
    """Training loss (smoothed, raw faint) and validation loss teacher-forced and free-running.

    `chance_loss` (ln |V|) draws the loss of a uniform guess, so the first point has a reference.
    """
    raw = _line(rows, Metric.TRAIN_LOSS, "training loss (raw)", TRAIN_COLOR)
    raw.update(opacity=0.25, showlegend=False, hoverinfo="skip", hovertemplate=None)
    traces = [raw, _line(rows, Metric.TRAIN_LOSS, "training loss", TRAIN_COLOR, smoothing),
              _line(rows, Metric.TF_LOSS, "validation, teacher-forced", VALIDATION_COLOR,
                    dash=SCORING_DASH["teacher-forced"]),
              _line(rows, Metric.FR_LOSS, "validation, free-running", VALIDATION_COLOR,
                    dash=SCORING_DASH["free-running"])]
    figure = _layout(go.Figure(traces), "Loss", "cross-entropy (nats per token)", list(changes), 360, total_steps)
    if chance_loss is not None:
        figure.add_hline(y=chance_loss, line={"color": "#999", "dash": "dash", "width": 1},
                         annotation_text=f"chance: ln|V| = {chance_loss:.2f}", annotation_position="bottom right",
                         annotation_font={"size": 10, "color": "#777"})
    _waiting(figure, "Training loss, every few steps.", "The first point appears after the first steps.",
             total_steps, (0, round((chance_loss or 3.0) * 1.2, 1)))
    if log_y:
        figure.update_yaxes(type="log")
    if note:
        figure.add_annotation(text=note, xref="paper", yref="paper", x=0.5, y=0.95, showarrow=False,
                              font={"color": "#d62728", "size": 14}, bgcolor="rgba(255,255,255,0.8)")
    return figure


def accuracy_figure(rows: list[dict[str, float]], changes: Changes = (), total_steps: int | None = None,
                    first_evaluation: int | None = None, chance_accuracy: float | None = None) -> go.Figure:
    """Token accuracy both ways, and exact match (equal both ways under greedy decoding)."""
    traces = [_line(rows, Metric.TF_TOKEN_ACC, "token, teacher-forced", VALIDATION_COLOR, percent=True,
                    dash=SCORING_DASH["teacher-forced"]),
              _line(rows, Metric.FR_TOKEN_ACC, "token, free-running", VALIDATION_COLOR, percent=True,
                    dash=SCORING_DASH["free-running"]),
              _line(rows, Metric.FR_EXACT, "whole sequence (exact match)", EXACT_COLOR, percent=True)]
    figure = _layout(go.Figure(traces), "Validation accuracy", "accuracy (%)", list(changes), 360, total_steps)
    figure.update_yaxes(range=[0, 101])
    if chance_accuracy is not None:
        figure.add_hline(y=chance_accuracy * 100, line={"color": "#999", "dash": "dash", "width": 1},
                         annotation_text=f"chance: 1/|V| = {chance_accuracy:.1%}",
                         annotation_position="top right", annotation_font={"size": 10, "color": "#777"})
    when = (f"The untrained model (step 0) is scored after the first step, then every {first_evaluation:,} steps."
            if first_evaluation else "At the first evaluation.")
    return _waiting(figure, "Token and whole-sequence accuracy on validation examples.", when, total_steps, (0, 101))


def gamma_figure(rows: list[dict[str, float]], changes: Changes = (), total_steps: int | None = None) -> go.Figure:
    figure = _layout(go.Figure([_line(rows, Metric.GAMMA, "gamma", GAMMA_COLOR)]),
                     "Teacher-forcing ratio γ", "P(true previous token)", list(changes), 360, total_steps)
    figure.update_yaxes(range=[-0.03, 1.03])
    figure.update_layout(showlegend=False)
    return _waiting(figure, "γ at each step.", "It appears with the first steps.", total_steps, None)
