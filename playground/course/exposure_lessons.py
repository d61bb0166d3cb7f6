"""Three lessons on where exposure bias lives: lengths never trained on (Newman et al. 2020), one wrong token
(He et al. 2021), and the three training regimes of Bengio et al. (2015, Table 1) at toy scale.

Each compares arms over 3 seeds on the same batches and decides on one named measure, paired by seed: its
reading, its answers and its prediction's outcome all read the same `Contrast`, so they cannot disagree.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy as np

from playground.core.config import TrainConfig
from playground.course.evidence import (
    CLEAR,
    LEARNED,
    NOT_EVALUATED,
    NOT_YET,
    Answer,
    Contrast,
    Lesson,
    Prediction,
    ProbedSnapshot,
    Reading,
    Why,
    arm_with,
    beyond_spread,
    contrast_on,
    loss_falls,
    per_seed,
    versus,
)
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.experiments.statistics import evaluated, final_by_length, mean_exact_by_length
from playground.reports.comparison_table import GAP, LENGTHS
from playground.reports.readings import difference, points, share
from playground.training.metrics import Metric

BEYOND = TrainConfig(min_len=3, max_len=8, test_max_len=12, emb_dim=16, hidden_dim=64, steps=600, eval_every=100,
                     val_size=300)
RECOVERY = TrainConfig(min_len=4, max_len=12, emb_dim=16, hidden_dim=48, steps=500, eval_every=100, val_size=300)
REGIMES = RECOVERY.replace(steps=600, decay_steps=500, sigmoid_k=60.0)
FED_TRUTH = "The more often a decoder is fed the true previous token, the easier each training step is."


def _final(name: str) -> Callable[[CompareSnapshot, int], list[float]]:
    def values(snapshot: CompareSnapshot, arm: int) -> list[float]:
        return [value for value in per_seed(snapshot, arm, name) if not np.isnan(value)]
    return values


def _recovered(snapshot: CompareSnapshot, arm: int) -> list[float]:
    """Each seed's share of injected wrong tokens after which every later token was right."""
    if not isinstance(snapshot, ProbedSnapshot):
        return []
    label = snapshot.labels[arm]
    return [exposure.recovery.overall for exposure in snapshot.exposures if exposure.arm == label]


FORCED = {"ratio": 1.0, "schedule": "constant", "eos": "predict"}
HALF_FORCED = {"ratio": 0.5, "schedule": "constant", "eos": "predict"}
TOLD_LENGTH = {"ratio": 1.0, "schedule": "constant", "eos": "oracle"}  # Newman et al.'s -EOS
SAMPLED, SCHEDULED = {"ratio": 0.0, "schedule": "constant"}, {"schedule": "inverse_sigmoid"}


def beyond_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    base = snapshot.config.base
    return contrast_on(snapshot, FORCED, HALF_FORCED, ("γ = 1", "γ = 0.5"), _final(Metric.BEYOND_EXACT),
                       f"free-running exact match on sources of {base.max_len + 1} to {base.test_max_len} tokens")


def eos_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    """γ = 1 told the true length (-EOS) against deciding where to stop (+EOS), beyond the training lengths."""
    base = snapshot.config.base
    return contrast_on(snapshot, FORCED, TOLD_LENGTH, ("+EOS", "−EOS"), _final(Metric.BEYOND_EXACT),
                       f"γ = 1's free-running exact match on sources of {base.max_len + 1} to {base.test_max_len} "
                       "tokens")


def _stop_decision(snapshot: CompareSnapshot) -> str:
    """What telling γ = 1 the true length changes beyond the training lengths (Newman et al. 2020), as a sentence."""
    found = eos_contrast(snapshot)
    if found is None:
        return ""
    told, deciding = statistics.fmean(found.second), statistics.fmean(found.first)
    verdict = ("so deciding where to stop is much of what fails past the lengths it saw, as Newman et al. (2020) "
               "found" if found.ranked(CLEAR) == 0 else
               "so in this run the stop decision is not what fails past the lengths it saw: the tokens themselves go "
               "wrong" if found.ranked(CLEAR) == 2 else
               "so in this run being told the length hurt: the oracle model never learned when an output is done")
    return (f" Told the true length (−EOS), γ = 1 gets {share(told)} of the longer sources exactly right, against "
            f"{share(deciding)} when it must decide where to stop (+EOS); paired by seed, {found.test}, {verdict}.")


