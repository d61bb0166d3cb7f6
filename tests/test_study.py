"""Study statistics against textbook numbers, scipy.stats and recorded results; the grid and its messages."""

from __future__ import annotations

import json
import math
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import ray
from scipy import stats
from streamlit.testing.v1 import AppTest

from playground.core.config import ConfigError, TrainConfig
from playground.experiments.statistics import mean_ci, paired_test
from playground.experiments.study_grid import Condition, ConditionResult, StudyConfig
from playground.reports.study_table import condition_summary, format_summaries, read_study, table_rows
from playground.training.metrics import Metric
from tests.conftest import new_app

BASE = TrainConfig(steps=20, eval_every=10, val_size=32)


RECORDED = json.loads((Path(__file__).parent / "fixtures" / "study_statistics.json").read_text())


@pytest.mark.parametrize("case", RECORDED["cases"], ids=lambda case: f"{len(case['a'])} seeds")
def test_intervals_and_p_values_keep_the_numbers_recorded_before_scipy(case: dict[str, list[float]]) -> None:
    """The hand-written incomplete beta and bisection gave these; scipy.stats must give them again."""
    estimate, test = mean_ci(case["a"]), paired_test(case["a"], case["b"])
    assert [estimate.mean, estimate.low, estimate.high, estimate.n] == pytest.approx(case["mean_ci"], rel=1e-9)
    assert [test.difference.mean, test.difference.low, test.difference.high, test.t, test.p] == pytest.approx(
        case["paired"], rel=1e-9)


@pytest.mark.parametrize("case", RECORDED["cases"], ids=lambda case: f"{len(case['a'])} seeds")
def test_intervals_and_p_values_are_scipys(case: dict[str, list[float]]) -> None:
    a, b = case["a"], case["b"]
    n = len(a)
    low, high = stats.t.interval(0.95, n - 1, loc=stats.tmean(a), scale=stats.sem(a))
    estimate = mean_ci(a)
    assert (estimate.low, estimate.high) == pytest.approx((low, high), rel=1e-12)
    half = stats.t.ppf(0.975, n - 1) * stats.tstd(a) / math.sqrt(n)
    assert estimate.high - estimate.mean == pytest.approx(half, rel=1e-9)
    expected = stats.ttest_rel(a, b)
    test = paired_test(a, b)
    assert (test.t, test.p) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-12)


@pytest.mark.parametrize(("df", "expected"), [(1, 12.706205), (4, 2.776445), (9, 2.262157), (29, 2.045230)])
def test_recorded_t_quantiles_match_the_tables_and_scipy(df: int, expected: float) -> None:
    recorded = RECORDED["t_quantile_95"][str(df)]
    assert recorded == pytest.approx(expected, abs=1e-5)
    assert stats.t.ppf(0.975, df) == pytest.approx(recorded, rel=1e-9)


def test_mean_ci_by_hand() -> None:
    estimate = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])  # sd = sqrt(2.5), half-width = 2.776445 * sd / sqrt(5)
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert (estimate.mean, estimate.n) == (3.0, 5)
    assert estimate.low == pytest.approx(3.0 - half, abs=1e-5) and estimate.high == pytest.approx(3.0 + half, abs=1e-5)
    assert math.isnan(mean_ci([0.5]).low)


def test_paired_t_test_by_hand() -> None:
    a, b = [0.9, 0.8, 0.85, 0.95, 0.7], [0.8, 0.75, 0.7, 0.9, 0.72]
    d = [x - y for x, y in zip(a, b, strict=True)]  # mean 0.066, sd 0.06348: t = 2.325 with 4 df
    mean = sum(d) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 4)
    test = paired_test(a, b)
    assert test.t == pytest.approx(mean / (sd / math.sqrt(5)))
    assert test.p == pytest.approx(2 * stats.t.sf(test.t, 4))
    assert test.t == pytest.approx(2.3247, abs=1e-3)
    assert test.p == pytest.approx(0.0807, abs=5e-4) and test.within_noise  # t tables: between 0.05 and 0.1


