"""The readings of Compare, Study and Lessons from crafted tables: what they lead with when a difference is within
seed noise or beyond it, the trade-off named when exact match and token accuracy disagree, arithmetic that a reader
can redo from the shown figures, and intervals of a share within 0-100%."""

from __future__ import annotations

from playground.core.config import TrainConfig
from playground.course import lessons
from playground.course.answers import PREDICTIONS, answers
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.reports import comparison_table as compare
from playground.reports import study_table as study
from playground.reports.comparison_table import GAP
from playground.reports.readings import difference, interval, share, trade_off
from playground.training.metrics import Metric


def compare_row(label: str, exact: float, tokens: float, seeds: int = 3, spread: float = 0.01) -> dict:
    return {"label": label, "seeds": seeds, "step": 600, Metric.FR_EXACT: exact, Metric.TF_TOKEN_ACC: 0.99,
            Metric.FR_TOKEN_ACC: tokens, GAP: 0.99 - tokens, "steps_to_90": None, Metric.TF_LOSS: 0.1,
            Metric.FR_LOSS: 0.5, "fr_exact_spread": spread}


def test_compare_leads_with_noise_and_names_the_trade_off() -> None:
    disagree = compare.comparison_reading([compare_row("γ = 1", 0.40, 0.62), compare_row("γ = 0", 0.30, 0.80)])
    assert disagree.startswith("Beyond seed noise: γ = 1 leads γ = 0 by 10.0 points")
    assert "Exact match and token accuracy disagree: γ = 1 gets the most whole sequences right (40.0% exact " \
           "match, 30.0% for γ = 0) but γ = 0 the most tokens (80.0% free-running token accuracy" in disagree
    noisy = compare.comparison_reading([compare_row("γ = 1", 0.40, 0.80, spread=0.05),
                                        compare_row("γ = 0", 0.37, 0.78)])
    assert noisy.startswith("Within seed noise: γ = 1 and γ = 0 cannot be ranked (3.0 points apart")
    assert "disagree" not in noisy  # γ = 1 leads on both


def arm(name: str, exact: float, tokens: float, low: float, high: float) -> dict:
    return {"arm": name, Metric.FR_EXACT: {"mean": exact, "ci": (low, high)},
            Metric.FR_TOKEN_ACC: {"mean": tokens, "ci": (tokens, tokens)}, GAP: {"mean": 0.99 - tokens}}


def cell(arms: list[dict], p: float, within: bool) -> dict:
    return {"label": "reverse, max length 16, hidden 64", "step": 1500, "failed": "", "arms": arms,
            "tests": [{"a": arms[0]["arm"], "b": arms[1]["arm"], "difference": 0.0, "p": p,
                       "within_seed_noise": within}]}


def test_study_leads_with_noise_keeps_intervals_in_range_and_names_the_trade_off() -> None:
    noisy = study.study_reading([cell([arm("γ = 1", 0.99, 0.70, 0.96, 1.038), arm("γ = 0", 0.97, 0.90, 0.9, 1.0)],
                                0.31, True)])
    paragraph = noisy.split("\n\n")[1]
    assert paragraph.startswith("**reverse, max length 16, hidden 64** (step 1500): Within seed noise: γ = 1 and "
                                "γ = 0 cannot be ranked (2.0 points apart; paired test over seeds, p = 0.310)")
    assert "95% CI 96.0% to 100.0% (clipped to 0-100%)" in paragraph and "103.8%" not in paragraph
    assert "Exact match and token accuracy disagree: γ = 1 gets the most whole sequences right" in paragraph
    clear = study.study_reading([cell([arm("γ = 0", 0.95, 0.97, 0.9, 0.99), arm("γ = 1", 0.60, 0.80, 0.5, 0.7)],
                                0.001, False)])
    assert "(step 1500): Beyond seed noise: γ = 0 leads γ = 1 by 35.0 points" in clear and "disagree" not in clear


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
    text = lessons.read_exposure_bias(snapshot).text
    assert "a gap of 17.4 points" in text and "a gap of 3.0 points" in text
    assert "loses 14.4 points more" in text  # 17.4 - 3.0 as shown, not 14.5 from the unrounded figures
    assert "Exact match and token accuracy disagree: γ = 1 gets the most whole sequences right" in text
    first, now, over_time = answers("exposure_bias", snapshot)  # every question answered from this run
    assert first.startswith("γ = 1's training loss fell to half of its start first, at step 300 (γ = 0 at step 600)")
    assert now.endswith("γ = 1 loses the most when it reads its own predictions.") and "a gap of 17.4 points" in now
    assert "γ = 1's gap starts at 17.4 points" in over_time and "it stayed about the same" in over_time


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


def check_answers(key: str, snapshot: CompareSnapshot, figures: list[str]) -> list[str]:
    """Every question answered, none with "not evaluated", and each figure of the run named in some answer."""
    answered = answers(key, snapshot)
    assert len(answered) == len(lessons.LESSONS[key].questions) and all(answered)
    assert not any("not evaluated" in answer for answer in answered)
    assert all(any(figure in answer for answer in answered) for figure in figures), (figures, answered)
    return answered