def recovery_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    return contrast_on(snapshot, FORCED, HALF_FORCED, ("γ = 1", "γ = 0.5"), _recovered,
                       "the share of single wrong tokens after which every later token is right")


def regime_contrasts(snapshot: CompareSnapshot) -> tuple[Contrast, Contrast] | None:
    """Teacher forcing against always sampling, and the schedule against teacher forcing: Bengio et al.'s
    ordering is both leads positive."""
    exact = _final(Metric.FR_EXACT)
    what = "free-running exact match"
    forcing = contrast_on(snapshot, SAMPLED, FORCED, ("always sampling", "teacher forcing"), exact, what)
    scheduled = contrast_on(snapshot, FORCED, SCHEDULED, ("teacher forcing", "the schedule"), exact, what)
    return None if forcing is None or scheduled is None else (forcing, scheduled)


def read_beyond(snapshot: CompareSnapshot) -> Reading:
    """Expected (Newman et al. 2020): neither model is right far beyond its training lengths, and practising on its
    own predictions does not fix it: the failure is deciding where to stop, not exposure bias."""
    found = beyond_contrast(snapshot)
    if found is None:
        return NOT_YET
    trained = max(statistics.fmean(per_seed(snapshot, arm, Metric.FR_EXACT)) for arm in found.arms)
    if trained < LEARNED:
        return Reading(False, f"{found.numbers} Decided on exact match beyond the training lengths, but not yet: "
                              f"even on the training lengths the best model gets only "
                              f"{share(trained)} exactly right: train longer before reading the lengths beyond.",
                       Why.NOT_LEARNED)
    if found.ranked(CLEAR) == 0:
        return Reading(True, f"{found.numbers} Decided on exact match beyond the training lengths: γ = 0.5 is "
                             "ahead beyond seed noise. Practising on its own predictions helped it past the lengths "
                             "it saw, which is exposure bias showing where Newman et al. place length failure."
                             + _stop_decision(snapshot))
    why = Why.OPPOSITE if found.ranked(CLEAR) == 1 else Why.WITHIN_NOISE
    return Reading(False, f"{found.numbers} Decided on exact match beyond the training lengths: "
                          + ("γ = 1 is ahead beyond seed noise, so feeding its own predictions cost γ = 0.5 more "
                             "than it taught it." if why == Why.OPPOSITE else
                             "the two are within seed noise, so in this run teacher forcing is not what stops the "
                             "model past its lengths.")
                          + (_stop_decision(snapshot) or " Compare both with the teacher-forced curve by length: "
                             "where it also falls, the model fails to decide where to stop (Newman et al.'s EOS "
                             "decision), which no γ fixes."),
                   why)


def read_recovery(snapshot: CompareSnapshot) -> Reading:
    """Expected (He et al. 2021): a teacher-forced model often recovers from one wrong token; γ < 1, trained on its
    own mistakes, recovers more often."""
    found = recovery_contrast(snapshot)
    if found is None:
        return NOT_YET
    if found.ranked(CLEAR) == 0:
        return Reading(True, f"{found.numbers} Decided on recovery: γ = 0.5, which met its own mistakes in training, "
                             "recovers more often beyond seed noise.")
    why = Why.OPPOSITE if found.ranked(CLEAR) == 1 else Why.WITHIN_NOISE
    return Reading(False, f"{found.numbers} Decided on recovery: "
                          + ("γ = 1 recovers more often, beyond seed noise." if why == Why.OPPOSITE else
                             "the two recover about as often, within seed noise.")
                          + " He et al. found the same self-recovery: a teacher-forced model is often able to carry "
                            "on correctly after one wrong token, so the damage of exposure bias is smaller than "
                            "feared.", why)


