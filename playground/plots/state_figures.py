"""Plotly figures for hidden and cell states: units x time heatmaps with tokens on the time axis."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from playground.plots.common import tidy

DIVERGING = "RdBu_r"  # red positive, blue negative, white at zero: h, c and the candidate g (signed)
SIGMOID_GATES = ("i", "f", "o")  # between 0 and 1: a sequential scale from white (closed) to dark blue (open)
MAX_UNIT_LABELS = 16  # unit numbers on a heatmap's axis: every k-th beyond this, so they stay readable


def unit_ticks(order: np.ndarray) -> dict:
    """The unit number of every row (every k-th when there are many), in the order drawn."""
    every = -(-len(order) // MAX_UNIT_LABELS)
    rows = np.arange(0, len(order), every)
    return {"tickmode": "array", "tickvals": rows, "ticktext": [str(int(order[row])) for row in rows]}


def state_heatmap(values: np.ndarray, step_labels: list[str], title: str, unit_order: np.ndarray | None = None,
                  height: int = 320, value_name: str = "value", x_title: str = "step (input token)") -> go.Figure:
    """values (steps, units) drawn as units x steps, centred on 0; hover gives unit, step, token, value."""
    order = np.arange(values.shape[1]) if unit_order is None else np.asarray(unit_order)
    z = values[:, order].T
    steps = np.arange(values.shape[0])
    tokens = np.array(step_labels, dtype=object)
    customdata = np.stack(np.broadcast_arrays(order[:, None], steps[None, :], tokens[None, :]), axis=-1)
    if value_name in SIGMOID_GATES:
        scale = {"colorscale": "Blues", "zmin": 0.0, "zmax": 1.0}
    else:
        limit = float(np.abs(z).max()) or 1.0
        scale = {"colorscale": DIVERGING, "zmid": 0.0, "zmin": -limit, "zmax": limit}
    figure = go.Figure(go.Heatmap(
        z=z, x=steps, y=np.arange(len(order)), **scale,
        customdata=customdata, colorbar={"title": {"text": value_name}, "thickness": 12},
        hovertemplate="unit %{customdata[0]}<br>step %{customdata[1]}, token %{customdata[2]}"
                      f"<br>{value_name} %{{z:.3f}}<extra></extra>"))
    figure.update_layout(title=title, height=height, margin={"l": 55, "r": 10, "b": 40})
    tidy(figure, legend_below=False)
    figure.update_xaxes(title_text=x_title, tickmode="array", tickvals=steps, ticktext=list(step_labels))
    reordered = not np.array_equal(order, np.arange(values.shape[1]))
    figure.update_yaxes(title_text="hidden unit (number), sorted" if reordered else "hidden unit (number)",
                        autorange="reversed", **unit_ticks(order))  # the first row on top
    return figure


def mark_step(figure: go.Figure, step: int | None, text: str) -> go.Figure:
    """A dashed vertical line at a step (e.g. where two decodings diverge)."""
    if step is not None:
        figure.add_vline(x=step, line={"color": "black", "dash": "dash", "width": 2},
                         annotation_text=text, annotation_position="top")
    return figure


def probs_figure(probs: np.ndarray, vocab: list[str], step_labels: list[str], chosen: list[str],
                 title: str, height: int = 360) -> go.Figure:
    """Output probabilities, vocabulary x steps; a marker on the token chosen at each step."""
    steps = np.arange(probs.shape[0])
    figure = go.Figure(go.Heatmap(
        z=probs.T, x=steps, y=np.array(vocab, dtype=object), colorscale="Blues", zmin=0.0, zmax=1.0,
        colorbar={"title": {"text": "p"}, "thickness": 12},
        customdata=np.broadcast_to(np.array(step_labels, dtype=object)[None, :], probs.T.shape),
        hovertemplate="step %{x} (%{customdata})<br>token %{y}<br>p %{z:.3f}<extra></extra>"))
    figure.add_trace(go.Scatter(x=steps, y=np.array(chosen, dtype=object), mode="markers", name="chosen (argmax)",
                                marker={"symbol": "x", "color": "orange", "size": 10, "line": {"width": 2}},
                                hovertemplate="step %{x}: chose %{y}<extra></extra>"))
    figure.update_layout(title=title, height=height, margin={"l": 70, "r": 10, "b": 40})
    tidy(figure)
    figure.update_xaxes(title_text="decoder step (input → prediction)", tickmode="array", tickvals=steps,
                        ticktext=step_labels)
    figure.update_yaxes(title_text="output token", type="category", categoryorder="array",
                        categoryarray=np.array(vocab, dtype=object), tickmode="array",
                        tickvals=np.array(vocab, dtype=object), ticktext=vocab, tickfont={"size": 10})
    figure.update_layout(height=max(height, 13 * len(vocab) + 120))  # room for every token's label
    return figure


def unit_lines_figure(values: np.ndarray, units: list[int], step_labels: list[str], title: str,
                      value_name: str = "value", height: int = 320) -> go.Figure:
    """Chosen units as lines over time."""
    steps = np.arange(values.shape[0])
    figure = go.Figure([go.Scatter(x=steps, y=values[:, unit], mode="lines+markers", name=f"unit {unit}",
                                   customdata=np.array(step_labels, dtype=object),
                                   hovertemplate=f"unit {unit}<br>step %{{x}}, token %{{customdata}}"
                                                 f"<br>{value_name} %{{y:.3f}}<extra></extra>")
                        for unit in units])
    figure.update_layout(title=title, height=height, margin={"l": 55, "r": 10, "b": 40})
    tidy(figure)
    figure.update_xaxes(title_text="step (input token)", tickmode="array", tickvals=steps, ticktext=step_labels)
    figure.update_yaxes(title_text=value_name)
    return figure


def projection_figure(points: np.ndarray, colour: np.ndarray, colour_name: str, labels: list[str],
                      trajectories: dict[str, tuple[np.ndarray, list[str]]], explained: np.ndarray,
                      height: int = 480) -> go.Figure:
    """Encoder final states of many examples in a PCA plane, with decoder trajectories drawn in the same plane."""
    numeric = np.issubdtype(np.asarray(colour).dtype, np.number)
    marker: dict = {"size": 7, "opacity": 0.75}
    if numeric:
        marker |= {"color": colour, "colorscale": "Viridis", "showscale": True,
                   "colorbar": {"title": {"text": colour_name}, "thickness": 12}}
    traces = [go.Scatter(x=points[:, 0], y=points[:, 1], mode="markers", name="final states",
                         marker=marker, text=labels, showlegend=numeric,
                         hovertemplate="%{text}<extra>final state</extra>")] if numeric else [
        go.Scatter(x=points[colour == value, 0], y=points[colour == value, 1], mode="markers",
                   name=f"{colour_name} {value}", marker=marker, text=np.asarray(labels, dtype=object)[colour == value],
                   hovertemplate="%{text}<extra></extra>") for value in sorted(set(colour.tolist()))]
    styles = ({"width": 4, "color": "#d62728"}, {"width": 2, "color": "black", "dash": "dot"})
    for (name, (path, tokens)), line in zip(trajectories.items(), styles, strict=False):
        traces.append(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers+text", name=name,
                                 text=tokens, textposition="top center", line=line,
                                 marker={"size": 9, "symbol": "diamond"},
                                 hovertemplate=f"{name}<br>step %{{pointNumber}}: %{{text}}<extra></extra>"))
    figure = go.Figure(traces)
    figure.update_layout(title="Encoder final state h_T of validation examples, PCA plane",
                         height=height, margin={"l": 55, "r": 10, "b": 40})
    tidy(figure)
    figure.update_xaxes(title_text=f"PC 1 ({explained[0]:.0%} of variance)")
    figure.update_yaxes(title_text=f"PC 2 ({explained[1]:.0%} of variance)")
    return figure


def mark_units(figure: go.Figure, order: np.ndarray, marked: dict[int, str]) -> go.Figure:
    """Outline the rows of the marked units (unit -> why) on a `state_heatmap` drawn in `order`."""
    rows = {int(unit): row for row, unit in enumerate(np.asarray(order))}
    for unit, why in marked.items():
        row = rows[unit]
        figure.add_shape(type="rect", xref="paper", x0=0, x1=1, yref="y", y0=row - 0.5, y1=row + 0.5,
                         line={"color": "black", "width": 1.5}, fillcolor="rgba(0,0,0,0)", name=f"unit {unit}: {why}")
    return figure


def alignment_heatmap(weights: np.ndarray, source_tokens: list[str], step_labels: list[str], title: str,
                      height: int = 320, key_title: str = "source position (token)",
                      query_title: str = "output step (input → prediction)") -> go.Figure:
    """Attention weights α (output steps, source positions) as output step x source position, 0 to 1; or any
    queries x keys map, with its axes' titles."""
    steps, positions = np.arange(weights.shape[0]), np.arange(weights.shape[1])
    figure = go.Figure(go.Heatmap(
        z=weights, x=positions, y=steps, colorscale="Greens", zmin=0.0, zmax=1.0,
        colorbar={"title": {"text": "α"}, "thickness": 12},
        customdata=np.stack(np.broadcast_arrays(np.array(step_labels, dtype=object)[:, None],
                                                np.array(source_tokens, dtype=object)[None, :]), axis=-1),
        hovertemplate="step %{y} (%{customdata[0]})<br>source %{x} (%{customdata[1]})<br>α %{z:.3f}<extra></extra>"))
    figure.update_layout(title=title, height=height, margin={"l": 70, "r": 10, "b": 40})
    tidy(figure, legend_below=False)
    figure.update_xaxes(title_text=key_title, tickmode="array", tickvals=positions, ticktext=list(source_tokens))
    figure.update_yaxes(title_text=query_title, tickmode="array", tickvals=steps,
                        ticktext=list(step_labels), autorange="reversed")
    return figure