def test_the_attention_lesson_predicts_and_answers_from_its_seed_means() -> None:
    plain = [{4: 1.0, 5: 0.95, 6: 0.8, 7: 0.5, 8: 0.2 + 0.02 * s, 9: 0.1 + 0.01 * s} for s in range(3)]
    attending = [{4: 1.0, 5: 1.0, 6: 0.97, 7: 0.95, 8: 0.9 - 0.03 * s, 9: 0.85} for s in range(3)]
    run = seeded_snapshot("attention", "attention", {"none": [0.4, 0.42, 0.45], "dot": [0.8, 0.82, 0.79]},
                          {"none": 0.9, "dot": 1.5}, {"none": plain, "dot": attending})
    assert lessons.read_attention_cure(run).appeared is True
    assert PREDICTIONS["attention"].outcome(run) == 0  # "with attention", as the reading says
    parted, first, spread = check_answers("attention", run, ["16.5%", "86.0%", "at 6 tokens"])
    assert parted.startswith("Long outputs are held better by attention: no attention 16.5%, attention 86.0% "
                             "(free-running exact match on outputs of 8 to 9 tokens, mean over 3 seeds)")
    assert "first differ by 10.0 points or more at 6 tokens (97.0% with attention, 80.0% without)" in parted
    assert first.startswith("γ = 1, no attention's training loss fell to half of its start first, at step 250 "
                            "(γ = 1, dot attention at step 500)")
    assert "do not overlap" in spread and spread.endswith("more than seed noise.")
    even = seeded_snapshot("attention", "attention", {"none": [0.4] * 3, "dot": [0.4] * 3},
                           {"none": 0.9, "dot": 0.9}, {"none": plain, "dot": [dict(seed) for seed in plain]})
    assert PREDICTIONS["attention"].outcome(even) == 2 and lessons.read_attention_cure(even).appeared is False


def test_the_reversal_lesson_says_when_reversing_hurt() -> None:
    run = seeded_snapshot("reversal", "reverse_source", {"off": [0.7, 0.75, 0.72], "on": [0.5, 0.52, 0.55]},
                          {"off": 0.8, "on": 0.9})
    assert "reversal hurt here" in lessons.read_reversal(run).text
    assert PREDICTIONS["reversal"].outcome(run) == 1  # "in order", beyond noise
    first, apart, reverse = check_answers("reversal", run, ["72.3%", "52.3%", "6 to 14"])
    assert first.startswith("γ = 1, source in order and γ = 1, source reversed fell to half of their starting "
                            "training loss at the same logged step, 250: this run cannot tell them apart.")
    assert "the whole source, 6 to 14 tokens here" in apart and f"the source reversed {share(0.5233)}" in apart
    assert "the source reversed minus the source in order, free-running exact match: -20.0 points" in reverse
    assert reverse.endswith("expect the opposite sign.")
    early = seeded_snapshot("reversal", "reverse_source", {"off": [], "on": []}, {"off": 1.5, "on": 1.5})
    assert PREDICTIONS["reversal"].outcome(early) is None
    assert answers("reversal", early)[1:] == ["The run was not evaluated."] * 2


def test_the_cell_lesson_calls_seed_noise_a_tie_and_sizes_both_cells() -> None:
    run = seeded_snapshot("gru_or_lstm", "cell", {"lstm": [0.6, 0.7, 0.65], "gru": [0.68, 0.62, 0.66]},
                          {"lstm": 1.5, "gru": 0.7})
    assert lessons.read_gru_or_lstm(run).appeared is False
    assert PREDICTIONS["gru_or_lstm"].outcome(run) == 2
    first, spread, pick = check_answers("gru_or_lstm", run, ["65.0%", "65.3%"])
    assert first.startswith("γ = 1, GRU's training loss fell to half of its start first, at step 250 "
                            "(γ = 1, LSTM at step 500)")
    assert "the LSTM's seeds span 60.0% to 70.0%" in spread and "the ranges overlap" in spread
    assert spread.endswith("within seed noise.")
    assert pick.startswith("Size: the GRU has") and "On this run's numbers: the GRU" in pick
    clear = seeded_snapshot("gru_or_lstm", "cell", {"lstm": [0.8, 0.85, 0.9], "gru": [0.6, 0.64, 0.7]},
                            {"lstm": 0.9, "gru": 0.9})
    assert PREDICTIONS["gru_or_lstm"].outcome(clear) == 1 and "the LSTM did better" in \
        lessons.read_gru_or_lstm(clear).text
    assert "On this run's numbers: the LSTM, whose lead is more than seed noise" in answers("gru_or_lstm", clear)[2]


def test_the_shared_pieces() -> None:
    assert round(difference(0.174, 0.030), 3) == 0.144 and interval(-0.02, 0.5) == "95% CI 0.0% to 50.0% " \
                                                                                     "(clipped to 0-100%)"
    assert trade_off({"a": 0.5}, {"a": 0.9}) == "" and trade_off({"a": 0.5, "b": 0.4}, {"a": 0.9, "b": 0.8}) == ""
