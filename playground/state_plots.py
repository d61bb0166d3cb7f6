"""Plotly figures for hidden and cell states: units x time heatmaps with tokens on the time axis."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

DIVERGING = "RdBu_r"  # red positive, blue negative, white at zero


def state_heatmap(values: np.ndarray, step_labels: list[str], title: str, unit_order: np.ndarray | None = None,
                  height: int = 320, value_name: str = "value") -> go.Figure:
    """values (steps, units) drawn as units x steps, centred on 0; hover gives unit, step, token, value."""
    order = np.arange(values.shape[1]) if unit_order is None else np.asarray(unit_order)
    z = values[:, order].T
    steps = np.arange(values.shape[0])
    tokens = np.array(step_labels, dtype=object)
    customdata = np.stack(np.broadcast_arrays(order[:, None], steps[None, :], tokens[None, :]), axis=-1)
    limit = float(np.abs(z).max()) or 1.0
    figure = go.Figure(go.Heatmap(
        z=z, x=steps, y=np.arange(len(order)), colorscale=DIVERGING, zmid=0.0, zmin=-limit, zmax=limit,
        customdata=customdata, colorbar={"title": {"text": value_name}, "thickness": 12},
        hovertemplate="unit %{customdata[0]}<br>step %{customdata[1]}, token %{customdata[2]}"
                      f"<br>{value_name} %{{z:.3f}}<extra></extra>"))
    figure.update_layout(title=title, height=height, margin={"l": 55, "r": 10, "t": 40, "b": 40})
    figure.update_xaxes(title_text="step (input token)", tickmode="array", tickvals=steps,
                        ticktext=[f"{label}" for label in step_labels])
    figure.update_yaxes(title_text="hidden unit" if unit_order is None else "hidden unit (reordered)",
                        showticklabels=len(order) <= 64)
    return figure