def read_regimes(snapshot: CompareSnapshot) -> Reading:
    """Expected (Bengio et al. 2015, Table 1): always sampling is far worse than teacher forcing, and the schedule
    is best."""
    found = regime_contrasts(snapshot)
    if found is None:
        return NOT_YET
    forcing, scheduled = found
    numbers = (f"{forcing.numbers} The schedule: {share(statistics.fmean(scheduled.second))}. "
               f"Paired by seed: {scheduled.test}.")
    if forcing.ranked(CLEAR) == 0 and scheduled.ranked(CLEAR) == 0:
        return Reading(True, f"{numbers} Decided on free-running exact match: the paper's ordering, each step beyond "
                             "seed noise: the schedule, then teacher forcing, then always sampling.")
    held = [f"{contrast.names[1]} above {contrast.names[0]}" for contrast in found if contrast.ranked(CLEAR) == 0]
    broken = [f"{contrast.names[1]} against {contrast.names[0]} "
              + ("is behind beyond noise" if contrast.ranked(CLEAR) == 1 else "is within seed noise")
              for contrast in found if contrast.ranked(CLEAR) != 0]
    return Reading(False, f"{numbers} Decided on free-running exact match, the ordering differs from the paper's: "
                          + "; ".join(broken) + (f" (what held: {'; '.join(held)})" if held else "")
                          + ". At this toy scale and length the paper's result is not reproduced in this run; its "
                            "tasks were larger and trained far longer.",
                   Why.OPPOSITE if any(contrast.ranked(CLEAR) == 1 for contrast in found) else Why.WITHIN_NOISE)


def _when(contrast: Callable[[CompareSnapshot], Contrast | None],
          answer: Callable[[CompareSnapshot, Contrast], Answer]) -> Callable[[CompareSnapshot], Answer]:
    def answered(snapshot: CompareSnapshot) -> Answer:
        found = contrast(snapshot)
        return NOT_EVALUATED if found is None else answer(snapshot, found)
    return answered


def _past_training(snapshot: CompareSnapshot, found: Contrast) -> Answer:
    base = snapshot.config.base
    falls = {}
    for name, arm in zip(found.names, found.arms, strict=True):
        curve = mean_exact_by_length(snapshot, arm)
        if base.max_len in curve.index and base.test_max_len in curve.index:
            falls[name] = (float(curve[base.max_len]), float(curve[base.test_max_len]))
    if not falls:
        return NOT_EVALUATED
    listing = "; ".join(f"{name} from {share(at_max)} at {base.max_len} tokens to {share(at_test)} at "
                        f"{base.test_max_len}" for name, (at_max, at_test) in falls.items())
    return Answer(f"Free-running exact match falls past the training lengths: {listing}.",
                  {"at_max_len": {name: pair[0] for name, pair in falls.items()},
                   "at_test_max_len": {name: pair[1] for name, pair in falls.items()}})


def _forced_beyond(snapshot: CompareSnapshot, found: Contrast) -> Answer:
    """Teacher-forced exact match beyond the training lengths: where it is low too, the model fails on its own
    at those lengths (the stop decision), not through its earlier mistakes."""
    base = snapshot.config.base
    beyond = {}
    for name, arm in zip(found.names, found.arms, strict=True):
        finals = [evaluated(rows)[-1] for rows in snapshot.arm_rows(arm) if evaluated(rows)]
        forced = final_by_length(finals, "val_tf")
        longer = [value for size, value in forced.items() if size > base.max_len]
        if longer:
            beyond[name] = statistics.fmean(longer)
    if not beyond:
        return NOT_EVALUATED
    free = dict(zip(found.names, map(statistics.fmean, (found.first, found.second)), strict=True))
    own_mistakes = {name: difference(beyond[name], free[name]) >= 0.1 for name in beyond}
    listing = "; ".join(f"{name} {share(beyond[name])} teacher-forced against {share(free[name])} free-running"
                        for name in beyond)
    cause = ("teacher-forced it is mostly right, so its own earlier mistakes cause the free-running failures"
             if all(own_mistakes.values()) else
             "teacher-forced it fails as often, so the model cannot do these lengths even with the true history: "
             "under greedy decoding an output that is right with the true history is right free-running too, so "
             "whole outputs fail for the model's own reasons at these lengths, not through exposure bias. Whether "
             "that reason is where it stops or the tokens themselves, the last question tells")
    return Answer(f"Beyond {base.max_len} tokens: {listing}. {cause[0].upper()}{cause[1:]}.",
                  {"own_mistakes": own_mistakes})


def _told_length(snapshot: CompareSnapshot) -> Answer:
    found = eos_contrast(snapshot)
    if found is None:
        return NOT_EVALUATED
    return Answer(_stop_decision(snapshot).strip(),
                  {"beyond_noise": found.clear, "told_length_ahead": found.ranked(CLEAR) == 0})


def _more_often(snapshot: CompareSnapshot, found: Contrast) -> Answer:
    ahead = found.ranked(0.0)
    return Answer(found.numbers, {"more_often": None if ahead == 2 else found.names[1 - ahead]})


