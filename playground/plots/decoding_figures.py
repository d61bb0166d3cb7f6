"""Figures of the Decode page: one step's top-k probabilities, and error rates by output position."""

from __future__ import annotations

import warnings

import numpy as np
import plotly.graph_objects as go

from playground.inspection.decoding import DecodeStep, PositionErrors
from playground.plots.common import arm_colour, rgba, tidy

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


QUANTITIES = (("teacher-forced", "tf_error", "dot"), ("free-running", "fr_error", "solid"),
              ("free-running, earlier all right", "first_error", "dash"))  # what a line shows: its dash
KEY_COLOUR = "#666"


def position_errors_figure(errors: list[tuple[str, PositionErrors]], height: int = 400) -> go.Figure:
    """Per output position: teacher-forced and free-running error, and the error after a right prefix, of every
    arm; `errors` holds (arm label, errors) per model, an arm once per seed.

    One colour per arm (`arm_colour`, as on every page), its seeds' mean as the line and their spread (min to max)
    as a band; the line style says the quantity. The legend sits under the plot (arms, then the key of the line
    styles), so the plot keeps its frame's width at any size. The y axis ends a little above the largest error,
    so a good model's few errors are not a flat line at 0.
    """
    arms: dict[str, list[PositionErrors]] = {}
    for label, result in errors:
        arms.setdefault(label, []).append(result)
    figure, largest, longest = go.Figure(), 0.0, 0
    for label, seeds in arms.items():
        colour = arm_colour(label)
        length = min(result.count.size for result in seeds)
        longest = max(longest, length)
        x = np.arange(length)
        for name, field, dash in QUANTITIES:
            values = np.stack([np.asarray(getattr(result, field), dtype=float)[:length] for result in seeds])
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a position no seed scored: NaN, a gap
                mean, low, high = np.nanmean(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)
            if np.isfinite(high).any():
                largest = max(largest, float(np.nanmax(high)))
            if len(seeds) > 1:
                figure.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([high, low[::-1]]),
                                            fill="toself", fillcolor=rgba(colour, 0.12), line={"width": 0},
                                            hoverinfo="skip", showlegend=False, legendgroup=label))
            figure.add_trace(go.Scatter(
                x=x, y=mean, mode="lines+markers", name=label, legendgroup=label, showlegend=dash == "solid",
                line={"dash": dash, "color": colour, "width": 2}, marker={"size": 5},
                hovertemplate=f"{label}<br>{name}<br>position %{{x}}<br>error %{{y:.1%}}<extra></extra>"))
    for name, _, dash in QUANTITIES:  # the key of the line styles, after the arms
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name, legendgroup="key",
                                    line={"dash": dash, "color": KEY_COLOUR, "width": 2}))
    seeds = max((len(seeds) for seeds in arms.values()), default=1)
    band = f" (mean, band: min to max over {seeds} seeds)" if seeds > 1 else ""
    figure.update_layout(title="Validation error by output position" + band, height=height + 22 * (len(arms) // 3),
                         margin={"l": 55, "r": 10}, legend={"traceorder": "normal"})
    figure.update_xaxes(title_text="output position (0 = first target token; the last is <eos>)",
                        dtick=1 if longest <= 16 else None, rangemode="nonnegative")
    figure.update_yaxes(title_text="share of examples wrong", range=[0, min(max(largest * 1.15, 0.05), 1.0)],
                        tickformat=".0%")
    return tidy(figure)
