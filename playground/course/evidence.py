"""What every lesson's reading and answers are made of: a reading's verdict and reason as data, a paired contrast
of two arms over seeds, an answer with the facts it was decided from, and the prediction asked before a run."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.experiments.statistics import SHARE_DIFFERENCE, by_step, evaluated, paired_test
from playground.inspection.exposure import Exposure, examine
from playground.reports.readings import points, share
from playground.training.metrics import Metric
from playground.training.trainer import TrainedModel

HALF = 0.5  # "falls": the training loss reaches half of its first logged value

CLEAR = 0.02  # two points of accuracy: smaller differences are within seed noise at these sizes
CEILING = 0.97  # free-running token accuracy above which every arm is near perfect and nothing can differ
LEARNED = 0.5  # teacher-forced token accuracy below which a run has not learned enough to say anything
LESSON_PROBED_EXAMPLES = 300  # validation examples each model's probe reads in a lesson that reads probes


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


@dataclass(frozen=True)
class Lesson:
    """One guided experiment; `read` turns the finished run's snapshot into what it showed."""

    key: str
    title: str
    story: str  # markdown: what the student is about to see, and why it matters
    questions: tuple[str, ...]  # answered from the live charts, before the reading
    config: CompareConfig
    charts: tuple[str, ...]  # keys of CHART_TITLES, drawn in this order
    read: Callable[[CompareSnapshot], Reading]
    probed: bool = False  # its reading and answers need each model's recovery probe (a `ProbedSnapshot`)


@dataclass
class ProbedSnapshot(CompareSnapshot):
    """A finished comparison with each model's recovery probe, in model order (arm-major, seed-minor)."""

    exposures: list[Exposure] = field(default_factory=list)


def with_probe(snapshot: CompareSnapshot, exposures: list[Exposure]) -> ProbedSnapshot:
    return ProbedSnapshot(**vars(snapshot), exposures=exposures)


def read_from(lesson: Lesson, snapshot: CompareSnapshot, models: Callable[[], list[TrainedModel]]) -> CompareSnapshot:
    """What a lesson's reading and answers read (the page's and the CLI's alike): the finished run's snapshot,
    with each model's recovery probe where the lesson reads probes (`models` loads them only then)."""
    if not lesson.probed:
        return snapshot
    return with_probe(snapshot, examine(models(), LESSON_PROBED_EXAMPLES, drift=False))


def arm_with(snapshot: CompareSnapshot, **settings: object) -> int | None:
    """The arm whose settings (ratio, schedule, cell, attention, reverse_source) include these: arms are found by
    what they are, never by their label."""
    for index, arm in enumerate(snapshot.config.arms()):
        if all(arm.settings()[name] == value for name, value in settings.items()):
            return index
    return None


def per_seed(snapshot: CompareSnapshot, arm: int, name: str) -> list[float]:
    """An arm's final value of a metric on each seed (the seeds evaluated so far)."""
    return [evaluated(rows)[-1][name] for rows in snapshot.arm_rows(arm) if evaluated(rows)]


def versus(name_a: str, a: list[float], name_b: str, b: list[float], what: str) -> tuple[float, str, bool]:
    """The paired difference a - b over seeds, a sentence with its 95% interval, and whether it is more than
    seed noise (paired t-test, same seed = same initial weights, batches and coins)."""
    test = paired_test(a, b, SHARE_DIFFERENCE)
    interval = test.difference
    sentence = (f"{name_a} minus {name_b}, {what}: {points(interval.mean)} on average over {interval.n} seeds "
                f"(95% interval {points(interval.low)} to {points(interval.high)}"
                + (", cut to the possible range" if interval.clipped else "") + f", paired t-test p = {test.p:.3f})")
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


