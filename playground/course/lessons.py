"""Guided lessons: a story, a prepared comparison, questions, and a reading computed from the run's own numbers.

Each lesson is a `CompareConfig` small enough to show its point within about a minute on 2 CPU cores, trained by
the same `CompareEngine` as the Compare page. Its reading says whether the expected effect appeared in *this* run
and, when it did not, the likely reason, so a student never reads a conclusion the numbers do not support.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, replace

from playground.core.config import TrainConfig
from playground.core.tasks import TASKS
from playground.course.architecture_lesson import ARCHITECTURE_LESSON
from playground.course.evidence import (
    CEILING,
    CLEAR,
    LEARNED,
    NOT_YET,
    Contrast,
    Lesson,
    Reading,
    Why,
    arm_with,
    per_seed,
    versus,
)
from playground.course.exposure_lessons import EXPOSURE_LESSONS
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.experiments.statistics import evaluated, mean_exact_by_length
from playground.reports.comparison_table import GAP, LENGTHS, summary_rows
from playground.reports.readings import difference, points, trade_off
from playground.training.metrics import Metric

DECIDES = Metric.FR_EXACT  # what lesson 2's reading, answer and prediction rank the arms by
STEPS_ENV = "PLAYGROUND_LESSON_STEPS"  # tests: train every lesson this many steps instead of its own
def _final(snapshot: CompareSnapshot, name: str) -> dict[str, float]:
    """Each arm's final value of a metric, averaged over seeds (arms not evaluated yet are left out)."""
    return {row["label"]: row[name] for row in summary_rows(snapshot)}


def final_gamma(snapshot: CompareSnapshot) -> dict[str, float]:
    """Each arm's γ at its last training step (seed 0)."""
    gammas = {}
    for arm, label in enumerate(snapshot.labels):
        trained = [row for row in snapshot.arm_rows(arm)[0] if Metric.GAMMA in row]
        if trained:
            gammas[label] = trained[-1][Metric.GAMMA]
    return gammas


def read_exposure_bias(snapshot: CompareSnapshot) -> Reading:
    """Expected: γ = 1 has a wider teacher-forced vs free-running gap than γ = 0."""
    table = summary_rows(snapshot)
    forced, free = (next((row for row in table if row["ratio"] == ratio and row["schedule"] == "constant"), None)
                    for ratio in (1.0, 0.0))
    if forced is None or free is None:
        return Reading(None, "No evaluation yet: the reading appears when the run has been evaluated.")
    step = forced["step"]
    numbers = (f"After {step} steps, γ = 1 gets {forced[Metric.TF_TOKEN_ACC]:.1%} of tokens right teacher-forced "
               f"and {forced[Metric.FR_TOKEN_ACC]:.1%} free-running, a gap of {points(forced['gap'])}; γ = 0 gets "
               f"{free[Metric.TF_TOKEN_ACC]:.1%} and {free[Metric.FR_TOKEN_ACC]:.1%}, a gap of "
               f"{points(free['gap'])}.")
    if forced[Metric.TF_TOKEN_ACC] < LEARNED:
        return Reading(False, f"{numbers} γ = 1 has not learned enough yet (under {LEARNED:.0%} of tokens right even "
                              "when fed the truth) for its gap to mean anything: the run was too short for this "
                              "task; train for more steps.", Why.NOT_LEARNED)
    wider = difference(forced[GAP], free[GAP])  # from the gaps as shown above, so a reader can redo it
    if agree := trade_off({row["label"]: row[Metric.FR_EXACT] for row in table},
                          {row["label"]: row[Metric.FR_TOKEN_ACC] for row in table}):
        numbers += " " + agree
    if wider >= CLEAR:
        return Reading(True, f"{numbers} The expected effect appeared: the model trained only on true histories "
                             f"loses {points(wider)} more when it must read its own predictions. That is "
                             "exposure bias: its errors compound because it never practised recovering from them.")
    if min(forced[Metric.FR_TOKEN_ACC], free[Metric.FR_TOKEN_ACC]) >= CEILING:
        why = Why.TOO_EASY
        reason = ("both models are near perfect free-running, so there are no errors left to compound: the task is "
                  "too easy for this model; try longer sequences or a smaller hidden size")
    else:
        why = Why.WITHIN_NOISE
        reason = ("the gaps differ by less than 2 points, within what a different seed could change: the run may be "
                  "too short for γ = 1's early lead to turn into a gap, or this seed is unlucky; train longer or try "
                  "another seed")
    return Reading(False, f"{numbers} The expected effect did not appear clearly: {reason}.", why)


