"""What a comparison and a study are (`comparison`, `study_grid`) and their statistics (`statistics`): the
definitions the engines, the exports and the pages share."""

from playground.experiments.comparison import (
    DEFAULT_RATIOS,
    MAX_COMPARE_SEEDS,
    RATIO_CHOICES,
    TRADE_OFF_EXAMPLE,
    TRADE_OFF_RATIOS,
    CompareConfig,
    CompareSnapshot,
)
from playground.experiments.study_grid import MAX_STUDY_SEEDS, STEPS_TO_TARGET, StudyConfig

__all__ = [
    "DEFAULT_RATIOS",
    "MAX_COMPARE_SEEDS",
    "MAX_STUDY_SEEDS",
    "RATIO_CHOICES",
    "STEPS_TO_TARGET",
    "TRADE_OFF_EXAMPLE",
    "TRADE_OFF_RATIOS",
    "CompareConfig",
    "CompareSnapshot",
    "StudyConfig",
]
