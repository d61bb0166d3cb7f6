"""The prediction a lesson asks for before it runs, and every lesson question answered after the run, from that
run's own logged rows, so a student can check what they read off the charts. Curves are seed means (a lesson with
one seed reads that seed); the seeded lessons answer from the same paired comparison their reading states."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable

from playground.course.architecture_lesson import ARCHITECTURE_ANSWERS, ARCHITECTURE_PREDICTIONS
from playground.course.evidence import CLEAR, NOT_EVALUATED, Answer, Contrast, Prediction, beyond_spread, loss_falls
from playground.course.exposure_lessons import EXPOSURE_ANSWERS, EXPOSURE_PREDICTIONS, FED_TRUTH
from playground.course.lessons import DECIDES, attention_contrast, cell_contrast, reversal_contrast, schedule_lead
from playground.experiments.comparison import CompareSnapshot
from playground.experiments.statistics import evaluated, mean_exact_by_length
from playground.reports.comparison_table import GAP, summary_rows
from playground.reports.readings import difference, points, share
from playground.training.cost import parameter_count
from playground.training.metrics import Metric
from playground.training.trainer import build_task

HANDED_OVER = 0.5  # a schedule hands control over when γ drops below one half
PART = 0.1  # two arms "part" at the first output length where their exact match differs by ten points


def _rows(snapshot: CompareSnapshot, arm: int) -> list[dict[str, float]]:
    return snapshot.arm_rows(arm)[0]


def _step_when(rows: list[dict[str, float]], holds: Callable[[dict[str, float]], bool]) -> int | None:
    return next((int(row["step"]) for row in rows if holds(row)), None)


def _gap_now(snapshot: CompareSnapshot) -> Answer:
    table = summary_rows(snapshot)
    if not table:
        return NOT_EVALUATED
    widest = max(table, key=lambda row: row[GAP])
    listing = "; ".join(f"{row['label']}: {share(row[Metric.TF_TOKEN_ACC])} teacher-forced, "
                        f"{share(row[Metric.FR_TOKEN_ACC])} free-running, a gap of {points(row[GAP])}"
                        for row in table)
    return Answer(f"{listing}. {widest['label']} loses the most when it reads its own predictions.",
                  {"widest": widest["label"], "gaps": {row["label"]: row[GAP] for row in table}})


GAP_TRENDS = {"shrank": "shrank from its peak", "grew": "grew", "stayed": "stayed about the same"}


def _gap_over_time(snapshot: CompareSnapshot) -> Answer:
    answers, trends = [], {}
    for row in summary_rows(snapshot):
        peak, end = row.get("gap_peak"), row[GAP]
        if peak is None:
            continue
        first = evaluated_gap(snapshot, row["label"])
        trend = trends[row["label"]] = ("shrank" if difference(end, peak) <= -0.02
                                        else "grew" if difference(end, first) >= 0.02 else "stayed")
        answers.append(f"{row['label']}'s gap starts at {points(first)}, peaks at {points(peak)} (step "
                       f"{row['gap_peak_step']:.0f}) and ends at {points(end)} (step {row['step']}): it "
                       f"{GAP_TRENDS[trend]}")
    return Answer("; ".join(answers) + ".", {"trend": trends}) if answers else NOT_EVALUATED


def evaluated_gap(snapshot: CompareSnapshot, label: str) -> float:
    """An arm's gap at its first evaluation (seed 0)."""
    rows = evaluated(_rows(snapshot, snapshot.labels.index(label)))
    return rows[0][Metric.TF_TOKEN_ACC] - rows[0][Metric.FR_TOKEN_ACC] if rows else 0.0


def _hand_over(snapshot: CompareSnapshot) -> Answer:
    answers, steps = [], {}
    for arm, label in enumerate(snapshot.labels):
        rows = [row for row in _rows(snapshot, arm) if Metric.GAMMA in row]
        step = steps[label] = _step_when(rows, lambda row: row[Metric.GAMMA] < HANDED_OVER)
        answers.append(f"{label} never (γ stayed at {rows[-1][Metric.GAMMA]:.2f} or above)" if step is None and rows
                       else f"{label} at step {step}" if step is not None else f"{label}: no steps logged")
    return Answer("γ fell below one half (more own predictions than true tokens): " + "; ".join(answers) + ".",
                  {"handed_over_at": steps})