def test_paired_test_with_identical_differences() -> None:
    assert paired_test([1.0, 1.0], [1.0, 1.0]).p == 1.0
    clear = paired_test([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert clear.p == 0.0 and not clear.within_noise


def test_grid_has_one_condition_per_task_setting_and_size() -> None:
    config = StudyConfig.build(BASE, ["reverse", "addition"], [4, 6], [2], [8, 16], [0, 0.5, 1], ["linear"], 3)
    conditions = config.conditions()
    assert [condition.label for condition in conditions] == [
        "reverse, max length 4, hidden 8", "reverse, max length 4, hidden 16",
        "reverse, max length 6, hidden 8", "reverse, max length 6, hidden 16",
        "addition, 2 digits, hidden 8", "addition, 2 digits, hidden 16"]
    assert config.models_per_condition == 12 == len(conditions[0].compare.configs())
    assert conditions[0].compare.base.min_len == 3 and conditions[0].compare.base.max_len == 4
    assert conditions[4].compare.base.max_digits == 2 and conditions[5].compare.base.hidden_dim == 16
    assert StudyConfig.from_dict(config.as_dict()) == config


def test_each_cell_tests_as_far_beyond_as_its_own_size_allows() -> None:
    config = StudyConfig.build(BASE.replace(test_max_len=12, test_max_digits=4), ["reverse", "addition"], [4, 8, 30],
                               [2, 3], [8], [0, 1], [], 2)
    tested = [condition.compare.base.size_range().tested for condition in config.conditions()]
    assert tested == [8, 12, 30, 4, 4]  # twice 4; 12 as asked; at least the condition's own 30; 4 digits within 2 x 2


def test_a_conditions_arms_carry_exact_match_by_length() -> None:
    config = StudyConfig.build(BASE.replace(max_len=4, test_max_len=6), ["reverse"], [4], [2], [8], [0, 1], [], 2)
    condition = config.conditions()[0]
    finals = [{Metric.FR_EXACT: 1.0, Metric.FR_TOKEN_ACC: 1.0, Metric.TF_TOKEN_ACC: 1.0, Metric.BEYOND_EXACT: x,
               "val_fr_exact_len_5": x, "val_fr_exact_len_6": x / 2, "val_tf_exact_len_5": 1.0}
              for x in (0.2, 0.4, 0.6, 0.8)]
    arms = condition_summary(condition, ConditionResult(20, True, 1.0, finals))["arms"]
    assert arms[0]["exact_by_length"] == pytest.approx({5: 0.3, 6: 0.15}) and arms[1]["tf_exact_by_length"] == {5: 1.0}
    assert arms[1][Metric.BEYOND_EXACT]["mean"] == pytest.approx(0.7)
    rows = table_rows([condition_summary(condition, ConditionResult(20, True, 1.0, finals))])
    assert rows[0][Metric.BEYOND_EXACT] == pytest.approx(0.3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tasks": []}, "no task chosen"),
    ({"tasks": ["custom"]}, "task 'custom' is not allowed in a study"),
    ({"hiddens": []}, "no hidden size chosen"),
    ({"hiddens": ["big"]}, "hidden size values ['big'] are not allowed"),
    ({"seeds": 1}, "a study needs a whole number between 2 and 30"),
    ({"ratios": [2]}, "ratio 2 is not allowed"),
    ({"schedules": ["sudden"]}, "schedule 'sudden' is not allowed"),
    ({"max_lens": [80]}, "max_len = 80 is not allowed"),
    ({"hiddens": list(range(8, 80))}, "conditions (tasks x settings x hidden sizes) chosen: at most 64"),
])
def test_validation_messages(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"tasks": ["reverse"], "max_lens": [4], "digits": [2], "hiddens": [8],
                                 "ratios": [0, 1], "schedules": [], "seeds": 2} | kwargs
    with pytest.raises(ConfigError) as error:
        StudyConfig.build(BASE, **values)  # type: ignore[arg-type]
    assert any(message in problem for problem in error.value.problems), error.value.problems


def test_condition_summary_and_reading_from_results() -> None:
    config = StudyConfig.build(BASE, ["reverse"], [4], [2], [8], [0, 1], [], 3)
    condition: Condition = config.conditions()[0]
    exact = [0.5, 0.6, 0.55, 0.9, 0.95, 0.92]  # arm-major: γ = 0 seeds 0..2, then γ = 1
    finals = [{Metric.FR_EXACT: x, Metric.FR_TOKEN_ACC: x, Metric.TF_TOKEN_ACC: 1.0} for x in exact]
    summary = condition_summary(condition, ConditionResult(20, True, 1.0, finals))
    assert [row["arm"] for row in summary["arms"]] == ["γ = 0", "γ = 1"]
    assert summary["arms"][1][Metric.FR_EXACT]["mean"] == pytest.approx((0.9 + 0.95 + 0.92) / 3)
    (test,) = summary["tests"]
    assert test["difference"] == pytest.approx((-0.4 - 0.35 - 0.37) / 3)
    assert test["p"] < 0.05 and not test["within_seed_noise"]
    [read] = read_study([summary]).conditions
    assert (read.leader, read.runner_up, read.within_noise, read.beats) == ("γ = 1", "γ = 0", False, ("γ = 0",))
    assert condition_summary(condition, None)["arms"] == []


def study_page() -> AppTest:
    at = new_app().run()
    at.switch_page("app_pages/study.py").run()
    return at


@pytest.mark.usefixtures("fresh_app")
def test_study_page_defaults_and_messages_without_ray() -> None:
    at = study_page()
    assert not at.exception and not at.error
    assert at.title[0].value == "Study: teacher forcing, measured"
    assert at.multiselect(key="study_tasks").value == ["reverse", "sort"]
    assert at.multiselect(key="study_ratios").value == [0.0, 0.5, 1.0]
    assert at.number_input(key="study_seeds").value == 5 and not at.button(key="study_start").disabled
    assert all(widget.help for kind in ("multiselect", "number_input", "text_input", "button")
               for widget in at.get(kind))
    at.multiselect(key="study_tasks").set_value([]).run()
    at.multiselect(key="study_hiddens").set_value([]).run()
    errors = [error.value for error in at.error]
    assert "no task chosen: choose at least one" in errors and "no hidden size chosen: choose at least one" in errors
    assert at.button(key="study_start").disabled
    assert not ray.is_initialized()


@pytest.mark.usefixtures("fresh_app")
def test_the_study_link_holds_the_grid_and_names_a_value_it_cannot_use() -> None:
    at = study_page()
    at.multiselect(key="study_tasks").set_value(["copy"])
    at.multiselect(key="study_schedules").set_value([])
    at.number_input(key="study_seeds").set_value(3)
    at.run()
    shared = parse_qs(urlsplit(at.code[0].value).query, keep_blank_values=True)
    assert shared == {"study_tasks": ["copy"], "study_schedules": [""], "study_seeds": ["3"]}  # no schedule: empty
    opened = new_app()
    opened.switch_page("app_pages/study.py")
    opened.query_params.update(study_tasks=["copy", "sort"], study_seeds="40", study_ratios=["0", "1"],
                               study_schedules="")
    opened.run()
    assert not opened.exception
    assert opened.multiselect(key="study_tasks").value == ["copy", "sort"]
    assert opened.multiselect(key="study_ratios").value == [0.0, 1.0]
    assert opened.multiselect(key="study_schedules").value == []  # an empty list stays empty
    assert opened.number_input(key="study_seeds").value == 5  # 40 is past the limit: the default stays
    assert [warning.value for warning in opened.warning] == [
        "The link's study\\_seeds = '40' cannot be used (allowed: 2 to 30): the page shows '5' instead."]


@pytest.mark.usefixtures("fresh_app")
@pytest.mark.slow
def test_the_study_page_compares_models_in_every_condition_and_links_them() -> None:
    at = study_page()
    at.multiselect(key="study_tasks").set_value(["reverse"])
    at.multiselect(key="study_max_lens").set_value([8])
    at.multiselect(key="study_ratios").set_value([1.0])
    at.multiselect(key="study_schedules").set_value([])
    at.multiselect(key="study_attentions").set_value(["none", "dot"])
    at.number_input(key="study_seeds").set_value(3)
    at.run()
    assert not at.exception and not at.error
    assert "1 conditions x 6 models each (2 arms x 3 seeds)" in " ".join(caption.value for caption in at.caption)
    shared = parse_qs(urlsplit(at.code[0].value).query, keep_blank_values=True)
    assert shared["study_attentions"] == ["none", "dot"]
    opened = new_app()
    opened.switch_page("app_pages/study.py")
    opened.query_params.update(shared)
    opened.run()
    assert opened.multiselect(key="study_attentions").value == ["none", "dot"]
    assert not ray.is_initialized()


def test_the_terminal_table_has_a_line_per_arm_then_the_failed_conditions_and_the_tests() -> None:
    config = StudyConfig.build(BASE, ["reverse", "addition"], [4], [2], [8], [0, 1], [], 3)
    trained, diverged = config.conditions()
    exact = [0.5, 0.6, 0.55, 0.9, 0.95, 0.92]
    finals = [{Metric.FR_EXACT: x, Metric.FR_TOKEN_ACC: x, Metric.TF_TOKEN_ACC: 1.0} for x in exact]
    reached = [None, None, None, 12.0, 10.0, None]
    summaries = [condition_summary(trained, ConditionResult(20, True, 1.0, finals, reached)),
                 condition_summary(diverged, ConditionResult(failed="diverged"))]
    header, *arms, failed, test = format_summaries(summaries).splitlines()
    assert header.split()[:3] == ["condition", "arm", "FR"]
    assert [line.split("γ")[1].split()[2:] for line in arms] == [
        ["55.0%", "[42.6%,", "67.4%]", "55.0%", "+45.0", "-"],
        ["92.3%", "[86.1%,", "98.6%]", "92.3%", "+7.7", "11", "(2/3)"]]
    assert failed.startswith(diverged.label) and failed.endswith("diverged")
    assert test.startswith(f"{trained.label}: γ = 0 vs γ = 1: -37.3 points")
