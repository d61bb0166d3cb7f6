"""Lesson 10, LSTM or Transformer?: the recurrent model against the Transformer on the same task, batches, budget
and about the same number of parameters, with sinusoidal against learned positions, over 3 seeds; its reading,
answers and prediction decide on free-running exact match, paired by seed, and say what each keeps beyond the
training lengths (Delétang et al. 2023 find both fail there on reverse)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from playground.core.config import TrainConfig
from playground.course.evidence import (
    LEARNED,
    NOT_EVALUATED,
    NOT_YET,
    Answer,
    Contrast,
    Lesson,
    Prediction,
    Reading,
    Why,
    beyond_spread,
    contrast_on,
    per_seed,
)
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.reports.comparison_table import LENGTHS, summary_rows
from playground.reports.readings import share
from playground.training.metrics import Metric

GENERALISES = 0.5  # exact match beyond the training lengths from which a model is said to carry the task there
RNN, SINUSOIDAL = {"architecture": "rnn"}, {"architecture": "transformer", "positions": "sinusoidal"}
LEARNED_POSITIONS = {"architecture": "transformer", "positions": "learned"}
ARCHITECTURES = TrainConfig(min_len=4, max_len=10, test_max_len=16, emb_dim=128, hidden_dim=64, heads=2, steps=400,
                            eval_every=50, val_size=200)  # about equal parameters: the LSTM's 64 units, d_model 128


def _exact(snapshot: CompareSnapshot, arm: int) -> list[float]:
    return per_seed(snapshot, arm, Metric.FR_EXACT)


def architecture_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    """The Transformer (sinusoidal positions) against the LSTM, on free-running exact match."""
    return contrast_on(snapshot, RNN, SINUSOIDAL, ("the LSTM", "the Transformer"), _exact, "free-running exact match")


def positions_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    """The Transformer's learned positions against its sinusoidal ones, on free-running exact match."""
    return contrast_on(snapshot, SINUSOIDAL, LEARNED_POSITIONS, ("sinusoidal positions", "learned positions"), _exact,
                       "free-running exact match")


def steps_to_ninety(snapshot: CompareSnapshot) -> dict[str, int | None]:
    """Each arm's first evaluated step at which its seeds' mean free-running exact match reaches 90%."""
    return {row["label"]: row["steps_to_90"] for row in summary_rows(snapshot)}


def beyond_training(snapshot: CompareSnapshot) -> dict[str, float]:
    """Each arm's free-running exact match beyond the training lengths, the mean over its seeds (arms whose
    validation tests no longer sizes are left out)."""
    return {row["label"]: row[Metric.BEYOND_EXACT] for row in summary_rows(snapshot)
            if not math.isnan(row[Metric.BEYOND_EXACT])}


def read_lstm_or_transformer(snapshot: CompareSnapshot) -> Reading:
    """A question with an honest answer either way: which learns faster, which is more often right, and does
    either carry the task beyond the training lengths?"""
    found = architecture_contrast(snapshot)
    if found is None:
        return NOT_YET
    speed = "; ".join(f"{label} at step {step}" if step is not None else f"{label} never within {snapshot.step} steps"
                      for label, step in steps_to_ninety(snapshot).items())
    positions = positions_contrast(snapshot)
    on_positions = f" Positions: {positions.test}." if positions is not None else ""
    beyond = beyond_training(snapshot)
    base = snapshot.config.base
    longer = (f" Beyond the training lengths ({base.max_len + 1} to {base.size_range().tested} tokens), exact match: "
              + "; ".join(f"{label} {share(value)}" for label, value in beyond.items()) + "." if beyond else "")
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


def _first_to_ninety(snapshot: CompareSnapshot) -> Answer:
    reached = steps_to_ninety(snapshot)
    if not reached:
        return NOT_EVALUATED
    done = {label: step for label, step in reached.items() if step is not None}
    never = "; ".join(f"{label} never did in {snapshot.step} steps" for label, step in reached.items() if step is None)
    if not done:
        return Answer(f"No model reached 90% free-running exact match (seed mean) in {snapshot.step} steps: train "
                      "longer.", {"first": None})
    first = min(done, key=lambda label: done[label])
    return Answer("First to 90% free-running exact match (seed mean): " + "; ".join(
        f"{label} at step {step}" for label, step in sorted(done.items(), key=lambda item: item[1]))
        + (f"; {never}" if never else "") + f". {first} was first.", {"first": first, "steps": reached})


def _positions_and_longer(snapshot: CompareSnapshot) -> Answer:
    found = positions_contrast(snapshot)
    if found is None:
        return NOT_EVALUATED
    base = snapshot.config.base
    beyond = beyond_training(snapshot)
    longer = ("Beyond the training lengths: " + "; ".join(f"{label} {share(value)}" for label, value in beyond.items())
              + "." if beyond else "This run tests the training lengths only.")
    return Answer(f"On the training lengths ({base.min_len} to {base.max_len} tokens): {found.names[0]} "
                  f"{share(statistics.fmean(found.first))}, {found.names[1]} {share(statistics.fmean(found.second))}; "
                  f"{found.test}, so {'more than' if found.clear else 'within'} seed noise. {longer} Learned positions "
                  "have rows that no step trained beyond the training lengths, sinusoidal positions give angles the "
                  "model never saw; on reverse both architectures are known to fail there (Delétang et al. 2023).",
                  {"beyond_noise": found.clear, "beyond_training": beyond})


def _spread(snapshot: CompareSnapshot) -> Answer:
    found = architecture_contrast(snapshot)
    return NOT_EVALUATED if found is None else beyond_spread(snapshot, found)


def _outcome(snapshot: CompareSnapshot) -> int | None:
    found = architecture_contrast(snapshot)
    return None if found is None else found.ranked(0.0)


ARCHITECTURE_LESSON = Lesson(
    "lstm_or_transformer", "10. LSTM or Transformer?",
    "Transformers replaced recurrent models almost everywhere. Here both learn the same task on the same batches "
    "for the same number of steps, at about the same number of parameters: an LSTM reading one token after "
    "another, and a Transformer in which every position attends to every other, once with sinusoidal positions "
    "and once with learned ones (3 seeds each). Validation also holds sources longer than any in training. Watch "
    "how fast each reaches 90% exact match and what happens beyond the training lengths, then open a "
    "Transformer on the Hidden states page to see its heads.",
    ("Which model reaches 90% free-running exact match first?",
     "At the end, is the difference larger than the spread between seeds?",
     "Do sinusoidal and learned positions differ here? What would happen on sequences longer than any in "
     "training?"),
    CompareConfig.build(ARCHITECTURES, (1.0,), seeds=3,
                        variants=((), (), (), ("rnn", "transformer"), ("sinusoidal", "learned"))),
    (Metric.FR_EXACT, LENGTHS, Metric.TRAIN_LOSS),
    read_lstm_or_transformer)

ARCHITECTURE_ANSWERS: dict[str, tuple[Callable[[CompareSnapshot], Answer], ...]] = {
    ARCHITECTURE_LESSON.key: (_first_to_ninety, _spread, _positions_and_longer)}

ARCHITECTURE_PREDICTIONS: dict[str, Prediction] = {
    ARCHITECTURE_LESSON.key: Prediction(
        "Which will end with more sequences exactly right, at about the same number of parameters?",
        ("the Transformer", "the LSTM", "about the same (within seed noise)"), _outcome)}
