"""The readings of Compare, Study and Lessons from crafted tables: what they lead with when a difference is within
seed noise or beyond it, the trade-off named when exact match and token accuracy disagree, arithmetic that a reader
can redo from the shown figures, and intervals of a share within 0-100%. The decisions are asserted as the data the
readings return; one test per kind of reading holds its exact words."""

from __future__ import annotations

from playground.core.config import TrainConfig
from playground.course import lessons
from playground.course.answers import NOT_EVALUATED, PREDICTIONS, answered, answers
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.reports import comparison_table as compare
from playground.reports import study_table as study
from playground.reports.comparison_table import GAP
from playground.reports.readings import clipped, difference, disagreement, interval, share, trade_off
from playground.training.metrics import Metric


def compare_row(label: str, exact: float, tokens: float, seeds: int = 3, spread: float = 0.01) -> dict:
    return {"label": label, "seeds": seeds, "step": 600, Metric.FR_EXACT: exact, Metric.TF_TOKEN_ACC: 0.99,
            Metric.FR_TOKEN_ACC: tokens, GAP: 0.99 - tokens, "steps_to_90": None, Metric.TF_LOSS: 0.1,
            Metric.FR_LOSS: 0.5, "fr_exact_spread": spread}


def test_compare_leads_with_noise_and_names_the_trade_off() -> None:
    disagree = compare.read_table([compare_row("γ = 1", 0.40, 0.62), compare_row("γ = 0", 0.30, 0.80)])
    assert (disagree.leader, disagree.runner_up, disagree.within_noise) == ("γ = 1", "γ = 0", False)
    assert disagree.disagreement == ("γ = 1", "γ = 0")  # most sequences, most tokens
    noisy = compare.read_table([compare_row("γ = 1", 0.40, 0.80, spread=0.05), compare_row("γ = 0", 0.37, 0.78)])
    assert (noisy.leader, noisy.within_noise, noisy.disagreement) == ("γ = 1", True, None)  # γ = 1 leads on both


def arm(name: str, exact: float, tokens: float, low: float, high: float) -> dict:
    return {"arm": name, Metric.FR_EXACT: {"mean": exact, "ci": (low, high)},
            Metric.FR_TOKEN_ACC: {"mean": tokens, "ci": (tokens, tokens)}, GAP: {"mean": 0.99 - tokens}}


def cell(arms: list[dict], p: float, within: bool) -> dict:
    return {"label": "reverse, max length 16, hidden 64", "step": 1500, "failed": "", "arms": arms,
            "tests": [{"a": arms[0]["arm"], "b": arms[1]["arm"], "difference": 0.0, "p": p,
                       "within_seed_noise": within}]}


STUDY_READING = (
    "A 95% confidence interval says where the mean over *all* seeds would likely be; a paired test compares two arms "
    "seed by seed (same initial weights and batches), and p < 0.05 means a difference that large would be rare if the "
    "arms were equally good.\n\n**reverse, max length 16, hidden 64** (step 1500): Within seed noise: γ = 1 and γ = 0 "
    "cannot be ranked (2.0 points apart; paired test over seeds, p = 0.310), so the lead below may be luck. γ = 1 gets "
    "the most sequences exactly right on its own, 99.0% free-running exact match (95% CI 96.0% to 100.0% (clipped to "
    "0-100%)). Exact match and token accuracy disagree: γ = 1 gets the most whole sequences right (99.0% exact match, "
    "97.0% for γ = 0) but γ = 0 the most tokens (90.0% free-running token accuracy, 70.0% for γ = 1). Both can be "
    "true: exact match counts a sequence only if every token is right, while a model that errs once and then derails "
    "loses every token after the error; a model can get more sequences entirely right and still lose more tokens on "
    "the ones it gets wrong. Against γ = 0 (p = 0.31) the difference is within seed noise: more seeds or steps could "
    "tell them apart. The widest exposure-bias gap (teacher-forced minus free-running token accuracy) is γ = 1's, "
    "29.0 points.")


