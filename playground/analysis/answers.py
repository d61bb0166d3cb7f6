"""The prediction a lesson asks for before it runs, and every lesson question answered after the run, from that
run's own logged rows (seed 0 of each arm, the seed a lesson trains), so a student can check what they read off
the charts."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from playground.analysis.compare import GAP, CompareSnapshot, evaluated, mean_exact_by_length, summary_rows
from playground.analysis.lessons import CLEAR
from playground.analysis.readings import difference, points, share
from playground.training.rules import Metric

HALF = 0.5  # "falls": the training loss reaches half of its first logged value
HANDED_OVER = 0.5  # a schedule hands control over when γ drops below one half


def _rows(snapshot: CompareSnapshot, arm: int) -> list[dict[str, float]]:
    return snapshot.arm_rows(arm)[0]


def _step_when(rows: list[dict[str, float]], holds: Callable[[dict[str, float]], bool]) -> int | None:
    return next((int(row["step"]) for row in rows if holds(row)), None)


def _loss_falls(snapshot: CompareSnapshot) -> str:
    """Which arm's training loss first falls to half of its start."""
    firsts = {}
    for arm, label in enumerate(snapshot.labels):
        rows = [row for row in _rows(snapshot, arm) if Metric.TRAIN_LOSS in row]
        if rows:
            start = rows[0][Metric.TRAIN_LOSS]
            firsts[label] = _step_when(rows, lambda row, start=start: row[Metric.TRAIN_LOSS] <= HALF * start)
    reached = {label: step for label, step in firsts.items() if step is not None}
    if not reached:
        return "No model's training loss fell to half of its first value in this run: train longer."
    first = min(reached, key=reached.__getitem__)
    others = "; ".join(f"{label} at step {step}" if step is not None else f"{label} never did"
                       for label, step in firsts.items() if label != first)
    return (f"{first}'s training loss fell to half of its start first, at step {reached[first]} ({others}). "
            "The more often a decoder is fed the true previous token, the easier each training step is.")


def _gap_now(snapshot: CompareSnapshot) -> str:
    table = summary_rows(snapshot)
    if not table:
        return "The run was not evaluated."
    widest = max(table, key=lambda row: row[GAP])
    listing = "; ".join(f"{row['label']}: {share(row[Metric.TF_TOKEN_ACC])} teacher-forced, "
                        f"{share(row[Metric.FR_TOKEN_ACC])} free-running, a gap of {points(row[GAP])}"
                        for row in table)
    return f"{listing}. {widest['label']} loses the most when it reads its own predictions."


def _gap_over_time(snapshot: CompareSnapshot) -> str:
    answers = []
    for row in summary_rows(snapshot):
        peak, end = row.get("gap_peak"), row[GAP]
        if peak is None:
            continue
        first = evaluated_gap(snapshot, row["label"])
        trend = ("shrank from its peak" if difference(end, peak) <= -0.02
                 else "grew" if difference(end, first) >= 0.02 else "stayed about the same")
        answers.append(f"{row['label']}'s gap starts at {points(first)}, peaks at {points(peak)} (step "
                       f"{row['gap_peak_step']:.0f}) and ends at {points(end)} (step {row['step']}): it {trend}")
    return "; ".join(answers) + "." if answers else "The run was not evaluated."


def evaluated_gap(snapshot: CompareSnapshot, label: str) -> float:
    """An arm's gap at its first evaluation (seed 0)."""
    rows = evaluated(_rows(snapshot, snapshot.labels.index(label)))
    return rows[0][Metric.TF_TOKEN_ACC] - rows[0][Metric.FR_TOKEN_ACC] if rows else 0.0


def _hand_over(snapshot: CompareSnapshot) -> str:
    answers = []
    for arm, label in enumerate(snapshot.labels):
        rows = [row for row in _rows(snapshot, arm) if Metric.GAMMA in row]
        step = _step_when(rows, lambda row: row[Metric.GAMMA] < HANDED_OVER)
        answers.append(f"{label} never (γ stayed at {rows[-1][Metric.GAMMA]:.2f} or above)" if step is None and rows
                       else f"{label} at step {step}" if step is not None else f"{label}: no steps logged")
    return ("γ fell below one half (more own predictions than true tokens): " + "; ".join(answers) + ".")


def _loss_while_decaying(snapshot: CompareSnapshot) -> str:
    answers = []
    for arm, label in enumerate(snapshot.labels):
        rows = [row for row in _rows(snapshot, arm) if Metric.GAMMA in row and Metric.TRAIN_LOSS in row]
        falling = [row for row in rows if 0.05 < row[Metric.GAMMA] < 0.95]
        if not falling:
            continue
        before, after = falling[0][Metric.TRAIN_LOSS], falling[-1][Metric.TRAIN_LOSS]
        verb = "rose" if after > before else "kept falling"
        answers.append(f"{label}'s training loss {verb} from {before:.3f} to {after:.3f} while γ fell (steps "
                       f"{falling[0]['step']:.0f} to {falling[-1]['step']:.0f})")
    if not answers:
        return "No schedule decayed within this run."
    return ("; ".join(answers) + ". As γ falls the decoder reads more of its own, sometimes wrong, predictions: each "
            "training step gets harder, so the loss falls more slowly or rises for a while.")


