"""Teacher-forcing schedules against the formulas documented in playground/forcing.py."""

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playground.core.forcing import SCHEDULES, ForcingSchedule

RATIO = st.floats(0.0, 1.0)


@pytest.mark.parametrize(("schedule", "step", "expected"), [
    (ForcingSchedule("constant", 0.7, 0.2), 0, 0.7),
    (ForcingSchedule("constant", 0.7, 0.2), 10**6, 0.7),
    (ForcingSchedule("linear", 1.0, 0.0, decay_steps=100), 0, 1.0),
    (ForcingSchedule("linear", 1.0, 0.0, decay_steps=100), 25, 0.75),
    (ForcingSchedule("linear", 1.0, 0.0, decay_steps=100), 100, 0.0),
    (ForcingSchedule("linear", 1.0, 0.0, decay_steps=100), 150, 0.0),
    (ForcingSchedule("linear", 0.8, 0.2, decay_steps=10), 5, 0.5),  # 0.2 + 0.6 * (1 - 5/10)
    (ForcingSchedule("exponential", 1.0, 0.0, exp_k=0.9), 0, 1.0),
    (ForcingSchedule("exponential", 1.0, 0.0, exp_k=0.9), 1, 0.9),
    (ForcingSchedule("exponential", 1.0, 0.0, exp_k=0.9), 10, 0.3486784401),  # 0.9 ** 10
    (ForcingSchedule("exponential", 0.6, 0.1, exp_k=0.5), 3, 0.1625),  # 0.1 + 0.5 * 0.5 ** 3
    (ForcingSchedule("inverse_sigmoid", 1.0, 0.0, sigmoid_k=10.0), 0, 10 / 11),  # k / (k + e^0)
    (ForcingSchedule("inverse_sigmoid", 1.0, 0.0, sigmoid_k=10.0), 10, 10 / (10 + math.e)),
    (ForcingSchedule("inverse_sigmoid", 0.9, 0.1, sigmoid_k=10.0), 30, 0.1 + 0.8 * 10 / (10 + math.e**3)),
    (ForcingSchedule("inverse_sigmoid", 1.0, 0.25, sigmoid_k=1.0), 10**6, 0.25),  # exp would overflow
])
def test_values_at_known_steps(schedule: ForcingSchedule, step: int, expected: float) -> None:
    assert schedule.ratio(step) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(SCHEDULES), start=RATIO, end=RATIO)
def test_undecayed_ratio_is_exactly_start(kind: str, start: float, end: float) -> None:
    """At step 0 (and always for constant) gamma = start exactly, so 1.0 keeps the fused teacher-forced path."""
    schedule = ForcingSchedule(kind, start, end)
    if kind != "inverse_sigmoid":  # its d(0) = k / (k + 1) < 1 by definition
        assert schedule.ratio(0) == start
    assert ForcingSchedule("constant", start, end).ratio(12345) == start


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(SCHEDULES),
    ratios=st.tuples(RATIO, RATIO).map(sorted),
    decay_steps=st.integers(1, 10_000),
    exp_k=st.floats(0.5, 0.99999),
    sigmoid_k=st.floats(1.0, 100_000.0),
    steps=st.lists(st.integers(0, 10**6), min_size=2, max_size=20).map(sorted),
)
def test_monotone_and_bounded(kind: str, ratios: list[float], decay_steps: int, exp_k: float, sigmoid_k: float,
                              steps: list[int]) -> None:
    end, start = ratios
    schedule = ForcingSchedule(kind, start, end, decay_steps, exp_k, sigmoid_k)
    values = [schedule.ratio(step) for step in steps]
    assert all(end <= value <= start for value in values)
    assert all(later <= earlier for earlier, later in itertools.pairwise(values))
    assert all(0.0 <= schedule.decay(step) <= 1.0 for step in steps)


def test_unknown_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown schedule 'cosine'; choose one of constant, linear"):
        ForcingSchedule("cosine").ratio(0)
