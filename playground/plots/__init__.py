"""Plotly figure builders: pure functions from data to go.Figure, nothing else. `notes` says under each chart what
it shows."""

from playground.plots import notes
from playground.plots.comparison_figures import arm_figure
from playground.plots.curves import accuracy_figure, gamma_figure, loss_figure
from playground.plots.decoding_figures import (
    attention_row_figure,
    head_rows_figure,
    position_errors_figure,
    top_k_figure,
)
from playground.plots.diagram import DiagramSizes, model_diagram
from playground.plots.ratio_figures import compare_lines, has_ratios, ratio_figure, study_lines
from playground.plots.state_figures import (
    alignment_heatmap,
    mark_step,
    mark_units,
    probs_figure,
    projection_figure,
    state_heatmap,
    unit_lines_figure,
)
from playground.plots.study_figures import study_figure

__all__ = [
    "DiagramSizes",
    "accuracy_figure",
    "alignment_heatmap",
    "arm_figure",
    "attention_row_figure",
    "compare_lines",
    "gamma_figure",
    "has_ratios",
    "head_rows_figure",
    "loss_figure",
    "mark_step",
    "mark_units",
    "model_diagram",
    "notes",
    "position_errors_figure",
    "probs_figure",
    "projection_figure",
    "ratio_figure",
    "state_heatmap",
    "study_figure",
    "study_lines",
    "top_k_figure",
    "unit_lines_figure",
]
