"""The three exposure lessons (lengths beyond training, one wrong token, three regimes) and intervals that stay in
their range: every verdict is asserted as data, from crafted finished runs whose answer is known."""

from __future__ import annotations

import math

import numpy as np

from playground.course import LESSONS
from playground.course.answers import NOT_EVALUATED, PREDICTIONS, answered
from playground.course.evidence import Why, with_probe
from playground.course.exposure_lessons import read_beyond, read_recovery, read_regimes
from playground.experiments.comparison import CompareSnapshot
from playground.experiments.statistics import SHARE, SHARE_DIFFERENCE, mean_ci, paired_test
from playground.inspection.exposure import Exposure
from playground.inspection.probe import Recovery
from playground.training.metrics import Metric


def finished(key: str, exact: dict[tuple[float, str], list[float]], beyond: dict[float, list[float]] | None = None,
             forced_beyond: float = 0.9, told: dict[float, list[float]] | None = None) -> CompareSnapshot:
    """A finished 3-seed run of a lesson: each arm (found by its ratio and schedule) with its per-seed final
    free-running exact match, exact match beyond the training lengths (`told`: for the arms told the true length,
    else as `beyond`), and by length."""
    config = LESSONS[key].config
    base = config.base
    arms = config.arms()
    rows, lengths = [], []
    for arm in arms:
        settings = arm.settings()
        for seed, final in enumerate(exact[settings["ratio"], settings["schedule"]]):
            beyond_of = told if told is not None and settings["eos"] == "oracle" else beyond
            longer = (beyond_of or {}).get(settings["ratio"], [0.0] * 3)[seed]
            by_size = {n: final if n <= base.max_len else longer
                       for n in range(base.min_len, (base.test_max_len or base.max_len) + 1)}
            row = {"step": 500, Metric.TRAIN_LOSS: 0.2, Metric.FR_EXACT: final, Metric.TF_TOKEN_ACC: 0.99,
                   Metric.FR_TOKEN_ACC: final, Metric.TF_LOSS: 0.1, Metric.FR_LOSS: 0.4, Metric.BEYOND_EXACT: longer}
            row |= {f"val_fr_exact_len_{n}": value for n, value in by_size.items()}
            row |= {f"val_tf_exact_len_{n}": forced_beyond if n > base.max_len else 1.0 for n in by_size}
            rows.append([{"step": 0, Metric.TRAIN_LOSS: 2.0}, row])
            lengths.append(by_size)
    return CompareSnapshot([arm.label for arm in arms], config.seeds, rows, lengths, 500, 500, 30.0, config)


def test_beyond_decides_on_exact_match_past_the_training_lengths() -> None:
    exact = {(0.5, "constant"): [0.9, 0.92, 0.95], (1.0, "constant"): [0.97, 0.96, 0.98]}
    ahead = finished("beyond", exact, {0.5: [0.30, 0.35, 0.32], 1.0: [0.10, 0.12, 0.11]},
                     told={0.5: [0.8] * 3, 1.0: [0.80, 0.85, 0.83]})
    assert (read_beyond(ahead).appeared, read_beyond(ahead).why) == (True, None)
    assert "Told the true length (−EOS), γ = 1 gets 82.7%" in read_beyond(ahead).text
    assert "deciding where to stop is much of what fails" in read_beyond(ahead).text
    assert PREDICTIONS["beyond"].outcome(ahead) == 0  # "γ = 0.5"
    past, spread, forced, told = (answer.facts for answer in answered("beyond", ahead))
    assert told == {"beyond_noise": True, "told_length_ahead": True}
    assert past["at_max_len"]["γ = 0.5"] == math.fsum([0.9, 0.92, 0.95]) / 3
    assert spread == {"ranges_overlap": False, "beyond_noise": True}
    assert forced == {"own_mistakes": {"γ = 1": True, "γ = 0.5": True}}  # teacher-forced 90% beyond, far above
    tie = finished("beyond", exact, {0.5: [0.0] * 3, 1.0: [0.0] * 3}, forced_beyond=0.0)
    assert read_beyond(tie).why is Why.WITHIN_NOISE and PREDICTIONS["beyond"].outcome(tie) == 2
    assert answered("beyond", tie)[2].facts == {"own_mistakes": {"γ = 1": False, "γ = 0.5": False}}
    assert answered("beyond", tie)[3].facts == {"beyond_noise": False, "told_length_ahead": False}
    assert "the stop decision is not what fails" in read_beyond(tie).text
    unlearned = finished("beyond", {key: [0.1] * 3 for key in exact})
    assert read_beyond(unlearned).why is Why.NOT_LEARNED


