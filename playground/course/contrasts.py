"""The seeded lessons on the model family: two arms over the same seeds, compared by a paired test, and what each
reading says from that comparison (`answers.py` answers the same comparison's questions); and what every lesson's
reading is made of."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from enum import StrEnum

from playground.experiments.comparison import CompareSnapshot
from playground.experiments.statistics import evaluated, mean_exact_by_length, paired_test
from playground.reports.comparison_table import summary_rows
from playground.reports.readings import points
from playground.training.metrics import Metric

CLEAR = 0.02  # two points of accuracy: smaller differences are within seed noise at these sizes
CEILING = 0.97  # free-running token accuracy above which every arm is near perfect and nothing can differ
LEARNED = 0.5  # teacher-forced token accuracy below which a run has not learned enough to say anything
GENERALISES = 0.5  # exact match beyond the training lengths from which a model is said to carry the task there


class Why(StrEnum):
    """Why a lesson's expected effect did not appear in a run: the reason its reading gives, as data."""

    NOT_LEARNED = "not learned"  # the run is too short for the effect to show
    TOO_EASY = "too easy"  # every arm is near perfect, so nothing can differ
    WITHIN_NOISE = "within noise"  # the difference is one a different seed could change
    NOT_DECAYED = "not decayed"  # a schedule was still mostly teacher forcing at the end
    OPPOSITE = "opposite"  # the other arm is ahead, beyond noise
    ENOUGH_CAPACITY = "enough capacity"  # the final state holds even the longest outputs
    LOW_AT_EVERY_LENGTH = "low at every length"  # too little training, not the bottleneck
    NOISY_LEAD = "noisy lead"  # the expected arm leads, but the seeds disagree too much
    NO_LEAD = "no lead"  # the expected arm does not lead


@dataclass(frozen=True)
class Reading:
    """Whether the lesson's expected effect appeared in this run, and the sentences that say so from its numbers;
    `why` is the reason it gives when the effect did not appear."""

    appeared: bool | None  # None: too early to say
    text: str
    why: Why | None = None


def _arm_of(snapshot: CompareSnapshot, **settings: object) -> int | None:
    """The arm whose settings (ratio, schedule, cell, attention, reverse_source) include these: arms are found by
    what they are, never by their label."""
    for index, arm in enumerate(snapshot.config.arms()):
        if all(arm.settings()[name] == value for name, value in settings.items()):
            return index
    return None


def _per_seed(snapshot: CompareSnapshot, arm: int, name: str) -> list[float]:
    """An arm's final value of a metric on each seed (the seeds evaluated so far)."""
    return [evaluated(rows)[-1][name] for rows in snapshot.arm_rows(arm) if evaluated(rows)]


def _long_exact(snapshot: CompareSnapshot, arm: int, lengths: list[int]) -> list[float]:
    """Free-running exact match over the given output lengths, one value per seed."""
    by_seed = snapshot.exact_by_length[arm * snapshot.seeds:(arm + 1) * snapshot.seeds]
    return [statistics.fmean(d[n] for n in lengths) for d in by_seed if all(n in d for n in lengths)]


def _versus(name_a: str, a: list[float], name_b: str, b: list[float], what: str) -> tuple[float, str, bool]:
    """The paired difference a - b over seeds, a sentence with its 95% interval, and whether it is more than
    seed noise (paired t-test, same seed = same initial weights, batches and coins)."""
    test = paired_test(a, b)
    interval = test.difference
    sentence = (f"{name_a} minus {name_b}, {what}: {points(interval.mean)} on average over {interval.n} seeds "
                f"(95% interval {points(interval.low)} to {points(interval.high)}, paired t-test p = {test.p:.3f})")
    return interval.mean, sentence, interval.n >= 2 and not test.within_noise


NOT_YET = Reading(None, "No evaluation yet: the reading appears when the run has been evaluated.")


@dataclass(frozen=True)
class Contrast:
    """Two arms of a seeded lesson on one figure, over the same seeds: what its reading and its answers both say."""

    arms: tuple[int, int]  # the first arm's index, the second's
    names: tuple[str, str]
    what: str  # the figure compared
    first: list[float]  # one value per seed
    second: list[float]
    lead: float  # second minus first, the mean over seeds
    clear: bool  # more than seed noise (paired t-test)
    test: str  # the paired difference, its interval and p
    numbers: str  # the figures and the test, as the reading states them

    def ranked(self, margin: float) -> int:
        """0: the second arm is ahead beyond noise by at least `margin`; 1: the first is; 2: neither."""
        return 0 if self.clear and self.lead >= margin else 1 if self.clear and self.lead <= -margin else 2


