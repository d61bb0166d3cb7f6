"""The charts of exact match by length and of error by position: one colour per arm, seeds as a band."""

from __future__ import annotations

import numpy as np
import pytest

from playground.core.config import TrainConfig
from playground.experiments.comparison import arm_of, forcing_label
from playground.inspection.decoding import PositionErrors
from playground.plots.common import arm_colour, arm_colours
from playground.plots.decoding_figures import position_errors_figure
from playground.plots.length_figures import length_figure


def test_exact_match_by_length_shades_the_training_lengths() -> None:
    config = TrainConfig(min_len=3, max_len=8, test_max_len=12)
    arms = {"γ = 0": [{n: 1.0 for n in range(3, 13)}, {n: 0.5 for n in range(3, 13)}], "γ = 1": [{3: 1.0, 9: 0.0}]}
    figure = length_figure(arms, config)
    (shade,) = figure.layout.shapes
    assert (shade.x0, shade.x1) == (2.5, 8.5)
    lines = [trace for trace in figure.data if trace.mode == "lines+markers"]
    assert [(line.name, line.line.color) for line in lines] == [(name, arm_colour(name)) for name in arms]
    assert np.asarray(lines[0].y) == pytest.approx([0.75] * 10)
    assert [trace.fill for trace in figure.data].count("toself") == 1  # only the arm with two seeds has a band
    assert TrainConfig(task="addition").size_range().trained == 3
    assert not length_figure({}, TrainConfig(task="custom", custom_data="0" * 16)).layout.shapes  # no size knob


def test_arms_that_differ_by_model_keep_their_own_colours_by_length() -> None:
    labels = ["γ = 0.5, +EOS", "γ = 1, +EOS", "γ = 0.5, −EOS", "γ = 1, −EOS"]
    figure = length_figure({label: [{3: 1.0, 4: 0.5}] for label in labels}, TrainConfig(min_len=3, max_len=4))
    colours = [trace.line.color for trace in figure.data if trace.mode == "lines+markers"]
    assert colours == [arm_colours(labels)[label] for label in labels] and len(set(colours)) == 4


def _errors(level: float) -> PositionErrors:
    return PositionErrors(np.full(4, level / 2), np.full(4, level), np.full(4, level / 4), np.full(4, 10),
                          np.full(4, 5))


def test_error_by_position_has_one_colour_per_arm_and_the_seeds_as_a_band() -> None:
    errors = [("γ = 0", _errors(0.2)), ("γ = 0", _errors(0.4)), ("γ = 1", _errors(0.1))]
    figure = position_errors_figure(errors)
    legend = [trace.name for trace in figure.data if trace.showlegend is not False]
    assert legend == ["γ = 0", "γ = 1", "teacher-forced", "free-running", "free-running, earlier all right"]
    solid = {trace.name: trace for trace in figure.data if trace.line.dash == "solid" and trace.legendgroup != "key"}
    assert np.asarray(solid["γ = 0"].y) == pytest.approx([0.3] * 4) and solid["γ = 0"].line.color == arm_colour("γ = 0")
    assert [trace.fill for trace in figure.data].count("toself") == 3  # γ = 0's two seeds, around each quantity
    assert figure.layout.legend.orientation == "h" and figure.layout.legend.yref == "container"  # under the plot


def test_a_model_belongs_to_its_arm() -> None:
    assert arm_of("γ = 0.5, GRU, seed 3", TrainConfig()) == "γ = 0.5, GRU"
    assert arm_of("", TrainConfig(teacher_forcing_ratio=0.25)) == "γ = 0.25"
    assert forcing_label(TrainConfig(schedule="linear", teacher_forcing_ratio=1.0)) == "linear 1→0"