def _by_position(snapshot: CompareSnapshot, found: Contrast) -> Answer:
    """Recovery after an early wrong token against a late one, averaged over each arm's seeds."""
    if not isinstance(snapshot, ProbedSnapshot):
        return NOT_EVALUATED
    harder = {}
    parts = []
    for name, arm in zip(found.names, found.arms, strict=True):
        curves = [exposure.recovery.recovery for exposure in snapshot.exposures
                  if exposure.arm == snapshot.labels[arm]]
        stacked = np.array([c[:min(map(len, curves))] for c in curves]) if curves else np.empty((0, 0))
        probed = ~np.isnan(stacked).all(axis=0)
        curve = np.nanmean(stacked[:, probed], axis=0) if probed.any() else np.empty(0)
        if len(curve) < 3:
            continue
        third = max(len(curve) // 3, 1)
        early, late = float(curve[:third].mean()), float(curve[-third:].mean())
        harder[name] = "early" if late - early >= CLEAR else "late" if early - late >= CLEAR else "same"
        parts.append(f"{name} recovers {share(early)} after a wrong token in the first third of the output, "
                     f"{share(late)} in the last third")
    if not parts:
        return NOT_EVALUATED
    return Answer("; ".join(parts) + ". An early wrong token leaves more tokens to get wrong after it, so all of "
                  "them being right is harder.", {"harder": harder})


def _own_mistakes_add(snapshot: CompareSnapshot, found: Contrast) -> Answer:
    if not isinstance(snapshot, ProbedSnapshot):
        return NOT_EVALUATED
    added = {}
    for name, arm in zip(found.names, found.arms, strict=True):
        probes = [exposure.recovery for exposure in snapshot.exposures if exposure.arm == snapshot.labels[arm]]
        added[name] = statistics.fmean(float(np.nanmean(probe.own_prefix_error - probe.true_prefix_error))
                                       for probe in probes)
    listing = "; ".join(f"{name} {points(value)}" for name, value in added.items())
    return Answer(f"Free-running from the start rather than after the true prefix, the error of the following tokens "
                  f"grows by, averaged over positions: {listing}. That is what the model's own earlier mistakes "
                  "add.", {"added_error": added})


def _ordering(snapshot: CompareSnapshot) -> Answer:
    found = regime_contrasts(snapshot)
    if found is None:
        return NOT_EVALUATED
    forcing, scheduled = found
    means = {forcing.names[0]: statistics.fmean(forcing.first), forcing.names[1]: statistics.fmean(forcing.second),
             scheduled.names[1]: statistics.fmean(scheduled.second)}
    order = sorted(means, key=means.__getitem__, reverse=True)
    paper = order == ["the schedule", "teacher forcing", "always sampling"]
    return Answer("Ranked by free-running exact match (mean over seeds): "
                  + ", ".join(f"{name} {share(means[name])}" for name in order)
                  + (": the paper's order." if paper else ": not the paper's order (the schedule, teacher forcing, "
                     "always sampling)."), {"order": tuple(order), "paper_order": paper})


def _regimes_beyond_noise(snapshot: CompareSnapshot) -> Answer:
    found = regime_contrasts(snapshot)
    if found is None:
        return NOT_EVALUATED
    return Answer(" ".join(f"Paired by seed, {contrast.test}: {'more than' if contrast.clear else 'within'} seed "
                           "noise." for contrast in found),
                  {"beyond_noise": {contrast.names[1]: contrast.clear for contrast in found}})


def _outcome(contrast: Callable[[CompareSnapshot], Contrast | None]) -> Callable[[CompareSnapshot], int | None]:
    def outcome(snapshot: CompareSnapshot) -> int | None:
        found = contrast(snapshot)
        return None if found is None else found.ranked(CLEAR)
    return outcome


def _regime_outcome(snapshot: CompareSnapshot) -> int | None:
    """0 always sampling, 1 teacher forcing, 2 the schedule: the arm ahead of both others beyond seed noise; 3 none."""
    arms = [arm_with(snapshot, **settings) for settings in (SAMPLED, FORCED, SCHEDULED)]
    values = [_final(Metric.FR_EXACT)(snapshot, arm) for arm in arms if arm is not None]
    if len(values) < 3 or any(len(seeds) < snapshot.seeds for seeds in values):
        return None
    for index, mine in enumerate(values):
        leads = [versus("", mine, "", other, "") for other_index, other in enumerate(values) if other_index != index]
        if all(lead >= CLEAR and clear for lead, _, clear in leads):
            return index
    return 3


EXPOSURE_LESSONS = (
    Lesson(
        "beyond", "7. Longer than it ever saw",
        "Every model so far was tested on the lengths it trained on. Here two models learn to reverse sequences of "
        "3 to 8 symbols and are tested up to 12: γ = 1 (always fed the truth) and γ = 0.5 (fed its own prediction "
        "half of the time), 3 seeds each on the same batches. Newman et al. (2020) found that models fail beyond "
        "their training lengths mostly because they learned where to stop: two more γ = 1 and γ = 0.5 models are "
        "told the true length (End of sequence: oracle, their −EOS), to show how much of the failure that is.",
        ("How does exact match change past length 8, for each model?",
         "Is the difference beyond length 8 larger than the spread between seeds?",
         "Teacher-forced, are the longer sequences right? What does that say about where the errors come from?",
         "Told the true length (−EOS), does γ = 1 get the longer sequences right?"),
        CompareConfig.build(BEYOND, (0.5, 1.0), seeds=3, variants=((), (), (), (), (), ("predict", "oracle"))),
        (LENGTHS, Metric.FR_EXACT, GAP, Metric.TRAIN_LOSS),
        read_beyond),
    Lesson(
        "recovery", "8. One wrong token: does it recover?",
        "Exposure bias says a teacher-forced model never learned to recover from its own mistakes. He et al. (2021) "
        "measured it directly: feed the true prefix, put one wrong token in, and see whether every later token is "
        "still right. Here γ = 1 and γ = 0.5 learn to reverse sequences of 4 to 12 symbols (3 seeds each); the "
        "probe then injects one wrong token at every output position of the validation examples.",
        ("After one wrong token, which model more often gets every later token right?",
         "Does a wrong token early in the output hurt more than a late one?",
         "Free-running from the start, how much error do the model's own earlier mistakes add?"),
        CompareConfig.build(RECOVERY, (0.5, 1.0), seeds=3),
        (Metric.FR_EXACT, GAP, Metric.TRAIN_LOSS),
        read_recovery, probed=True),
    Lesson(
        "regimes", "9. Three regimes",
        "Bengio et al. (2015, Table 1) trained the same model three ways: always teacher forcing (γ = 1), always "
        "sampling its own predictions (γ = 0), and scheduled sampling, which starts at γ = 1 and hands over to the "
        "model's own predictions along an inverse sigmoid. On their tasks always sampling was far worse and the "
        "schedule was best. Here the three learn to reverse sequences of 4 to 12 symbols (3 seeds each): does the "
        "ordering hold at toy scale?",
        ("Which regime's training loss falls first?",
         "Ranked by free-running exact match, is the ordering the paper's?",
         "Is each difference larger than the seed noise?"),
        CompareConfig.build(REGIMES, (0.0, 1.0), ("inverse_sigmoid",), seeds=3),
        (Metric.GAMMA, Metric.TRAIN_LOSS, Metric.FR_EXACT, GAP),
        read_regimes),
)

EXPOSURE_ANSWERS: dict[str, tuple[Callable[[CompareSnapshot], Answer], ...]] = {
    "beyond": (_when(beyond_contrast, _past_training), _when(beyond_contrast, beyond_spread),
               _when(beyond_contrast, _forced_beyond), _told_length),
    "recovery": (_when(recovery_contrast, _more_often),
                 _when(recovery_contrast, _by_position), _when(recovery_contrast, _own_mistakes_add)),
    "regimes": (loss_falls("ratio", {1.0: FED_TRUTH}), _ordering, _regimes_beyond_noise),
}

EXPOSURE_PREDICTIONS: dict[str, Prediction] = {
    "beyond": Prediction(
        "Beyond the training lengths, which model will get more sequences exactly right?",
        ("γ = 0.5", "γ = 1", "about the same (within seed noise)"), _outcome(beyond_contrast)),
    "recovery": Prediction(
        "After one wrong token, which model will more often get every later token right?",
        ("γ = 0.5", "γ = 1", "about the same (within seed noise)"), _outcome(recovery_contrast)),
    "regimes": Prediction(
        "Which regime will end with the most sequences exactly right free-running?",
        ("always sampling (γ = 0)", "teacher forcing (γ = 1)", "the inverse-sigmoid schedule",
         "no clear winner (within seed noise)"), _regime_outcome),
}
