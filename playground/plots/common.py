"""What every chart shares: a title clear of Plotly's toolbar, legends below, honest empty states, downloads.

Plotly's toolbar sits in the top-right corner of the figure; a centred title in a thin top margin runs under it.
`tidy` puts the title at the figure's left edge (so a narrow chart's title fits its width), just above the plot
area, and leaves the toolbar its own strip. `empty_state` fixes
the axes to the ranges the data will have (never plotly's -1..1) and says what will appear, and when.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from typing import Any

import plotly.colors
import plotly.graph_objects as go

NOTE_WIDTH = 30  # characters a line of an empty chart's note: it fits a chart of half an 800 px window
TOOLBAR_STRIP = 34  # px above the title for the toolbar
TITLE_SPACE = 30  # px for one title line


def tidy(figure: go.Figure, legend_below: bool = True) -> go.Figure:
    """Left title above the plot, clear of the toolbar; a horizontal legend under the x axis title."""
    title = figure.layout.title.text or ""
    margin = figure.layout.margin
    figure.update_layout(
        title={"text": title, "x": 0, "xref": "container", "xanchor": "left", "y": 1, "yref": "paper",
               "yanchor": "bottom", "pad": {"b": 8, "l": 8}, "font": {"size": 15}},
        margin={"t": TOOLBAR_STRIP + TITLE_SPACE, "l": margin.l if margin.l is not None else 60,
                "r": margin.r if margin.r is not None else 20,
                "b": max(margin.b or 0, 100 if legend_below else 45)})
    if legend_below:
        # at the figure's bottom edge, not below the plot by a share of its height: a legend that wraps onto a
        # second row in a narrow chart then grows upwards into the margin, never over the x axis title
        figure.update_layout(legend={"orientation": "h", "x": 0, "xanchor": "left", "yref": "container", "y": 0,
                                     "yanchor": "bottom"})
    return figure


def empty_state(figure: go.Figure, message: str, x_range: tuple[float, float],
                y_range: tuple[float, float] | None) -> go.Figure:
    """No data yet: fixed real ranges and a centred note of what the chart will show and when."""
    figure.update_xaxes(range=list(x_range), autorange=False)
    if y_range is not None:
        figure.update_yaxes(range=list(y_range), autorange=False)
    lines = [line for part in message.split("<br>") for line in textwrap.wrap(part, NOTE_WIDTH)]
    figure.add_annotation(text="<br>".join(lines), xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                          font={"size": 12, "color": "#555"}, bgcolor="rgba(255,255,255,0.85)")
    return figure


def has_points(figure: go.Figure) -> bool:
    return any(trace.x is not None and len(trace.x) > 0 for trace in figure.data)


def file_name(title: str) -> str:
    """A download name from a title: 'Loss (train)' -> 'seq2seq-loss-train'."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].rstrip("-")
    return f"seq2seq-{slug or 'chart'}"


def chart_config(name: str) -> dict[str, Any]:
    """plotly config: the toolbar on hover only, PNG at twice the size, and SVG too, both named `name`."""
    return {
        "displaylogo": False,
        "displayModeBar": "hover",
        "toImageButtonOptions": {"format": "png", "filename": name, "scale": 2},
        "modeBarButtonsToAdd": ["toImage"],
        # four buttons (camera, zoom, pan, reset): more wrap onto a second row over the title of a narrow chart
        "modeBarButtonsToRemove": ["lasso2d", "select2d", "zoomIn2d", "zoomOut2d", "autoScale2d"],
    }


FREE_RUNNING_COLOUR, FORCED_COLOUR = "#1f77b4", "#d62728"  # γ = 0 and γ = 1 on every page; γ between: between
SCHEDULE_COLOURS = {"linear": "#2ca02c", "exponential": "#ff7f0e", "inverse sigmoid": "#9467bd"}
ARM_PALETTE = tuple(plotly.colors.qualitative.Dark24)  # 24 distinct colours: the most arms a comparison has
SCORING_DASH = {"teacher-forced": "dot", "free-running": "solid"}  # how a model is scored: line style, not colour


def forcing_colour(label: str) -> str | None:
    """The colour of an arm that differs from the others by teacher forcing alone: a constant γ from blue (0,
    free-running) to red (1, teacher-forced), a decaying schedule its own colour; so γ = 1 is the same red on
    Compare, Lessons, Study and Decode whatever the other arms are. None for a label that also names a model."""
    if "," in label:
        return None
    if label.startswith("γ = "):
        try:
            ratio = min(max(float(label.removeprefix("γ = ")), 0.0), 1.0)
        except ValueError:
            return None
        ends = [tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
                for hex_colour in (FREE_RUNNING_COLOUR, FORCED_COLOUR)]
        return "#" + "".join(f"{round(a + (b - a) * ratio):02x}" for a, b in zip(*ends, strict=True))
    return next((colour for name, colour in SCHEDULE_COLOURS.items() if label.startswith(name)), None)


def arm_colours(labels: Sequence[str]) -> dict[str, str]:
    """One colour per arm of a comparison, never two arms alike: the teacher-forcing colours when the arms differ
    by teacher forcing alone, else a distinct qualitative colour per arm in the comparison's order (arms that
    differ by model have no natural order of colour)."""
    unique = list(dict.fromkeys(labels))
    forcing = {label: forcing_colour(label) for label in unique}
    if all(forcing.values()) and len(set(forcing.values())) == len(unique):
        return {label: colour for label, colour in forcing.items() if colour}
    return {label: ARM_PALETTE[index % len(ARM_PALETTE)] for index, label in enumerate(unique)}


def arm_colour(label: str) -> str:
    """The colour of an arm shown alone (a single run, one model picked from a comparison)."""
    return arm_colours([label])[label]


def rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