def _loss_while_decaying(snapshot: CompareSnapshot) -> Answer:
    answers, rose = [], {}
    for arm, label in enumerate(snapshot.labels):
        rows = [row for row in _rows(snapshot, arm) if Metric.GAMMA in row and Metric.TRAIN_LOSS in row]
        falling = [row for row in rows if 0.05 < row[Metric.GAMMA] < 0.95]
        if not falling:
            continue
        before, after = falling[0][Metric.TRAIN_LOSS], falling[-1][Metric.TRAIN_LOSS]
        rose[label] = after > before
        verb = "rose" if after > before else "kept falling"
        answers.append(f"{label}'s training loss {verb} from {before:.3f} to {after:.3f} while γ fell (steps "
                       f"{falling[0]['step']:.0f} to {falling[-1]['step']:.0f})")
    if not answers:
        return Answer("No schedule decayed within this run.")
    return Answer("; ".join(answers) + ". As γ falls the decoder reads more of its own, sometimes wrong, "
                  "predictions: each training step gets harder, so the loss falls more slowly or rises for a while.",
                  {"loss_rose": rose})


def _best_at_end(snapshot: CompareSnapshot) -> Answer:
    """The best arm on lesson 2's measure (free-running exact match), with the same noise its reading uses."""
    found = schedule_lead(snapshot)
    if found is None:
        return NOT_EVALUATED
    ahead = found.lead >= found.noise
    best, other = (found.best, found.constant) if found.lead >= 0 else (found.constant, found.best)
    verdict = "larger than" if abs(found.lead) >= found.noise else "not larger than"
    return Answer(f"{best} ends with the most sequences exactly right free-running, {points(abs(found.lead))} "
                  f"ahead of {other}; the noise is {points(found.noise)} (the larger of 2 points and "
                  f"{found.best}'s wiggle of {points(found.wiggle)} over its last {found.evaluations} "
                  f"evaluations), so the lead is {verdict} the noise.",
                  {"best": best, "runner_up": other, "beyond_wiggles": abs(found.lead) >= found.noise,
                   "decided_by": DECIDES, "schedule_ahead": ahead})


def _holds_up_to(snapshot: CompareSnapshot) -> Answer:
    by_length = mean_exact_by_length(snapshot).to_dict()
    holds = [n for n in sorted(by_length) if by_length[n] >= 0.9]
    if not by_length:
        return NOT_EVALUATED
    if not holds:
        return Answer(f"No length is right 90% of the time yet (the best: {share(max(by_length.values()))}).",
                      {"holds_up_to": None})
    return Answer(f"Outputs up to {max(holds)} tokens are exactly right at least 90% of the time free-running.",
                  {"holds_up_to": max(holds)})


def _fall_shape(snapshot: CompareSnapshot) -> Answer:
    by_length = mean_exact_by_length(snapshot).to_dict()
    lengths = sorted(by_length)
    if len(lengths) < 3:
        return NOT_EVALUATED
    drops = {n: by_length[previous] - by_length[n] for previous, n in itertools.pairwise(lengths)}
    total = by_length[lengths[0]] - by_length[lengths[-1]]
    steepest = max(drops, key=drops.__getitem__)
    shape = "sudden" if total > 0 and drops[steepest] > total / 2 else "gradual"
    return Answer(f"From {share(by_length[lengths[0]])} at {lengths[0]} tokens to {share(by_length[lengths[-1]])} "
                  f"at {lengths[-1]}, the steepest step is {points(drops[steepest])} at {steepest} tokens: the fall is "
                  f"{shape}. A larger hidden size gives (h_T, c_T) more numbers, so longer outputs would fit before "
                  "it falls.", {"steepest_at": steepest, "shape": shape})


