"""Exact match by length: how far each arm carries what it learned, with the lengths it trained on shaded, so the
lengths it never saw stand apart. One builder for Train, Compare, Study and the lessons."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from playground.core.config import SizeRange, TrainConfig
from playground.core.tasks import TASKS
from playground.experiments.statistics import shared_keys
from playground.plots.common import arm_colours, empty_state, has_points, rgba, tidy

TRAINED_SHADE = "rgba(120,120,120,0.14)"


def length_figure(arms: dict[str, list[dict[int, float]]], config: TrainConfig, height: int = 340,
                  title: str = "Free-running exact match by length") -> go.Figure:
    """One line per arm (its seeds' mean, their spread as a band), over every tested size; `arms` maps an arm's
    label to its seeds' exact match by size."""
    figure = go.Figure()
    sizes = config.size_range()
    colours = arm_colours(list(arms))  # the arms' own colours, as on every other chart of the comparison
    for label, seeds in arms.items():
        frame = shared_keys(seeds)
        if frame.empty:
            continue
        values = frame.to_numpy(dtype=float)
        x, mean, spread = frame.index.to_numpy(dtype=float), values.mean(1), values.std(1)
        colour = colours[label]
        if values.shape[1] > 1:
            figure.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([mean + spread,
                                                                                         (mean - spread)[::-1]]),
                                        fill="toself", fillcolor=rgba(colour, 0.15), line={"width": 0},
                                        hoverinfo="skip", showlegend=False, legendgroup=label))
        figure.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=label, legendgroup=label,
                                    line={"color": colour, "width": 2}))
    seeds = max((len(seeds) for seeds in arms.values()), default=1)
    band_note = f" (mean ± std, {seeds} seeds)" if seeds > 1 else ""
    figure.update_layout(title=title + band_note, height=height, margin={"l": 60, "r": 10},
                         legend={"title": "arm"})
    figure.update_xaxes(title=TASKS[config.task].size_name, dtick=1)
    figure.update_yaxes(title="sequences fully right", tickformat=".0%", range=[0, 1.02])
    _shade_training(figure, sizes)
    tidy(figure)
    if not has_points(figure):
        empty_state(figure, f"Exact match at every length, at the first evaluation (step {config.eval_every:,}).",
                    (max(sizes.smallest, 1) - 0.5, max(sizes.tested, 1) + 0.5), (0, 1.02))
    return figure


def _shade_training(figure: go.Figure, sizes: SizeRange) -> None:
    """The trained sizes as a grey band labelled "trained on"; a task without a size knob has none."""
    if not sizes.trained:
        return
    figure.add_vrect(x0=sizes.smallest - 0.5, x1=sizes.trained + 0.5, fillcolor=TRAINED_SHADE, line_width=0,
                     layer="below", annotation_text="trained on", annotation_position="top left",
                     annotation_font={"size": 11, "color": "#555"})
    if sizes.beyond:
        figure.add_annotation(x=sizes.tested + 0.5, y=1, yref="paper", text="never seen in training",
                              showarrow=False, xanchor="right", yanchor="top", font={"size": 11, "color": "#555"})