def _best_at_end(snapshot: CompareSnapshot) -> str:
    table = sorted(summary_rows(snapshot), key=lambda row: row[Metric.FR_TOKEN_ACC], reverse=True)
    if len(table) < 2:
        return "The run was not evaluated."
    best, second = table[0], table[1]
    lead = difference(best[Metric.FR_TOKEN_ACC], second[Metric.FR_TOKEN_ACC])
    last = [row[Metric.FR_TOKEN_ACC] for row in evaluated(_rows(snapshot, snapshot.labels.index(best["label"])))[-4:]]
    wiggle = max(last) - min(last) if len(last) > 1 else 0.0
    verdict = "larger than" if lead > wiggle else "not larger than"
    return (f"{best['label']} ends best free-running ({share(best[Metric.FR_TOKEN_ACC])} of tokens), "
            f"{points(lead)} ahead of {second['label']}; its curve moved by {points(wiggle)} over its last "
            f"{len(last)} evaluations, so the lead is {verdict} its wiggles.")


def _holds_up_to(snapshot: CompareSnapshot) -> str:
    by_length = mean_exact_by_length(snapshot).to_dict()
    holds = [n for n in sorted(by_length) if by_length[n] >= 0.9]
    if not by_length:
        return "The run was not evaluated."
    if not holds:
        return f"No length is right 90% of the time yet (the best: {share(max(by_length.values()))})."
    return f"Outputs up to {max(holds)} tokens are exactly right at least 90% of the time free-running."


def _fall_shape(snapshot: CompareSnapshot) -> str:
    by_length = mean_exact_by_length(snapshot).to_dict()
    lengths = sorted(by_length)
    if len(lengths) < 3:
        return "The run was not evaluated."
    drops = {n: by_length[previous] - by_length[n] for previous, n in itertools.pairwise(lengths)}
    total = by_length[lengths[0]] - by_length[lengths[-1]]
    steepest = max(drops, key=drops.__getitem__)
    shape = "sudden" if total > 0 and drops[steepest] > total / 2 else "gradual"
    return (f"From {share(by_length[lengths[0]])} at {lengths[0]} tokens to {share(by_length[lengths[-1]])} at "
            f"{lengths[-1]}, the steepest step is {points(drops[steepest])} at {steepest} tokens: the fall is "
            f"{shape}. A larger hidden size gives (h_T, c_T) more numbers, so longer outputs would fit before it "
            "falls.")


def _still_rising(snapshot: CompareSnapshot) -> str:
    rows = evaluated(_rows(snapshot, 0))
    if len(rows) < 4:
        return "Too few evaluations to tell."
    quarter = rows[-max(len(rows) // 4, 2)]
    change = difference(rows[-1][Metric.FR_EXACT], quarter[Metric.FR_EXACT])
    verdict = "still rising" if change >= 0.02 else "levelled off"
    return (f"Free-running exact match (all lengths; lengths are only kept for the last evaluation) went from "
            f"{share(quarter[Metric.FR_EXACT])} at step {quarter['step']:.0f} to {share(rows[-1][Metric.FR_EXACT])} "
            f"at step {rows[-1]['step']:.0f}: {verdict}.")


ANSWERS: dict[str, tuple[Callable[[CompareSnapshot], str], ...]] = {
    "exposure_bias": (_loss_falls, _gap_now, _gap_over_time),
    "scheduled_sampling": (_hand_over, _loss_while_decaying, _best_at_end),
    "bottleneck": (_holds_up_to, _fall_shape, _still_rising),
}


def answers(lesson_key: str, snapshot: CompareSnapshot) -> list[str]:
    """One answer per question of the lesson, in order, from this run."""
    return [answer(snapshot) for answer in ANSWERS[lesson_key]]


@dataclass(frozen=True)
class Prediction:
    """What a student commits to before a lesson runs (predicting first makes a demonstration teach more), and
    which choice the finished run bears out (None: too early to say)."""

    question: str
    choices: tuple[str, ...]
    outcome: Callable[[CompareSnapshot], int | None]


def _exposure_outcome(snapshot: CompareSnapshot) -> int | None:
    table = {row["label"]: row for row in summary_rows(snapshot)}
    if "γ = 1" not in table or "γ = 0" not in table:
        return None
    wider = difference(table["γ = 1"][GAP], table["γ = 0"][GAP])
    return 0 if wider >= CLEAR else 1 if wider <= -CLEAR else 2


def _schedule_outcome(snapshot: CompareSnapshot) -> int | None:
    free = {row["label"]: row[Metric.FR_TOKEN_ACC] for row in summary_rows(snapshot)}
    constant = next((label for label in free if label.startswith("γ")), None)
    decayed = [value for label, value in free.items() if label != constant]
    if constant is None or not decayed:
        return None
    lead = difference(max(decayed), free[constant])
    return 1 if lead >= CLEAR else 0 if lead <= -CLEAR else 2


def _length_outcome(snapshot: CompareSnapshot) -> int | None:
    by_length = mean_exact_by_length(snapshot).to_dict()
    lengths = sorted(by_length)
    if len(lengths) < 2:
        return None
    third = max(len(lengths) // 3, 1)
    fall = (statistics.fmean(by_length[n] for n in lengths[:third])
            - statistics.fmean(by_length[n] for n in lengths[-third:]))
    return 0 if fall >= 0.2 else 2 if fall <= -0.2 else 1


PREDICTIONS: dict[str, Prediction] = {
    "exposure_bias": Prediction(
        "Which model will lose more accuracy when it must read its own predictions (the wider gap)?",
        ("γ = 1, always fed the true token", "γ = 0, always fed its own predictions", "about the same"),
        _exposure_outcome),
    "scheduled_sampling": Prediction(
        "Which will decode best on its own (free-running) at the end?",
        ("constant γ = 1", "a decaying schedule", "about the same"), _schedule_outcome),
    "bottleneck": Prediction(
        "How will exact match change as the outputs get longer?",
        ("it falls with length", "it stays about the same", "it rises with length"), _length_outcome),
}


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
