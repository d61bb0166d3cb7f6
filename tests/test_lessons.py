"""Lessons: every prepared experiment is valid and every reading's branch is computed from the numbers it gets."""

from __future__ import annotations

import pytest

from playground.core.config import TrainConfig
from playground.course.answers import answered
from playground.course.glossary import TERMS
from playground.course.lessons import (
    LESSONS,
    STEPS_ENV,
    Why,
    final_gamma,
    prepared,
    read_bottleneck,
    read_exposure_bias,
    read_scheduled_sampling,
    setup_facts,
)
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.training.metrics import Metric


def row(step: int, tf_tokens: float, fr_tokens: float, fr_exact: float = 0.5, gamma: float = 1.0) -> dict:
    return {Metric.STEP: float(step), Metric.TRAIN_LOSS: 0.5, Metric.GAMMA: gamma, Metric.TF_LOSS: 0.4,
            Metric.FR_LOSS: 0.6, Metric.TF_TOKEN_ACC: tf_tokens, Metric.FR_TOKEN_ACC: fr_tokens,
            Metric.TF_EXACT: fr_exact, Metric.FR_EXACT: fr_exact}


def snapshot(config: CompareConfig, finals: list[dict], by_length: list[dict[int, float]] | None = None,
             ) -> CompareSnapshot:
    arms = config.arms()
    return CompareSnapshot([arm.label for arm in arms], 1, [[final] for final in finals],
                           by_length or [{} for _ in finals], 600, 600, 30.0, config)


EXPOSURE = LESSONS["exposure_bias"].config
SCHEDULES = LESSONS["scheduled_sampling"].config
BOTTLENECK = LESSONS["bottleneck"].config


def test_every_lesson_is_valid_has_questions_and_charts_it_can_draw() -> None:
    assert len(LESSONS) >= 3
    for lesson in LESSONS.values():
        assert lesson.story and len(lesson.questions) >= 2 and lesson.charts
        assert lesson.config.base.steps <= 800 and lesson.config.base.hidden_dim <= 64  # about a minute, 2 cores
        config = lesson.config
        assert CompareConfig.build(config.base, config.ratios, config.schedules, config.seeds,
                                   variants=config.variants) == config


def test_the_steps_override_shortens_every_lesson(monkeypatch: pytest.MonkeyPatch) -> None:
    lesson = LESSONS["scheduled_sampling"]
    assert prepared(lesson) == lesson.config
    monkeypatch.setenv(STEPS_ENV, "20")
    short = prepared(lesson)
    assert (short.base.steps, short.base.eval_every, short.schedules) == (20, 20, lesson.config.schedules)


def test_no_evaluation_yet_is_said_not_guessed() -> None:
    empty = CompareSnapshot(["γ = 0", "γ = 1"], 1, [[], []], [{}, {}], 0, 600, 0.0, EXPOSURE)
    assert read_exposure_bias(empty).appeared is None
    assert read_scheduled_sampling(CompareSnapshot(["a", "b", "c"], 1, [[], [], []], [{}] * 3, 0, 600, 0.0,
                                                   SCHEDULES)).appeared is None
    assert read_bottleneck(CompareSnapshot(["γ = 0.5"], 1, [[]], [{}], 0, 600, 0.0, BOTTLENECK)).appeared is None


def test_exposure_bias_appears_when_teacher_forcing_has_the_wider_gap() -> None:
    result = read_exposure_bias(snapshot(EXPOSURE, [row(600, 0.845, 0.825), row(600, 0.854, 0.674)]))
    assert (result.appeared, result.why) == (True, None)
    barely = read_exposure_bias(snapshot(EXPOSURE, [row(600, 0.845, 0.825), row(600, 0.854, 0.815)]))
    assert (barely.appeared, barely.why) == (False, Why.WITHIN_NOISE)  # gaps of 2.0 and 3.9 points


@pytest.mark.parametrize(("finals", "why"), [
    ([row(600, 0.40, 0.38), row(600, 0.45, 0.30)], Why.NOT_LEARNED),
    ([row(600, 0.995, 0.99), row(600, 0.999, 0.985)], Why.TOO_EASY),
    ([row(600, 0.80, 0.70), row(600, 0.85, 0.74)], Why.WITHIN_NOISE),
])
def test_exposure_bias_says_why_it_did_not_appear(finals: list[dict], why: Why) -> None:
    result = read_exposure_bias(snapshot(EXPOSURE, finals))
    assert (result.appeared, result.why) == (False, why)