def probed(snapshot: CompareSnapshot, recovered: dict[str, list[float]], early: float, late: float) -> CompareSnapshot:
    """The run with a crafted probe per model: its overall recovery, and a recovery curve that is `early` in the
    first third of the output and `late` in the last."""
    curve = np.array([early] * 3 + [0.5] * 3 + [late] * 3)
    exposures = []
    for label in snapshot.labels:
        for seed, overall in enumerate(recovered[label]):
            zeros = np.zeros(9)
            recovery = Recovery(zeros + 0.1, zeros + 0.3, curve, zeros, zeros + 10, zeros + 10, overall)
            exposures.append(Exposure(f"{label}, seed {seed}", 500, recovery, None))
    return with_probe(snapshot, exposures)


def test_recovery_is_read_from_the_probe_by_arm_and_seed() -> None:
    run = finished("recovery", {(0.5, "constant"): [0.8] * 3, (1.0, "constant"): [0.8] * 3})
    assert read_recovery(run).appeared is None  # no probe yet: nothing to say
    assert answered("recovery", run) == [NOT_EVALUATED] * 3
    more = probed(run, {"γ = 0.5": [0.6, 0.62, 0.65], "γ = 1": [0.4, 0.45, 0.41]}, early=0.2, late=0.8)
    assert read_recovery(more).appeared is True and PREDICTIONS["recovery"].outcome(more) == 0
    often, position, added = (answer.facts for answer in answered("recovery", more))
    assert often == {"more_often": "γ = 0.5"}
    assert position == {"harder": {"γ = 1": "early", "γ = 0.5": "early"}}
    assert added["added_error"]["γ = 1"] == 0.3 - 0.1
    same = probed(run, {"γ = 0.5": [0.5, 0.52, 0.49], "γ = 1": [0.51, 0.5, 0.5]}, early=0.5, late=0.5)
    assert read_recovery(same).why is Why.WITHIN_NOISE and answered("recovery", same)[1].facts == {
        "harder": {"γ = 1": "same", "γ = 0.5": "same"}}


def test_regimes_name_the_order_and_when_it_is_not_the_papers() -> None:
    papers = {(0.0, "constant"): [0.2, 0.25, 0.22], (1.0, "constant"): [0.6, 0.62, 0.65],
              (1.0, "inverse_sigmoid"): [0.8, 0.83, 0.85]}
    run = finished("regimes", papers)
    assert read_regimes(run).appeared is True and PREDICTIONS["regimes"].outcome(run) == 2
    _, order, noise = (answer.facts for answer in answered("regimes", run))
    assert order == {"order": ("the schedule", "teacher forcing", "always sampling"), "paper_order": True}
    assert noise == {"beyond_noise": {"teacher forcing": True, "the schedule": True}}
    forcing_best = finished("regimes", papers | {(1.0, "inverse_sigmoid"): [0.4, 0.42, 0.41]})
    reading = read_regimes(forcing_best)
    assert (reading.appeared, reading.why) == (False, Why.OPPOSITE)
    assert PREDICTIONS["regimes"].outcome(forcing_best) == 1
    assert answered("regimes", forcing_best)[1].facts["paper_order"] is False
    tied = finished("regimes", {key: [0.5, 0.52, 0.51] for key in papers})
    assert read_regimes(tied).why is Why.WITHIN_NOISE and PREDICTIONS["regimes"].outcome(tied) == 3


def test_an_interval_of_a_share_or_a_difference_of_shares_stays_possible() -> None:
    wide = mean_ci([0.9, 1.0, 1.0], bounds=SHARE)
    assert wide.high == 1.0 and wide.clipped and wide.low < 0.9
    free = mean_ci([0.9, 1.0, 1.0])
    assert free.high > 1.0 and not free.clipped  # the t interval itself leaves the range
    inside = mean_ci([0.4, 0.5, 0.6], bounds=SHARE)
    assert not inside.clipped and 0.0 < inside.low < inside.high < 1.0
    difference = paired_test([1.0, 0.4, 1.0], [0.0, 0.0, 0.0], SHARE_DIFFERENCE).difference
    assert difference.high == 1.0 and difference.clipped