def _still_rising(snapshot: CompareSnapshot) -> Answer:
    rows = evaluated(_rows(snapshot, 0))
    if len(rows) < 4:
        return Answer("Too few evaluations to tell.")
    quarter = rows[-max(len(rows) // 4, 2)]
    change = difference(rows[-1][Metric.FR_EXACT], quarter[Metric.FR_EXACT])
    verdict = "still rising" if change >= 0.02 else "levelled off"
    return Answer(f"Free-running exact match (all lengths; lengths are only kept for the last evaluation) went from "
                  f"{share(quarter[Metric.FR_EXACT])} at step {quarter['step']:.0f} to "
                  f"{share(rows[-1][Metric.FR_EXACT])} at step {rows[-1]['step']:.0f}: {verdict}.",
                  {"still_rising": change >= 0.02})


def _when_evaluated(contrast: Callable[[CompareSnapshot], Contrast | None],
                    answer: Callable[[CompareSnapshot, Contrast], Answer]) -> Callable[[CompareSnapshot], Answer]:
    """An answer from the lesson's own paired comparison, once every seed has been evaluated."""
    def answered(snapshot: CompareSnapshot) -> Answer:
        found = contrast(snapshot)
        return NOT_EVALUATED if found is None else answer(snapshot, found)
    return answered


def _means(found: Contrast) -> str:
    return (f"{found.names[0]} {share(statistics.fmean(found.first))}, {found.names[1]} "
            f"{share(statistics.fmean(found.second))} ({found.what}, mean over {len(found.first)} seeds)")


def _where_they_part(snapshot: CompareSnapshot, found: Contrast) -> Answer:
    plain, attending = (mean_exact_by_length(snapshot, arm) for arm in found.arms)
    lengths = plain.index.intersection(attending.index)
    apart = [n for n in lengths if abs(difference(attending[n], plain[n])) >= PART]
    holder = None if abs(found.lead) < CLEAR else found.names[1] if found.lead > 0 else found.names[0]
    better = ("Neither model holds long outputs clearly better" if holder is None
              else f"Long outputs are held better by {holder}")
    where = (f"they first differ by {points(PART)} or more at {apart[0]} tokens ({share(attending[apart[0]])} with "
             f"attention, {share(plain[apart[0]])} without)" if apart
             else f"they stay within {points(PART)} of each other at every length")
    return Answer(f"{better}: {_means(found)}. By output length, {where}.",
                  {"held_better_by": holder, "part_at": apart[0] if apart else None})


def _steps_apart(snapshot: CompareSnapshot, found: Contrast) -> Answer:
    base = snapshot.config.base
    return Answer(f"Read in order, the first input token is the first the encoder reads: the whole source, "
                  f"{base.min_len} to {base.max_len} tokens here, lies between it and the first output. Reversed, it "
                  f"is the last token read, one step before the first output. This run: {_means(found)}.",
                  {"means": dict(zip(found.names, map(statistics.fmean, (found.first, found.second)), strict=True))})


def _reverse_task(snapshot: CompareSnapshot, found: Contrast) -> Answer:
    base = snapshot.config.base
    expect = "the opposite sign" if found.clear else "no clear effect either, or a small one of the opposite sign"
    return Answer(f"No: to reverse, the first output is the last input token, already one step back when read in "
                  f"order; reversing the source would put it {base.min_len} to {base.max_len} steps back, like the "
                  f"in-order copy here. In this copy run, {found.test}: so on the reverse task expect {expect}.",
                  {"beyond_noise": found.clear, "lead": found.lead})


def _which_cell(snapshot: CompareSnapshot, found: Contrast) -> Answer:
    task = build_task(snapshot.config.base)
    sizes = [parameter_count(snapshot.config.configs()[arm * snapshot.seeds], len(task.src_vocab),
                             len(task.tgt_vocab)) for arm in found.arms]
    lstm, gru = sizes
    chosen = found.names[0] if found.ranked(0.0) == 1 else found.names[1]
    pick = (f"{chosen}, whose lead is more than seed noise" if found.ranked(0.0) == 1
            else f"{chosen}: as accurate or better here, and smaller and faster per step")
    return Answer(f"Size: {found.names[1]} has {gru:,} weights, {found.names[0]} {lstm:,} ({1 - gru / lstm:.0%} "
                  f"fewer, so each step costs less). Accuracy: {_means(found)}, "
                  f"{'beyond' if found.clear else 'within'} seed noise. On this run's numbers: {pick}. A bigger model "
                  "multiplies both the saving and any accuracy gap.",
                  {"pick": chosen, "weights": {found.names[0]: lstm, found.names[1]: gru}})


ANSWERS: dict[str, tuple[Callable[[CompareSnapshot], Answer], ...]] = {
    "exposure_bias": (loss_falls("ratio", {1.0: FED_TRUTH}), _gap_now, _gap_over_time),
    "scheduled_sampling": (_hand_over, _loss_while_decaying, _best_at_end),
    "bottleneck": (_holds_up_to, _fall_shape, _still_rising),
    "attention": (_when_evaluated(attention_contrast, _where_they_part),
                  loss_falls("attention", {"none": "Attention must first learn where to look, which can slow its "
                                                   "start; once it has, the decoder no longer depends on the final "
                                                   "state alone."}),
                  _when_evaluated(attention_contrast, beyond_spread)),
    "reversal": (loss_falls("reverse_source", {"on": "Reversed, the first output depends on a token read one step "
                                                     "before, not a whole source before; short dependencies are "
                                                     "usually learned first."}),
                 _when_evaluated(reversal_contrast, _steps_apart), _when_evaluated(reversal_contrast, _reverse_task)),
    "gru_or_lstm": (loss_falls("cell", {"gru": "The GRU has a quarter fewer weights to fit, which can make it "
                                                "learn faster early."}),
                    _when_evaluated(cell_contrast, beyond_spread), _when_evaluated(cell_contrast, _which_cell)),
} | EXPOSURE_ANSWERS | ARCHITECTURE_ANSWERS


def answered(lesson_key: str, snapshot: CompareSnapshot) -> list[Answer]:
    """One answer per question of the lesson, in order, from this run, with the facts each was decided from."""
    return [answer(snapshot) for answer in ANSWERS[lesson_key]]


def answers(lesson_key: str, snapshot: CompareSnapshot) -> list[str]:
    """The answers' sentences, in the order of the lesson's questions."""
    return [answer.text for answer in answered(lesson_key, snapshot)]


def _exposure_outcome(snapshot: CompareSnapshot) -> int | None:
    table = {row["label"]: row for row in summary_rows(snapshot)}
    if "γ = 1" not in table or "γ = 0" not in table:
        return None
    wider = difference(table["γ = 1"][GAP], table["γ = 0"][GAP])
    return 0 if wider >= CLEAR else 1 if wider <= -CLEAR else 2


def _schedule_outcome(snapshot: CompareSnapshot) -> int | None:
    found = schedule_lead(snapshot)
    if found is None:
        return None
    return 1 if found.lead >= found.noise else 0 if found.lead <= -found.noise else 2


def _length_outcome(snapshot: CompareSnapshot) -> int | None:
    by_length = mean_exact_by_length(snapshot).to_dict()
    lengths = sorted(by_length)
    if len(lengths) < 2:
        return None
    third = max(len(lengths) // 3, 1)
    fall = (statistics.fmean(by_length[n] for n in lengths[:third])
            - statistics.fmean(by_length[n] for n in lengths[-third:]))
    return 0 if fall >= 0.2 else 2 if fall <= -0.2 else 1


def _contrast_outcome(contrast: Callable[[CompareSnapshot], Contrast | None],
                      margin: float) -> Callable[[CompareSnapshot], int | None]:
    """The outcome of a seeded lesson as its reading judges it: its second arm ahead beyond seed noise by at least
    `margin` (0), its first arm (1), or neither (2)."""
    def outcome(snapshot: CompareSnapshot) -> int | None:
        found = contrast(snapshot)
        return None if found is None else found.ranked(margin)
    return outcome


PREDICTIONS: dict[str, Prediction] = {
    "exposure_bias": Prediction(
        "Which model will lose more accuracy when it must read its own predictions (the wider gap)?",
        ("γ = 1, always fed the true token", "γ = 0, always fed its own predictions", "about the same"),
        _exposure_outcome),
    "scheduled_sampling": Prediction(
        "Which will get the most sequences exactly right on its own (free-running) at the end?",
        ("constant γ = 1", "a decaying schedule", "about the same"), _schedule_outcome),
    "bottleneck": Prediction(
        "How will exact match change as the outputs get longer?",
        ("it falls with length", "it stays about the same", "it rises with length"), _length_outcome),
    "attention": Prediction(
        "Which model will get the longest outputs exactly right more often?",
        ("with attention", "without attention", "about the same (within seed noise)"),
        _contrast_outcome(attention_contrast, CLEAR)),
    "reversal": Prediction(
        "Which model will copy better (free-running exact match) at the end?",
        ("the one reading the source reversed", "the one reading it in order", "about the same (within seed noise)"),
        _contrast_outcome(reversal_contrast, CLEAR)),
    "gru_or_lstm": Prediction(
        "Which cell will end with more sequences exactly right?",
        ("the GRU", "the LSTM", "about the same (within seed noise)"), _contrast_outcome(cell_contrast, 0.0)),
} | EXPOSURE_PREDICTIONS | ARCHITECTURE_PREDICTIONS


def prediction_verdict(lesson_key: str, chosen: int, snapshot: CompareSnapshot) -> str:
    """The student's prediction beside what this run showed."""
    prediction = PREDICTIONS[lesson_key]
    happened = prediction.outcome(snapshot)
    if happened is None:
        return f"You predicted: {prediction.choices[chosen]}. This run was not evaluated enough to tell."
    if happened == chosen:
        return f"You predicted: {prediction.choices[chosen]}. This run agrees: {prediction.choices[happened]}."
    return (f"You predicted: {prediction.choices[chosen]}. This run shows: {prediction.choices[happened]}. Read "
            "the answers below to see why.")