def test_scheduled_sampling_appears_when_a_decaying_schedule_wins_free_running() -> None:
    finals = [row(600, 0.85, 0.674, gamma=1.0), row(600, 0.82, 0.784, gamma=0.0), row(600, 0.81, 0.782, gamma=0.0)]
    run = snapshot(SCHEDULES, finals)
    assert (read_scheduled_sampling(run).appeared, read_scheduled_sampling(run).why) == (True, None)
    assert list(final_gamma(run).values()) == [1.0, 0.0, 0.0]
    assert answered("scheduled_sampling", run)[2].facts["best"] == run.labels[1]  # linear 1→0, 11 points ahead


@pytest.mark.parametrize(("gammas", "free", "why"), [
    ((1.0, 0.0, 0.0), (0.99, 0.985, 0.98), Why.TOO_EASY),
    ((1.0, 0.8, 0.9), (0.70, 0.70, 0.69), Why.NOT_DECAYED),
    ((1.0, 0.0, 0.0), (0.80, 0.70, 0.72), Why.OPPOSITE),  # constant γ = 1 ahead by 8 points
    ((1.0, 0.0, 0.0), (0.70, 0.71, 0.70), Why.WITHIN_NOISE),
])
def test_scheduled_sampling_says_why_it_did_not_appear(gammas: tuple, free: tuple, why: Why) -> None:
    finals = [row(600, 0.9, value, gamma=gamma) for value, gamma in zip(free, gammas, strict=True)]
    result = read_scheduled_sampling(snapshot(SCHEDULES, finals))
    assert (result.appeared, result.why) == (False, why)


def by_length(values: list[float]) -> list[dict[int, float]]:
    return [dict(enumerate(values, start=2))]


def test_the_bottleneck_appears_when_long_outputs_fail_and_short_ones_do_not() -> None:
    lengths = by_length([1.0, 1.0, 0.87, 0.66, 0.33, 0.12, 0.0, 0.06, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    run = snapshot(BOTTLENECK, [row(600, 0.7, 0.6)], lengths)
    assert (read_bottleneck(run).appeared, read_bottleneck(run).why) == (True, None)
    holds, shape, _ = (answer.facts for answer in answered("bottleneck", run))
    assert holds == {"holds_up_to": 3} and shape == {"steepest_at": 6, "shape": "gradual"}


@pytest.mark.parametrize(("values", "why"), [
    ([0.3, 0.2, 0.2, 0.1, 0.1, 0.0], Why.NOT_LEARNED),
    ([1.0, 1.0, 0.99, 0.98, 0.95, 0.93], Why.ENOUGH_CAPACITY),
    ([0.6, 0.55, 0.55, 0.5, 0.5, 0.5], Why.LOW_AT_EVERY_LENGTH),
])
def test_the_bottleneck_says_why_it_did_not_appear(values: list[float], why: Why) -> None:
    result = read_bottleneck(snapshot(BOTTLENECK, [row(600, 0.7, 0.6)], by_length(values)))
    assert (result.appeared, result.why) == (False, why)


def test_a_real_tiny_lesson_run_gets_a_reading_from_its_own_numbers() -> None:
    from playground.runs.compare_engine import CompareEngine

    tiny = CompareConfig.build(TrainConfig(emb_dim=8, hidden_dim=8, batch_size=16, val_size=32, steps=10,
                                           eval_every=5, min_len=2, max_len=6), (0.5,))
    run = CompareEngine(tiny).run_to_end()
    result = read_bottleneck(run)
    assert run.step == 10 and result.appeared is not None and (result.why is None) == result.appeared


def test_the_glossary_explains_every_word_the_lessons_use() -> None:
    wanted = ("teacher forcing", "free-running", "exposure bias", "exact match", "token accuracy",
              "scheduled sampling", "linear schedule", "exponential schedule", "inverse-sigmoid schedule",
              "hidden state", "cell state", "gates", "perplexity", "seed")
    assert set(wanted) <= TERMS.keys()
    assert all(term.text.strip() for term in TERMS.values())
    assert "k^{t}" in TERMS["exponential schedule"].formula
    assert r"\frac{k}{k + e^{t / k}}" in TERMS["inverse-sigmoid schedule"].formula


def test_each_lesson_says_what_it_trains_from_its_own_config() -> None:
    for lesson in LESSONS.values():
        base = lesson.config.base
        facts = setup_facts(lesson.config)
        assert facts.startswith(f"Task: {base.task} (sequences of {base.min_len} to {base.max_len} symbols)")
        assert f"hidden size {base.hidden_dim}" in facts and f"{base.steps:,} training steps" in facts
