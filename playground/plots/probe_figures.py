"""Figures of the probe and the drift: recovery after one wrong token, the error after the true and after the
model's own prefix, the distance between teacher-forced and free-running decoder states, and both clouds of states
in one PCA plane. One colour per arm (`common.arm_colour`; one model alone is dark grey); an arm's seeds are its
mean and a band from the lowest to the highest seed."""

from __future__ import annotations

import warnings

import numpy as np
import plotly.graph_objects as go

from playground.inspection.drift import Drift
from playground.inspection.probe import Recovery
from playground.plots.common import FORCED_COLOUR, FREE_RUNNING_COLOUR, SCORING_DASH, arm_colour, rgba, tidy

ALONE = "#444"  # the colour of one model without an arm
POSITION_TITLE = "output position k (0 = the first target token)"


def colour(arm: str) -> str:
    return arm_colour(arm) if arm else ALONE


def _lines(figure: go.Figure, arm: str, seeds: list[np.ndarray], quantity: str, dash: str, hover: str) -> None:
    """An arm's mean over seeds by position, with the seeds' range as a band when there are several."""
    width = max(values.size for values in seeds)
    values = np.full((len(seeds), width), np.nan)
    for row, seed in enumerate(seeds):
        values[row, : seed.size] = seed
    positions = np.arange(width, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a position no seed has a value at is NaN, not a warning
        mean, low, high = np.nanmean(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)
    name = f"{arm}: {quantity}" if arm else quantity
    if len(seeds) > 1:
        shown = np.isfinite(mean)
        figure.add_trace(go.Scatter(x=np.concatenate([positions[shown], positions[shown][::-1]]),
                                    y=np.concatenate([high[shown], low[shown][::-1]]), fill="toself",
                                    fillcolor=rgba(colour(arm), 0.15), line={"width": 0}, hoverinfo="skip",
                                    showlegend=False, legendgroup=arm))
    figure.add_trace(go.Scatter(x=positions, y=mean, mode="lines+markers", name=name, legendgroup=arm,
                                line={"color": colour(arm), "dash": dash, "width": 2},
                                hovertemplate=f"position %{{x}}<br>{hover}<extra>{arm or 'model'}</extra>"))


def _finish(figure: go.Figure, title: str, y_title: str, height: int, seeds: int, percent: bool = True) -> go.Figure:
    band = " (mean, band: lowest to highest seed)" if seeds > 1 else ""
    figure.update_layout(title=title + band, height=height, margin={"l": 60, "r": 10})
    figure.update_xaxes(title_text=POSITION_TITLE, dtick=1, rangemode="nonnegative")
    figure.update_yaxes(title_text=y_title, tickformat=".1~%" if percent else None,
                        range=[0, 1.02] if percent else None, rangemode="nonnegative")
    return tidy(figure)


def recovery_figure(arms: dict[str, list[Recovery]], height: int = 400) -> go.Figure:
    """After the true prefix and one wrong token at k: the share of examples whose later tokens are all right
    (solid), and how far the wrong token moved the next-token distribution (total variation, dotted)."""
    figure = go.Figure()
    for arm, seeds in arms.items():
        _lines(figure, arm, [r.recovery for r in seeds], "recovered", "solid", "recovered %{y:.1%}")
        _lines(figure, arm, [r.total_variation for r in seeds], "TV distance", "dot", "TV distance %{y:.3f}")
    return _finish(figure, "After one wrong token at k: does it recover?", "share recovered / TV distance", height,
                   max(map(len, arms.values()), default=1))


def prefix_error_figure(arms: dict[str, list[Recovery]], height: int = 400) -> go.Figure:
    """The share of wrong tokens from k on, decoding greedily after the true prefix y_<k (dotted, as teacher-forced
    lines are everywhere) and after the model's own prefix (solid, free-running)."""
    figure = go.Figure()
    largest = 0.0
    for arm, seeds in arms.items():
        for quantity, name, dash in (("true_prefix_error", "after the true prefix", SCORING_DASH["teacher-forced"]),
                                     ("own_prefix_error", "after its own prefix", SCORING_DASH["free-running"])):
            values = [getattr(r, quantity) for r in seeds]
            largest = max([largest, *(float(np.nanmax(v)) for v in values if np.isfinite(v).any())])
            _lines(figure, arm, values, name, dash, "wrong %{y:.1%}")
    _finish(figure, "Errors from position k on, after the true and after its own prefix", "share of tokens wrong",
            height, max(map(len, arms.values()), default=1))
    figure.update_yaxes(range=[0, min(max(largest * 1.15, 0.05), 1.0)])  # a good model's few errors stay visible
    return figure


def drift_figure(arms: dict[str, list[Drift]], height: int = 400) -> go.Figure:
    """Mean distance between the teacher-forced and the free-running decoder h_t by position (0 until a first
    mistake), with the teacher-forced h_t's mean norm in the hover for scale."""
    figure = go.Figure()
    for arm, seeds in arms.items():
        _lines(figure, arm, [d.distance for d in seeds], "distance", "solid", "distance %{y:.3f}")
    largest_scale = max((float(np.nanmax(d.scale)) for seeds in arms.values() for d in seeds
                         if np.isfinite(d.scale).any()), default=0.0)
    return _finish(figure, "Free-running h_t, distance from teacher-forced",
                   f"mean distance (|h_t| is about {largest_scale:.1f})", height,
                   max(map(len, arms.values()), default=1), percent=False)


def drift_plane_figure(drift: Drift, title: str = "Decoder h_t, teacher-forced and free-running, in one plane",
                       height: int = 420) -> go.Figure:
    """Both clouds of the decoder's top-layer states in their PCA plane, coloured by how the decoder was fed."""
    figure = go.Figure()
    for name, free, colour_of, symbol in (("teacher-forced", False, FORCED_COLOUR, "circle"),
                                          ("free-running", True, FREE_RUNNING_COLOUR, "circle-open")):
        shown = drift.free_running == free  # open blue rings over red dots: where they coincide both show
        figure.add_trace(go.Scattergl(x=drift.plane[shown, 0], y=drift.plane[shown, 1], mode="markers", name=name,
                                      marker={"color": colour_of, "size": 6, "opacity": 0.6, "symbol": symbol},
                                      customdata=drift.plane_position[shown],
                                      hovertemplate="position %{customdata}<extra>" + name + "</extra>"))
    figure.update_layout(title=title, height=height, margin={"l": 60, "r": 10}, legend={"title": "decoder fed"})
    figure.update_xaxes(title_text=f"PC 1 ({drift.explained[0]:.0%} of the variance)")
    figure.update_yaxes(title_text=f"PC 2 ({drift.explained[1]:.0%})")
    return tidy(figure)