def test_study_leads_with_noise_keeps_intervals_in_range_and_names_the_trade_off() -> None:
    noisy = study.read_study([cell([arm("γ = 1", 0.99, 0.70, 0.96, 1.038), arm("γ = 0", 0.97, 0.90, 0.9, 1.0)],
                                   0.31, True)])
    assert noisy.text == STUDY_READING  # the one test of a study reading's words
    [decided] = noisy.conditions
    assert (decided.leader, decided.runner_up, decided.within_noise) == ("γ = 1", "γ = 0", True)
    assert decided.interval_clipped and decided.disagreement == ("γ = 1", "γ = 0")
    assert (decided.beats, decided.ties, decided.widest_gap) == ((), ("γ = 0",), "γ = 1")
    clear = study.read_study([cell([arm("γ = 0", 0.95, 0.97, 0.9, 0.99), arm("γ = 1", 0.60, 0.80, 0.5, 0.7)],
                                   0.001, False)])
    [decided] = clear.conditions
    assert (decided.leader, decided.within_noise, decided.beats, decided.ties) == ("γ = 0", False, ("γ = 1",), ())
    assert not decided.interval_clipped and decided.disagreement is None


def test_a_study_reading_leaves_out_failed_conditions_and_waits_for_the_first() -> None:
    failed = {"label": "sort, max length 8, hidden 64", "step": 0, "failed": "out of memory", "arms": [], "tests": []}
    assert study.read_study([failed]).left_out == ("sort, max length 8, hidden 64",)
    assert study.read_study([failed | {"failed": ""}]) == study.read_study([])
    assert study.read_study([]).conditions == ()


def lesson_snapshot(exact: dict[float, float], forced: dict[float, float], free: dict[float, float]) -> \
        CompareSnapshot:
    config = CompareConfig.build(TrainConfig(steps=600, eval_every=600), list(exact))
    rows = [[[{"step": 0, Metric.TRAIN_LOSS: 2.0, Metric.GAMMA: ratio},
              {"step": 300, Metric.TRAIN_LOSS: 0.8 if ratio else 1.5, Metric.GAMMA: ratio},
              {"step": 600, Metric.TRAIN_LOSS: 0.1, Metric.FR_EXACT: exact[ratio], Metric.TF_TOKEN_ACC: forced[ratio],
               Metric.FR_TOKEN_ACC: free[ratio], Metric.TF_LOSS: 0.1, Metric.FR_LOSS: 0.4, Metric.GAMMA: ratio}]]
            for ratio in exact]
    return CompareSnapshot([f"γ = {ratio:g}" for ratio in exact], 1, [r[0] for r in rows], [{}, {}], 600, 600,
                           30.0, config)


def test_lesson_reading_redoes_its_arithmetic_from_shown_figures_and_names_the_trade_off() -> None:
    snapshot = lesson_snapshot({0.0: 0.05, 1.0: 0.12}, {0.0: 0.90, 1.0: 0.99649}, {0.0: 0.87049, 1.0: 0.822})
    assert lessons.read_exposure_bias(snapshot) == lessons.Reading(True, LESSON_READING)  # the one test of its words
    assert answers("exposure_bias", snapshot) == EXPOSURE_ANSWERS  # the one test of answers' words
    first, now, over_time = (answer.facts for answer in answered("exposure_bias", snapshot))
    assert first == {"halved_at": {"γ = 0": 600, "γ = 1": 300}, "first": ("γ = 1",)}
    assert now["widest"] == "γ = 1" and round(now["gaps"]["γ = 1"], 3) == 0.174
    assert over_time == {"trend": {"γ = 0": "stayed", "γ = 1": "stayed"}}


