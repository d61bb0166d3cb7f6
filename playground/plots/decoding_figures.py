"""Figures of the Decode page: one step's top-k probabilities, and error rates by output position."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from playground.inspection.decoding import DecodeStep, PositionErrors
from playground.plots.common import arm_colour

CHOSEN, OTHER, TRUE = "#ff7f0e", "#1f77b4", "#2ca02c"


def top_k_figure(step: DecodeStep, target: str | None = None, height: int = 320) -> go.Figure:
    """Horizontal bars of the k most probable next tokens, the chosen (argmax) one in orange, the true one (when a
    target is known) outlined in green: a glance shows whether the model was sure and whether it was right."""
    tokens = np.array([token for token, _ in step.top], dtype=object)
    probs = np.array([p for _, p in step.top])
    colours = [CHOSEN if token == step.chosen else OTHER for token in tokens]
    outlines = [3 if token == target else 0 for token in tokens]
    figure = go.Figure(go.Bar(x=probs, y=tokens, orientation="h", marker={
        "color": colours, "line": {"color": TRUE, "width": outlines}}, text=[f"{p:.1%}" for p in probs],
        textposition="auto", hovertemplate="token %{y}<br>p %{x:.4f}<extra></extra>"))
    title = f"Step {step.index}: fed {step.fed!r}, top {len(tokens)} next tokens"
    figure.update_layout(title=title, height=height, margin={"l": 70, "r": 10, "t": 40, "b": 45})
    figure.update_xaxes(title_text="probability p(token | prefix, source)", range=[0, 1])
    figure.update_yaxes(title_text="next token", type="category", autorange="reversed")
    return figure


def attention_row_figure(step: DecodeStep, height: int = 260) -> go.Figure:
    """One step's attention weights over the source, a bar per source token in source order (darker: more)."""
    tokens = [f"{position}: {token}" for position, (token, _) in enumerate(step.attention or [])]
    weights = np.array([weight for _, weight in step.attention or []])
    figure = go.Figure(go.Bar(x=np.array(tokens, dtype=object), y=weights, marker={
        "color": weights, "colorscale": "Greens", "cmin": 0.0, "cmax": 1.0}, text=[f"{w:.0%}" for w in weights],
        textposition="auto", hovertemplate="source %{x}<br>α %{y:.3f}<extra></extra>"))
    figure.update_layout(title=f"Step {step.index}: where it looked in the source (attention α)", height=height,
                         margin={"l": 55, "r": 10, "t": 40, "b": 45})
    figure.update_xaxes(title_text="source position: token", type="category")
    figure.update_yaxes(title_text="α", range=[0, 1])
    return figure


def head_rows_figure(weights: np.ndarray, source_tokens: list[str], step: int, height: int = 260) -> go.Figure:
    """One step's cross-attention row per head of a Transformer's last layer, weights (heads, source positions): a
    group of bars per source token, one bar per head."""
    tokens = np.array([f"{position}: {token}" for position, token in enumerate(source_tokens)], dtype=object)
    figure = go.Figure([go.Bar(x=tokens, y=row, name=f"head {head + 1}",
                               hovertemplate=f"head {head + 1}<br>source %{{x}}<br>weight %{{y:.3f}}<extra></extra>")
                        for head, row in enumerate(weights)])
    figure.update_layout(title=f"Step {step}: cross-attention per head (last layer)", height=height, barmode="group",
                         margin={"l": 55, "r": 10, "t": 40, "b": 45})
    figure.update_xaxes(title_text="source position: token", type="category")
    figure.update_yaxes(title_text="weight", range=[0, 1])
    return figure


def position_errors_figure(errors: dict[str, PositionErrors], height: int = 380) -> go.Figure:
    """Per output position: teacher-forced and free-running error, and the error after a right prefix.

    Each model keeps its arm's colour (`arm_colour`; one model alone is dark grey) and the line style says which
    quantity a line is: dotted teacher-forced, solid free-running, dashed free-running after an all-right prefix.
    The y axis ends a little above the largest error, so a good model's few errors are not a flat line at 0.
    """
    styles = (("teacher-forced", "tf_error", "dot"), ("free-running", "fr_error", "solid"),
              ("free-running, earlier all right", "first_error", "dash"))
    traces, largest = [], 0.0
    for label, result in errors.items():
        for name, field, dash in styles:
            values = np.asarray(getattr(result, field), dtype=float)
            largest = max(largest, float(np.nanmax(values)) if values.size and not np.isnan(values).all() else 0.0)
            traces.append(go.Scatter(
                x=result.positions, y=values, mode="lines+markers", name=f"{label}: {name}" if label else name,
                legendgroup=label, line={"dash": dash, "color": arm_colour(label) if label else "#444"},
                customdata=np.stack([result.count, result.at_risk], axis=-1),
                hovertemplate="position %{x}<br>error %{y:.1%}<br>examples %{customdata[0]}, earlier all right "
                              "%{customdata[1]}<extra></extra>"))
    figure = go.Figure(traces)
    figure.update_layout(title="Validation error by output position", height=height,
                         margin={"l": 55, "r": 10, "t": 40, "b": 40},
                         legend={"title": "line style: dotted teacher-forced, solid free-running, dashed after an "
                                          "all-right prefix"})
    figure.update_xaxes(title_text="output position (0 = first target token; the last is <eos>)", dtick=1)
    figure.update_yaxes(title_text="share of examples wrong", range=[0, min(max(largest * 1.15, 0.05), 1.0)],
                        tickformat=".0%")
    return figure