@dataclass(frozen=True)
class ScheduleLead:
    """Lesson 2's one decision, which its reading, its answer and its prediction all use: the best decaying
    schedule against constant γ = 1 on free-running exact match, and the noise a lead must pass (2 points, or the
    best arm's own wiggle over its last evaluations when that is larger)."""

    constant: str
    best: str
    lead: float
    noise: float
    wiggle: float
    evaluations: int


def schedule_lead(snapshot: CompareSnapshot) -> ScheduleLead | None:
    exact = _final(snapshot, DECIDES)
    constant = next((label for label in exact if label.startswith("γ")), None)
    decayed = {label: value for label, value in exact.items() if label != constant}
    if constant is None or not decayed:
        return None
    best = max(decayed, key=decayed.__getitem__)
    last = [row[DECIDES] for row in evaluated(snapshot.arm_rows(snapshot.labels.index(best))[0])[-4:]]
    wiggle = max(last) - min(last) if len(last) > 1 else 0.0
    return ScheduleLead(constant, best, decayed[best] - exact[constant], max(CLEAR, wiggle), wiggle, len(last))


def read_scheduled_sampling(snapshot: CompareSnapshot) -> Reading:
    """Expected: a schedule decaying γ from 1 ends better free-running than constant γ = 1, decided on free-running
    exact match (whole sequences right), the measure every seeded lesson decides on."""
    found = schedule_lead(snapshot)
    if found is None:
        return NOT_YET
    free, exact = _final(snapshot, Metric.FR_TOKEN_ACC), _final(snapshot, DECIDES)
    gammas = final_gamma(snapshot)
    listing = "; ".join(f"{label}: {exact[label]:.1%} of sequences exactly right, {value:.1%} of tokens (γ ended at "
                        f"{gammas.get(label, math.nan):.2f})" for label, value in free.items())
    numbers = (f"Free-running after {snapshot.step} steps: {listing}. Decided on exact match: {found.best} "
               f"{'leads' if found.lead >= 0 else 'trails'} constant {found.constant} by {points(abs(found.lead))}, "
               f"against a noise of {points(found.noise)} (the larger of 2 points and {found.best}'s own wiggle "
               f"over its last {found.evaluations} evaluations).")
    if found.lead >= found.noise:
        return Reading(True, f"{numbers} The expected effect appeared: it learned fast with the truth first, then "
                             "practised on its own predictions, which is what the model must do at test time.")
    if min(exact.values()) >= CEILING:
        why = Why.TOO_EASY
        reason = "every arm is near perfect free-running, so the task is too easy for any schedule to help"
    elif max(gammas.get(label, 0.0) for label in exact if label != found.constant) > 0.5:
        why = Why.NOT_DECAYED
        reason = ("γ had not decayed far when the run ended, so the schedules were still mostly teacher forcing: "
                  "train longer or decay sooner")
    elif found.lead <= -found.noise:
        why = Why.OPPOSITE
        reason = (f"constant {found.constant} is ahead beyond that noise: switching to its own predictions slowed "
                  "the schedules' learning more than it helped in this short run; decaying later (a larger k, more "
                  "decay steps) or training longer often reverses this")
    else:
        why = Why.WITHIN_NOISE
        reason = "the lead is within that noise; try more steps or another seed"
    return Reading(False, f"{numbers} The expected effect did not appear clearly: {reason}.", why)