LESSON_READING = (
    "After 600 steps, γ = 1 gets 99.6% of tokens right teacher-forced and 82.2% free-running, a gap of 17.4 points; "
    "γ = 0 gets 90.0% and 87.0%, a gap of 3.0 points. Exact match and token accuracy disagree: γ = 1 gets the most "
    "whole sequences right (12.0% exact match, 5.0% for γ = 0) but γ = 0 the most tokens (87.0% free-running token "
    "accuracy, 82.2% for γ = 1). Both can be true: exact match counts a sequence only if every token is right, while "
    "a model that errs once and then derails loses every token after the error; a model can get more sequences "
    "entirely right and still lose more tokens on the ones it gets wrong. The expected effect appeared: the model "
    "trained only on true histories loses 14.4 points more when it must read its own predictions. That is exposure "
    "bias: its errors compound because it never practised recovering from them.")  # 14.4 = 17.4 - 3.0 as shown


EXPOSURE_ANSWERS = [
    "γ = 1's training loss fell to half of its start first, at step 300 (γ = 0 at step 600). The more often a decoder "
    "is fed the true previous token, the easier each training step is.",
    "γ = 0: 90.0% teacher-forced, 87.0% free-running, a gap of 3.0 points; γ = 1: 99.6% teacher-forced, 82.2% "
    "free-running, a gap of 17.4 points. γ = 1 loses the most when it reads its own predictions.",
    "γ = 0's gap starts at 3.0 points, peaks at 3.0 points (step 600) and ends at 3.0 points (step 600): it stayed "
    "about the same; γ = 1's gap starts at 17.4 points, peaks at 17.4 points (step 600) and ends at 17.4 points (step "
    "600): it stayed about the same."]


def seeded_snapshot(key: str, setting: str, exact: dict[str, list[float]], halfway_loss: dict[str, float],
                    by_length: dict[str, list[dict[int, float]]] | None = None) -> CompareSnapshot:
    """A finished run of a 3-seed lesson: each arm (found by its `setting`) with its per-seed final exact match,
    its training loss at step 250 (2.0 at the start) and its per-seed exact match by output length."""
    config = lessons.LESSONS[key].config
    arms = config.arms()
    values = [arm.settings()[setting] for arm in arms]
    rows = [[{"step": 0, Metric.TRAIN_LOSS: 2.0}, {"step": 250, Metric.TRAIN_LOSS: halfway_loss[value]},
             {"step": 500, Metric.TRAIN_LOSS: 0.2, Metric.FR_EXACT: final, Metric.TF_TOKEN_ACC: 0.99,
              Metric.FR_TOKEN_ACC: final, Metric.TF_LOSS: 0.1, Metric.FR_LOSS: 0.4}]
            for value in values for final in exact[value]]
    lengths = [seed for value in values for seed in (by_length or {}).get(value, [{}] * config.seeds)]
    return CompareSnapshot([arm.label for arm in arms], config.seeds, rows, lengths, 500, 500, 30.0, config)


def check_answers(key: str, snapshot: CompareSnapshot) -> list[dict]:
    """Every question answered from the run (none "not evaluated"): the facts each answer was decided from."""
    found = answered(key, snapshot)
    assert len(found) == len(lessons.LESSONS[key].questions) and NOT_EVALUATED not in found
    assert all(answer.text and answer.facts for answer in found)
    return [dict(answer.facts) for answer in found]


def test_the_attention_lesson_predicts_and_answers_from_its_seed_means() -> None:
    plain = [{4: 1.0, 5: 0.95, 6: 0.8, 7: 0.5, 8: 0.2 + 0.02 * s, 9: 0.1 + 0.01 * s} for s in range(3)]
    attending = [{4: 1.0, 5: 1.0, 6: 0.97, 7: 0.95, 8: 0.9 - 0.03 * s, 9: 0.85} for s in range(3)]
    run = seeded_snapshot("attention", "attention", {"none": [0.4, 0.42, 0.45], "dot": [0.8, 0.82, 0.79]},
                          {"none": 0.9, "dot": 1.5}, {"none": plain, "dot": attending})
    assert lessons.read_attention_cure(run).appeared is True
    assert PREDICTIONS["attention"].outcome(run) == 0  # "with attention", as the reading says
    parted, first, spread = check_answers("attention", run)
    assert parted == {"held_better_by": "attention", "part_at": 6}
    assert first == {"halved_at": {"γ = 1, no attention": 250, "γ = 1, dot attention": 500},
                     "first": ("γ = 1, no attention",)}
    assert spread == {"ranges_overlap": False, "beyond_noise": True}
    even = seeded_snapshot("attention", "attention", {"none": [0.4] * 3, "dot": [0.4] * 3},
                           {"none": 0.9, "dot": 0.9}, {"none": plain, "dot": [dict(seed) for seed in plain]})
    assert PREDICTIONS["attention"].outcome(even) == 2 and lessons.read_attention_cure(even).appeared is False


