"""One colour per arm, never two arms alike: γ colours when arms differ by teacher forcing alone, distinct
colours when they differ by model."""

from __future__ import annotations

from playground.core.config import TrainConfig
from playground.experiments.comparison import CompareConfig
from playground.plots.common import FORCED_COLOUR, FREE_RUNNING_COLOUR, arm_colour, arm_colours


def labels(**variants: list[str]) -> list[str]:
    keys = ("cell", "attention", "reverse_source")
    config = CompareConfig.build(TrainConfig(), ratios=[1.0], variants=[variants.get(key, []) for key in keys])
    return [arm.label for arm in config.arms()]


def test_arms_that_differ_by_model_never_share_a_colour() -> None:
    four = labels(cell=["lstm", "gru"], attention=["none", "dot"])
    assert len(four) == 4
    assert len(set(arm_colours(four).values())) == 4
    many = [arm.label for arm in CompareConfig.build(TrainConfig(), ratios=[0, 0.25, 0.5, 0.75, 1.0],
                                                     schedules=["linear"], variants=[["lstm", "gru"], [], ["off", "on"]]
                                                     ).arms()]
    assert len(many) == 24 and len(set(arm_colours(many).values())) == 24


def test_arms_that_differ_by_teacher_forcing_keep_the_gamma_scale() -> None:
    colours = arm_colours(["γ = 0", "γ = 0.5", "γ = 1", "linear 1→0"])
    assert colours["γ = 0"] == FREE_RUNNING_COLOUR and colours["γ = 1"] == FORCED_COLOUR
    assert len(set(colours.values())) == 4
    assert arm_colour("γ = 1") == FORCED_COLOUR  # the same red whatever the other arms are