def attention_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    """Attention against none on the longest third of the output lengths (None before every seed is evaluated)."""
    plain, attending = _arm_of(snapshot, attention="none"), _arm_of(snapshot, attention="dot")
    if plain is None or attending is None:
        return None
    lengths = sorted(mean_exact_by_length(snapshot, plain).index)
    if len(lengths) < 2 or len(_per_seed(snapshot, attending, Metric.FR_EXACT)) < snapshot.seeds:
        return None
    long = lengths[-max(len(lengths) // 3, 1):]
    without, with_attention = _long_exact(snapshot, plain, long), _long_exact(snapshot, attending, long)
    span = f"{long[0]} to {long[-1]}" if len(long) > 1 else f"{long[0]}"
    what = f"free-running exact match on outputs of {span} tokens"
    lead, sentence, clear = _versus("Attention", with_attention, "no attention", without, what)
    numbers = (f"After {snapshot.step} steps, outputs of {span} tokens are exactly right "
               f"{statistics.fmean(without):.1%} of the time without attention and "
               f"{statistics.fmean(with_attention):.1%} with it. {sentence}.")
    return Contrast((plain, attending), ("no attention", "attention"), what, without, with_attention, lead, clear,
                    sentence, numbers)


def read_attention_cure(snapshot: CompareSnapshot) -> Reading:
    """Expected: with attention, long outputs stay right where the final state alone fails."""
    found = attention_contrast(snapshot)
    if found is None:
        return NOT_YET
    if found.ranked(CLEAR) == 0:
        return Reading(True, f"{found.numbers} The expected effect appeared, beyond seed noise: reading every encoder "
                             "output, not only the final state, the decoder no longer has to squeeze the whole "
                             "sequence into one vector, so long outputs stay right. See the alignment on the Hidden "
                             "states page: each output step looks at the source token it reverses.")
    if statistics.fmean(found.second) < LEARNED and statistics.fmean(found.first) < LEARNED:
        why = Why.NOT_LEARNED
        reason = "neither model has learned the long outputs yet: train for more steps"
    elif found.lead >= CLEAR:
        why = Why.NOISY_LEAD
        reason = "attention leads, but the seeds disagree too much to call it more than noise; run more steps"
    else:
        why = Why.NO_LEAD
        reason = ("attention does not lead on long outputs in this run: the final state still holds these lengths, "
                  "or attention has not yet learned where to look (its alignment is still flat)")
    return Reading(False, f"{found.numbers} The expected effect did not appear clearly: {reason}.", why)


def _two_arms(snapshot: CompareSnapshot, setting: str, first: str, second: str,
              names: tuple[str, str]) -> Contrast | None:
    """The second arm against the first on free-running exact match (None before every seed is evaluated)."""
    return _contrast(snapshot, _arm_of(snapshot, **{setting: first}), _arm_of(snapshot, **{setting: second}), names)


def _contrast(snapshot: CompareSnapshot, a: int | None, b: int | None, names: tuple[str, str]) -> Contrast | None:
    if a is None or b is None:
        return None
    values_a, values_b = _per_seed(snapshot, a, Metric.FR_EXACT), _per_seed(snapshot, b, Metric.FR_EXACT)
    if len(values_a) < snapshot.seeds or len(values_b) < snapshot.seeds:
        return None
    what = "free-running exact match"
    lead, sentence, clear = _versus(names[1], values_b, names[0], values_a, what)
    numbers = (f"After {snapshot.step} steps, {names[0]} gets {statistics.fmean(values_a):.1%} of validation "
               f"sequences exactly right free-running, {names[1]} {statistics.fmean(values_b):.1%}. {sentence}.")
    return Contrast((a, b), names, what, values_a, values_b, lead, clear, sentence, numbers)


def reversal_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    """The source reversed against in order, on free-running exact match."""
    return _two_arms(snapshot, "reverse_source", "off", "on", ("the source in order", "the source reversed"))


def cell_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    """The GRU against the LSTM, on free-running exact match."""
    return _two_arms(snapshot, "cell", "lstm", "gru", ("the LSTM", "the GRU"))


def architecture_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    """The Transformer (sinusoidal positions) against the LSTM, on free-running exact match."""
    a, b = _arm_of(snapshot, architecture="rnn"), _arm_of(snapshot, architecture="transformer",
                                                          positions="sinusoidal")
    return _contrast(snapshot, a, b, ("the LSTM", "the Transformer"))


def positions_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    """The Transformer's learned positions against its sinusoidal ones, on free-running exact match."""
    a, b = (_arm_of(snapshot, architecture="transformer", positions=kind) for kind in ("sinusoidal", "learned"))
    return _contrast(snapshot, a, b, ("sinusoidal positions", "learned positions"))


def steps_to_ninety(snapshot: CompareSnapshot) -> dict[str, int | None]:
    """Each arm's first evaluated step at which its seeds' mean free-running exact match reaches 90%."""
    return {row["label"]: row["steps_to_90"] for row in summary_rows(snapshot)}


def beyond_training(snapshot: CompareSnapshot) -> dict[str, float]:
    """Each arm's free-running exact match beyond the training lengths, the mean over its seeds (arms whose
    validation tests no longer sizes are left out)."""
    return {row["label"]: row[Metric.BEYOND_EXACT] for row in summary_rows(snapshot)
            if not math.isnan(row[Metric.BEYOND_EXACT])}


def read_lstm_or_transformer(snapshot: CompareSnapshot) -> Reading:
    """A question with an honest answer either way: on the same task, budget and about the same number of
    parameters, which learns faster, which is more often right, and does either carry the task beyond the
    training lengths?"""
    found = architecture_contrast(snapshot)
    if found is None:
        return NOT_YET
    reached = steps_to_ninety(snapshot)
    speed = "; ".join(f"{label} at step {step}" if step is not None else f"{label} never within {snapshot.step} steps"
                      for label, step in reached.items())
    positions = positions_contrast(snapshot)
    on_positions = f" Positions: {positions.test}." if positions is not None else ""
    beyond = beyond_training(snapshot)
    base = snapshot.config.base
    longer = (f" Beyond the training lengths ({base.max_len + 1} to {base.size_range().tested} tokens), exact match: "
              + "; ".join(f"{label} {value:.1%}" for label, value in beyond.items()) + "." if beyond else "")
    numbers = f"{found.numbers} Reaching 90% exact match: {speed}.{on_positions}{longer}"
    if max(statistics.fmean(found.first), statistics.fmean(found.second)) < LEARNED:
        return Reading(False, f"{numbers} Neither model has learned the task yet (both under {LEARNED:.0%}): train "
                              "longer before ranking them.", Why.NOT_LEARNED)
    if not beyond:
        limit = "This run tests the training lengths only, so it says nothing about longer sequences."
    elif max(beyond.values()) < GENERALISES:
        limit = ("Neither architecture carries reverse beyond the lengths it was trained on, the finding of Delétang "
                 "et al. (2023) for both; learned positions have rows no step ever trained there, and sinusoidal "
                 "ones give angles the model never saw.")
    else:
        limit = (f"{max(beyond, key=lambda label: beyond[label])} keeps {max(beyond.values()):.0%} beyond the "
                 "training lengths in this run: worth checking over more seeds, as Delétang et al. (2023) find both "
                 "architectures fail there on reverse.")
    if found.clear:
        winner = found.names[1] if found.lead > 0 else found.names[0]
        return Reading(True, f"{numbers} On the training lengths the difference is more than seed noise: {winner} did "
                             f"better on this task and budget. {limit}")
    return Reading(False, f"{numbers} On the training lengths the difference is within seed noise: the two cannot be "
                          f"ranked by accuracy here; compare their speed instead. {limit}", Why.WITHIN_NOISE)


def read_reversal(snapshot: CompareSnapshot) -> Reading:
    """Expected (Sutskever et al. 2014): reading the source backwards helps a copy, whose first outputs are its
    first inputs, which a reversed reading puts right before the decoder starts."""
    found = reversal_contrast(snapshot)
    if found is None:
        return NOT_YET
    ranked = found.ranked(CLEAR)
    if ranked == 0:
        return Reading(True, f"{found.numbers} The expected effect appeared, beyond seed noise: reversed, the first "
                             "source token is the last the encoder reads, so the first output depends on something "
                             "one step back instead of a whole sequence back; the short dependencies make learning "
                             "easier.")
    if ranked == 1:
        why = Why.OPPOSITE
        reason = ("reversal hurt here, beyond noise: on this task the dependencies reversal shortens are not the ones "
                  "that were hard")
    elif min(found.second) >= CEILING:
        why = Why.TOO_EASY
        reason = "both orders are near perfect, so the task is too easy for the order to matter"
    else:
        why = Why.WITHIN_NOISE
        reason = ("the difference is within seed noise: with an LSTM this size the long dependency is learnable "
                  "either way in this many steps, which is the honest answer for this run")
    return Reading(False, f"{found.numbers} The expected effect did not appear clearly: {reason}.", why)


def read_gru_or_lstm(snapshot: CompareSnapshot) -> Reading:
    """A question, not a prediction: on the same budget, does the cell matter? Often it does not."""
    found = cell_contrast(snapshot)
    if found is None:
        return NOT_YET
    if found.clear:
        winner = found.names[1] if found.lead > 0 else found.names[0]
        return Reading(True, f"{found.numbers} The difference is more than seed noise: {winner} did better on this "
                             "task and budget. The GRU has a quarter fewer weights and no separate cell state, which "
                             "can make it learn faster early; the LSTM's cell can carry information further.")
    return Reading(False, f"{found.numbers} The difference is within seed noise: on this task and budget the two "
                          "cells cannot be ranked, which is the usual finding (Chung et al. 2014; Jozefowicz et al. "
                          "2015); choose by speed or size.", Why.WITHIN_NOISE)