def read_bottleneck(snapshot: CompareSnapshot) -> Reading:
    """Expected: exact match falls as the output grows past what the final state (h_T, c_T) can hold."""
    by_length = mean_exact_by_length(snapshot).to_dict()
    if len(by_length) < 2 or not evaluated(snapshot.arm_rows(0)[0]):
        return Reading(None, "No evaluation yet: the reading appears when the run has been evaluated.")
    lengths = sorted(by_length)
    third = max(len(lengths) // 3, 1)  # the shortest and the longest third: the middle is where it turns
    short, long = lengths[:third], lengths[-third:]
    short_mean = statistics.fmean(by_length[n] for n in short)
    long_mean = statistics.fmean(by_length[n] for n in long)
    holds = [n for n in lengths if by_length[n] >= 0.9]
    hidden = snapshot.config.base.hidden_dim
    numbers = (f"After {snapshot.step} steps with hidden size {hidden}, outputs of {short[0]} to {short[-1]} tokens "
               f"are exactly right {short_mean:.1%} of the time free-running, outputs of {long[0]} to {long[-1]} "
               f"tokens {long_mean:.1%}" + (f"; it holds 90% up to {max(holds)} tokens." if holds else "."))
    if short_mean < LEARNED:
        return Reading(False, f"{numbers} Even short outputs are mostly wrong, so the model has not learned the task "
                              "yet and the length effect cannot be told apart: train for more steps.",
                       Why.NOT_LEARNED)
    if short_mean - long_mean >= 0.2:
        return Reading(True, f"{numbers} The expected effect appeared: {hidden} numbers in (h_T, c_T) carry a short "
                             "sequence whole but not a long one, so accuracy falls with length. This is the "
                             "bottleneck of an encoder-decoder without attention.")
    if long_mean >= 0.9:
        why = Why.ENOUGH_CAPACITY
        reason = (f"even the longest outputs are mostly right, so {hidden} units are enough for these lengths; try a "
                  "smaller hidden size or a larger max length")
    else:
        why = Why.LOW_AT_EVERY_LENGTH
        reason = ("accuracy is low at every length rather than falling with it, which points to too little training "
                  "rather than the bottleneck; train longer")
    return Reading(False, f"{numbers} The expected effect did not appear clearly: {reason}.", why)


def _long_exact(snapshot: CompareSnapshot, arm: int, lengths: list[int]) -> list[float]:
    """Free-running exact match over the given output lengths, one value per seed."""
    by_seed = snapshot.exact_by_length[arm * snapshot.seeds:(arm + 1) * snapshot.seeds]
    return [statistics.fmean(d[n] for n in lengths) for d in by_seed if all(n in d for n in lengths)]


def attention_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    """Attention against none on the longest third of the output lengths (None before every seed is evaluated)."""
    plain, attending = arm_with(snapshot, attention="none"), arm_with(snapshot, attention="dot")
    if plain is None or attending is None:
        return None
    lengths = sorted(mean_exact_by_length(snapshot, plain).index)
    if len(lengths) < 2 or len(per_seed(snapshot, attending, Metric.FR_EXACT)) < snapshot.seeds:
        return None
    long = lengths[-max(len(lengths) // 3, 1):]
    without, with_attention = _long_exact(snapshot, plain, long), _long_exact(snapshot, attending, long)
    span = f"{long[0]} to {long[-1]}" if len(long) > 1 else f"{long[0]}"
    what = f"free-running exact match on outputs of {span} tokens"
    lead, sentence, clear = versus("Attention", with_attention, "no attention", without, what)
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
    a, b = arm_with(snapshot, **{setting: first}), arm_with(snapshot, **{setting: second})
    if a is None or b is None:
        return None
    values_a, values_b = per_seed(snapshot, a, Metric.FR_EXACT), per_seed(snapshot, b, Metric.FR_EXACT)
    if len(values_a) < snapshot.seeds or len(values_b) < snapshot.seeds:
        return None
    what = "free-running exact match"
    lead, sentence, clear = versus(names[1], values_b, names[0], values_a, what)
    numbers = (f"After {snapshot.step} steps, {names[0]} gets {statistics.fmean(values_a):.1%} of validation "
               f"sequences exactly right free-running, {names[1]} {statistics.fmean(values_b):.1%}. {sentence}.")
    return Contrast((a, b), names, what, values_a, values_b, lead, clear, sentence, numbers)


def reversal_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    """The source reversed against in order, on free-running exact match."""
    return _two_arms(snapshot, "reverse_source", "off", "on", ("the source in order", "the source reversed"))


def cell_contrast(snapshot: CompareSnapshot) -> Contrast | None:
    """The GRU against the LSTM, on free-running exact match."""
    return _two_arms(snapshot, "cell", "lstm", "gru", ("the LSTM", "the GRU"))


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
        reason = ("The GRU has a quarter fewer weights and no separate cell state to fit." if found.lead > 0 else
                  "The LSTM's separate cell can carry information further than the GRU's one state.")
        return Reading(True, f"{found.numbers} The difference is more than seed noise: {winner} did better on this "
                             f"task and budget. {reason}")
    return Reading(False, f"{found.numbers} The difference is within seed noise: on this task and budget the two "
                          "cells cannot be ranked, which is the usual finding (Chung et al. 2014; Jozefowicz et al. "
                          "2015); choose by speed or size.", Why.WITHIN_NOISE)


LONG = TrainConfig(min_len=8, max_len=16, emb_dim=16, hidden_dim=64, steps=600, eval_every=50, val_size=200)
SEEDED = TrainConfig(emb_dim=16, hidden_dim=32, steps=500, eval_every=50, val_size=200)  # the family's lessons:
# 2 arms x 3 seeds, so that each reading can say whether a difference is more than seed noise
LESSONS: dict[str, Lesson] = {lesson.key: lesson for lesson in (
    Lesson(
        "exposure_bias", "1. Exposure bias",
        "A decoder trained with teacher forcing (γ = 1) always reads the *true* previous token, so it learns fast. "
        "But once trained it must read its *own* predictions, and it has never seen its own mistakes. Here two "
        "models learn to reverse sequences of 8 to 16 symbols on the same batches: one always teacher-forced "
        "(γ = 1), one always free-running (γ = 0). Both are scored both ways on the same validation examples.",
        ("Which model's training loss falls first, and why might that be?",
         "Look at the gap chart: which model loses more when it must read its own predictions?",
         "Does the gap shrink or grow as training goes on?"),
        CompareConfig.build(LONG, (0.0, 1.0)),
        (Metric.TRAIN_LOSS, GAP, Metric.TF_TOKEN_ACC, Metric.FR_TOKEN_ACC),
        read_exposure_bias),
    Lesson(
        "scheduled_sampling", "2. Scheduled sampling",
        "If full teacher forcing learns fast but never practises on its own predictions, why not both? Scheduled "
        "sampling starts at γ = 1 and lowers γ during training. Three models learn the same task: γ = 1 constant, "
        "γ falling linearly to 0 over 400 steps, and γ following an inverse sigmoid (k = 60: it stays near 1 for "
        "about 100 steps, then falls to 0 by step 400).",
        ("In the γ chart, when does each schedule hand control to the model's own predictions?",
         "What happens to the training loss of a decaying schedule while γ falls? Why?",
         "At the end, which model gets the most sequences exactly right free-running, and is its lead larger "
         "than the wiggles of its curve?"),
        CompareConfig.build(LONG.replace(decay_steps=400, sigmoid_k=60.0), (1.0,), ("linear", "inverse_sigmoid")),
        (Metric.GAMMA, Metric.TRAIN_LOSS, Metric.FR_TOKEN_ACC, GAP),
        read_scheduled_sampling),
    Lesson(
        "bottleneck", "3. The bottleneck",
        "The decoder knows the source only through the encoder's final state (h_T, c_T): a fixed number of values, "
        "however long the source. Here a small model (hidden size 24) reverses sequences of 2 to 16 symbols, so "
        "some fit easily in its final state and some do not. Watch exact match by output length.",
        ("Up to which length are outputs nearly always right?",
         "Is the fall with length gradual or sudden? What would a larger hidden size change?",
         "Is the long-sequence accuracy still rising at the end, or has it levelled off?"),
        CompareConfig.build(TrainConfig(min_len=2, max_len=16, emb_dim=16, hidden_dim=24, steps=800, eval_every=50,
                                        val_size=300), (0.5,)),
        (LENGTHS, Metric.FR_EXACT, Metric.TRAIN_LOSS),
        read_bottleneck),
    Lesson(
        "attention", "4. The bottleneck and its cure",
        "Lesson 3 showed the final state running out of room. Attention lets the decoder look back at *every* "
        "encoder output at every step, weighted by how much each matters now. Here the same small model (hidden "
        "size 32) reverses sequences of 4 to 20 symbols with and without dot attention, 3 seeds each, on the same "
        "batches. Watch exact match by output length, then open the attention run on the Hidden states page to see "
        "its alignment.",
        ("Which model holds long outputs better, and from which length on do they part?",
         "Early in training, which model learns faster? Attention has to learn where to look first.",
         "Is the difference larger than the spread between seeds (the bands)?"),
        CompareConfig.build(SEEDED.replace(min_len=4, max_len=20), (1.0,), seeds=3,
                            variants=((), ("none", "dot"), ())),
        (LENGTHS, Metric.FR_EXACT, Metric.TRAIN_LOSS),
        read_attention_cure),
    Lesson(
        "reversal", "5. Reversing the source",
        "Sutskever et al. (2014) found that simply reading the source backwards made their translation model "
        "better: the first words of the output then sit right next to the first words of the input, at the end of "
        "what the encoder read. Here two models learn to *copy* sequences of 6 to 14 symbols, one reading the "
        "source in order, one reversed (3 seeds each).",
        ("Which model's training loss falls first?",
         "For a copy, how far apart are the first input token and the first output token in each model?",
         "Would you expect the same for the reverse task? Why not?"),
        CompareConfig.build(SEEDED.replace(task="copy", min_len=6, max_len=14), (1.0,), seeds=3,
                            variants=((), (), ("off", "on"))),
        (Metric.TRAIN_LOSS, Metric.FR_EXACT, LENGTHS),
        read_reversal),
    Lesson(
        "gru_or_lstm", "6. GRU or LSTM",
        "The GRU (Cho et al. 2014) drops the LSTM's separate cell state and one gate: a quarter fewer weights. Is it "
        "worse, better, or the same? Here an LSTM and a GRU of the same hidden size learn the same task on the "
        "same batches for the same number of steps (3 seeds each).",
        ("Which cell's loss falls first?",
         "At the end, is the gap between the two larger than the spread between seeds?",
         "Which would you pick for a bigger model, and why (speed, size, accuracy)?"),
        CompareConfig.build(SEEDED.replace(min_len=4, max_len=12), (1.0,), seeds=3,
                            variants=(("lstm", "gru"), (), ())),
        (Metric.TRAIN_LOSS, Metric.FR_EXACT, LENGTHS),
        read_gru_or_lstm),
    *EXPOSURE_LESSONS,
    ARCHITECTURE_LESSON,
)}


def setup_facts(config: CompareConfig) -> str:
    """What a lesson trains, said from its own config so the story can never disagree with it: the task, its
    lengths (or digits), the model's size, the steps and the seeds."""
    base = config.base
    info = TASKS[base.task]
    size = (f"sequences of {base.min_len} to {base.max_len} symbols" if info.uses_lengths else
            f"numbers of up to {base.max_digits} digits")
    arms = len(config.arms())
    seeds = f"{config.seeds} seeds per arm" if config.seeds > 1 else "1 seed"
    return (f"Task: {base.task} ({size}) · hidden size {base.hidden_dim}, embedding {base.emb_dim}, "
            f"{base.num_layers} layer{'s' if base.num_layers > 1 else ''} · {base.steps:,} training steps, "
            f"batch {base.batch_size} · {arms} arm{'s' if arms > 1 else ''} × {seeds}")


def prepared(lesson: Lesson, steps: int | None = None) -> CompareConfig:
    """The lesson's comparison, shortened to `steps` (or $PLAYGROUND_LESSON_STEPS) for tests."""
    steps = steps or int(os.environ.get(STEPS_ENV, "0") or 0)
    config = lesson.config
    if not steps:
        return config
    base = config.base.replace(steps=steps, eval_every=min(config.base.eval_every, steps))
    return config.with_base(base)


def run_name(lesson: Lesson) -> str:
    """The name a lesson's runs carry: how a reload and the teacher's page find them."""
    return f"lesson-{lesson.key}"


def class_snapshot(snapshots: list[CompareSnapshot]) -> CompareSnapshot | None:
    """A class's runs of one lesson as one comparison whose seeds are the students' runs (each run's own seeds
    included): the band on its charts is the lesson's seed noise. Runs with other arms than the first are left out;
    curves reach as far as every run has come."""
    same = [snapshot for snapshot in snapshots if snapshot.labels == snapshots[0].labels] if snapshots else []
    if not same:
        return None
    arms = range(len(same[0].labels))
    seeds = sum(snapshot.seeds for snapshot in same)
    return CompareSnapshot(
        labels=same[0].labels, seeds=seeds,
        rows=[rows for arm in arms for snapshot in same for rows in snapshot.arm_rows(arm)],
        exact_by_length=[exact for arm in arms for snapshot in same
                         for exact in snapshot.exact_by_length[arm * snapshot.seeds:(arm + 1) * snapshot.seeds]],
        step=min(snapshot.step for snapshot in same), total_steps=max(snapshot.total_steps for snapshot in same),
        seconds=max(snapshot.seconds for snapshot in same), config=replace(same[0].config, seeds=seeds))