def test_the_reversal_lesson_says_when_reversing_hurt() -> None:
    run = seeded_snapshot("reversal", "reverse_source", {"off": [0.7, 0.75, 0.72], "on": [0.5, 0.52, 0.55]},
                          {"off": 0.8, "on": 0.9})
    assert lessons.read_reversal(run).why is lessons.Why.OPPOSITE  # reversal hurt, beyond noise
    assert PREDICTIONS["reversal"].outcome(run) == 1  # "in order", beyond noise
    first, apart, reverse = check_answers("reversal", run)
    assert first["first"] == ("γ = 1, source in order", "γ = 1, source reversed")  # the same logged step: a tie
    assert {name: share(mean) for name, mean in apart["means"].items()} == {
        "the source in order": share(0.7233), "the source reversed": share(0.5233)}
    assert reverse["beyond_noise"] and round(reverse["lead"], 3) == -0.2
    early = seeded_snapshot("reversal", "reverse_source", {"off": [], "on": []}, {"off": 1.5, "on": 1.5})
    assert PREDICTIONS["reversal"].outcome(early) is None
    assert answered("reversal", early)[1:] == [NOT_EVALUATED] * 2


def test_the_cell_lesson_calls_seed_noise_a_tie_and_sizes_both_cells() -> None:
    run = seeded_snapshot("gru_or_lstm", "cell", {"lstm": [0.6, 0.7, 0.65], "gru": [0.68, 0.62, 0.66]},
                          {"lstm": 1.5, "gru": 0.7})
    assert lessons.read_gru_or_lstm(run).appeared is False
    assert PREDICTIONS["gru_or_lstm"].outcome(run) == 2
    first, spread, pick = check_answers("gru_or_lstm", run)
    assert first["first"] == ("γ = 1, GRU",) and first["halved_at"]["γ = 1, LSTM"] == 500
    assert spread == {"ranges_overlap": True, "beyond_noise": False}
    assert pick["pick"] == "the GRU" and pick["weights"]["the GRU"] < pick["weights"]["the LSTM"]
    clear = seeded_snapshot("gru_or_lstm", "cell", {"lstm": [0.8, 0.85, 0.9], "gru": [0.6, 0.64, 0.7]},
                            {"lstm": 0.9, "gru": 0.9})
    assert PREDICTIONS["gru_or_lstm"].outcome(clear) == 1 and lessons.read_gru_or_lstm(clear).appeared is True
    assert answered("gru_or_lstm", clear)[2].facts["pick"] == "the LSTM"  # whose lead is beyond seed noise


def test_the_shared_pieces() -> None:
    assert round(difference(0.174, 0.030), 3) == 0.144 and interval(-0.02, 0.5) == "95% CI 0.0% to 50.0% " \
                                                                                     "(clipped to 0-100%)"
    assert clipped(-0.02, 0.5) == (0.0, 0.5, True) and clipped(0.1, 0.5) == (0.1, 0.5, False)
    assert disagreement({"a": 0.5}, {"a": 0.9}) is None and disagreement({"a": 0.5, "b": 0.4}, {"a": 0.9, "b": 0.8}) \
        is None
    assert disagreement({"a": 0.5, "b": 0.4}, {"a": 0.8, "b": 0.9}) == ("a", "b")
    assert trade_off({"a": 0.5}, {"a": 0.9}) == "" and trade_off({"a": 0.5, "b": 0.4}, {"a": 0.9, "b": 0.8}) == ""