def contrast_on(snapshot: CompareSnapshot, first: dict[str, object], second: dict[str, object],
                names: tuple[str, str], values: Callable[[CompareSnapshot, int], list[float]],
                what: str) -> Contrast | None:
    """The second arm against the first on `values` (one per seed), once every seed of both has one."""
    a, b = arm_with(snapshot, **first), arm_with(snapshot, **second)
    if a is None or b is None:
        return None
    values_a, values_b = values(snapshot, a), values(snapshot, b)
    if len(values_a) < snapshot.seeds or len(values_b) < snapshot.seeds:
        return None
    lead, sentence, clear = versus(names[1], values_b, names[0], values_a, what)
    numbers = (f"After {snapshot.step} steps, {what}: {names[0]} {share(statistics.fmean(values_a))}, {names[1]} "
               f"{share(statistics.fmean(values_b))} (mean over {len(values_a)} seeds). Paired by seed: {sentence}.")
    return Contrast((a, b), names, what, values_a, values_b, lead, clear, sentence, numbers)


@dataclass(frozen=True)
class Answer:
    """One question answered from a run: the sentences, and the figures and verdicts they were decided from."""

    text: str
    facts: Mapping[str, object] = field(default_factory=dict)


NOT_EVALUATED = Answer("The run was not evaluated.")


@dataclass(frozen=True)
class Prediction:
    """What a student commits to before a lesson runs (predicting first makes a demonstration teach more), and
    which choice the finished run bears out (None: too early to say)."""

    question: str
    choices: tuple[str, ...]
    outcome: Callable[[CompareSnapshot], int | None]


def loss_falls(setting: str, reasons: Mapping[object, str]) -> Callable[[CompareSnapshot], Answer]:
    """The answer to "whose training loss falls first": the first step at which each arm's seed-mean training loss
    reaches half of its first value, then the reason for that order, only where the run bears it out: `reasons`
    maps a value of the arms' `setting` to the reason given when the arms that fell first all have that value."""
    def reason(snapshot: CompareSnapshot, first: list[str]) -> str | None:
        arms = snapshot.config.arms()
        values = {arms[snapshot.labels.index(label)].settings()[setting] for label in first}
        return reasons.get(values.pop()) if len(values) == 1 else None

    def answer(snapshot: CompareSnapshot) -> Answer:
        firsts: dict[str, int | None] = {}
        for arm, label in enumerate(snapshot.labels):
            loss = by_step(snapshot.arm_rows(arm), lambda row: row.get(Metric.TRAIN_LOSS)).mean(axis=1)
            if len(loss):
                fallen = loss.index[loss <= HALF * loss.iloc[0]]
                firsts[label] = int(fallen[0]) if len(fallen) else None
        reached = {label: step for label, step in firsts.items() if step is not None}
        if not reached:
            return Answer("No model's training loss fell to half of its first value in this run: train longer.",
                          {"halved_at": firsts})
        step = min(reached.values())
        first = [label for label, reached_at in reached.items() if reached_at == step]
        others = "; ".join(f"{label} at step {at}" if at is not None else f"{label} never did"
                           for label, at in firsts.items() if label not in first)
        why = reason(snapshot, first)
        facts = {"halved_at": firsts, "first": tuple(first), "reason_given": why is not None}
        why = why or "No reason is given: this run's order is not the one a known cause predicts."
        if len(first) > 1:
            return Answer(f"{' and '.join(first)} fell to half of their starting training loss at the same logged "
                          f"step, {step}" + (f" ({others})" if others else "") + f": this run cannot tell them apart. "
                          f"{why}", facts)
        return Answer(f"{first[0]}'s training loss fell to half of its start first, at step {step} ({others}). {why}",
                      facts)
    return answer


def beyond_spread(snapshot: CompareSnapshot, found: Contrast) -> Answer:
    ranges = [(min(values), max(values)) for values in (found.first, found.second)]
    overlap = ranges[0][0] <= ranges[1][1] and ranges[1][0] <= ranges[0][1]
    spread = "; ".join(f"{name}'s seeds span {share(low)} to {share(high)}"
                       for name, (low, high) in zip(found.names, ranges, strict=True))
    return Answer(f"On {found.what}, {spread}: the ranges {'overlap' if overlap else 'do not overlap'}. Paired by "
                  f"seed, {found.test}, so the difference is {'more than' if found.clear else 'within'} seed noise.",
                  {"ranges_overlap": overlap, "beyond_noise": found.clear})
