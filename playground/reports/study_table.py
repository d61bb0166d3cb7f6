"""A study's tables and reading: per condition, each arm's mean with its interval over seeds and the paired
tests between arms; a reading that says which differences are more than seed noise."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from playground.experiments.statistics import final_by_length, mean_ci, paired_test
from playground.experiments.study_grid import MEASURES, STEPS_TO_TARGET, Condition, ConditionResult
from playground.reports.comparison_table import GAP
from playground.reports.readings import (
    clipped,
    difference,
    disagreement,
    interval,
    noise_lead,
    points,
    share,
    trade_off,
)
from playground.training.metrics import Metric


def _arm_values(condition: Condition, result: ConditionResult, arm: int, name: str) -> list[float]:
    seeds = condition.compare.seeds
    return [row[name] for row in result.finals[arm * seeds:(arm + 1) * seeds]]


def condition_summary(condition: Condition, result: ConditionResult | None) -> dict[str, Any]:
    """A condition's arms (means and 95% CIs over seeds) and paired tests between every two arms, on free-running
    exact match; empty lists until the condition has evaluated."""
    summary: dict[str, Any] = {"condition": condition.index, "label": condition.label, "task": condition.task,
                               condition.setting: condition.value, "hidden": condition.hidden,
                               "step": result.step if result else 0, "done": bool(result and result.done),
                               "failed": result.failed if result else "", "node": result.node if result else "",
                               "arms": [], "tests": []}
    if result is None or not result.finals:
        return summary
    arms = condition.compare.arms()
    labels = [arm.label for arm in arms]
    seeds = condition.compare.seeds
    for arm, label in enumerate(labels):
        row: dict[str, Any] = {"arm": label, **arms[arm].settings()}
        gaps = [tf - fr for tf, fr in zip(_arm_values(condition, result, arm, Metric.TF_TOKEN_ACC),
                                          _arm_values(condition, result, arm, Metric.FR_TOKEN_ACC), strict=True)]
        for name, values in [*((name, _arm_values(condition, result, arm, name)) for name in MEASURES), (GAP, gaps)]:
            estimate = mean_ci(values)
            row[name] = {"mean": estimate.mean, "ci": [estimate.low, estimate.high]}
        reached = [step for step in result.reached[arm * seeds:(arm + 1) * seeds] if step is not None]
        estimate = mean_ci(reached)
        row[STEPS_TO_TARGET] = {"mean": estimate.mean, "ci": [estimate.low, estimate.high], "seeds": len(reached),
                                "of": seeds}
        finals = result.finals[arm * seeds:(arm + 1) * seeds]
        row |= {"exact_by_length": final_by_length(finals), "tf_exact_by_length": final_by_length(finals, "val_tf")}
        if beyond := [final[Metric.BEYOND_EXACT] for final in finals if Metric.BEYOND_EXACT in final]:
            estimate = mean_ci(beyond)
            row[Metric.BEYOND_EXACT] = {"mean": estimate.mean, "ci": [estimate.low, estimate.high]}
        summary["arms"].append(row)
    for a, b in itertools.combinations(range(len(labels)), 2):
        test = paired_test(_arm_values(condition, result, a, Metric.FR_EXACT),
                           _arm_values(condition, result, b, Metric.FR_EXACT))
        summary["tests"].append({"a": labels[a], "b": labels[b], "difference": test.difference.mean,
                                 "ci": [test.difference.low, test.difference.high], "t": test.t, "p": test.p,
                                 "within_seed_noise": test.within_noise})
    return summary


def table_rows(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The whole study as one flat row per (condition, arm): what the CSV export and the page's table hold."""
    rows = []
    for summary in summaries:
        for row in summary["arms"]:
            flat: dict[str, Any] = {"condition": summary["label"], "task": summary["task"], "hidden": summary["hidden"],
                                    "step": summary["step"], "arm": row["arm"]}
            for name in (*MEASURES, GAP):
                flat |= {name: row[name]["mean"], f"{name}_ci_low": row[name]["ci"][0],
                         f"{name}_ci_high": row[name]["ci"][1]}
            if beyond := row.get(Metric.BEYOND_EXACT):
                flat |= {Metric.BEYOND_EXACT: beyond["mean"], f"{Metric.BEYOND_EXACT}_ci_low": beyond["ci"][0],
                         f"{Metric.BEYOND_EXACT}_ci_high": beyond["ci"][1]}
            steps = row[STEPS_TO_TARGET]
            flat |= {STEPS_TO_TARGET: steps["mean"], "seeds_reaching_90": steps["seeds"], "seeds": steps["of"]}
            rows.append(flat)
    return rows


TERMINAL_COLUMNS = {"condition": ("condition", str), "arm": ("arm", str), Metric.FR_EXACT: ("FR exact", share),
                    "interval": ("95% CI", str), Metric.FR_TOKEN_ACC: ("FR tokens", share),
                    GAP: ("gap", lambda value: f"{value * 100:+.1f}"), STEPS_TO_TARGET: ("steps to 90%", str)}


def format_summaries(summaries: list[dict[str, Any]]) -> str:
    """The results as aligned text for the terminal: one line per arm, then the failed conditions and every
    paired test."""
    lines = []
    if rows := table_rows(summaries):
        frame = pd.DataFrame(rows)
        frame["interval"] = [f"[{share(low)}, {share(high)}]" for low, high in
                             zip(frame[f"{Metric.FR_EXACT}_ci_low"], frame[f"{Metric.FR_EXACT}_ci_high"], strict=True)]
        frame[STEPS_TO_TARGET] = [f"{mean:.0f} ({reached}/{seeds})" if reached else "-" for mean, reached, seeds in
                                  zip(frame[STEPS_TO_TARGET], frame["seeds_reaching_90"], frame["seeds"], strict=True)]
        lines.append(frame[list(TERMINAL_COLUMNS)].to_string(
            index=False, header=[name for name, _ in TERMINAL_COLUMNS.values()],
            formatters=[format for _, format in TERMINAL_COLUMNS.values()]))
    else:
        lines.append("  ".join(name for name, _ in TERMINAL_COLUMNS.values()))
    lines += [f"{summary['label']} failed: {summary['failed']}" for summary in summaries if summary["failed"]]
    for summary in summaries:
        for test in summary["tests"]:
            verdict = "within seed noise" if test["within_seed_noise"] else "more than seed noise"
            p = "-" if not math.isfinite(test["p"]) else f"{test['p']:.3f}"
            lines.append(f"{summary['label']}: {test['a']} vs {test['b']}: {test['difference'] * 100:+.1f} points, "
                         f"p = {p} ({verdict})")
    return "\n".join(lines)


@dataclass(frozen=True)
class ConditionReading:
    """What the reading decided about one condition: its leader, whether the lead is beyond seed noise, and which arms
    the leader beats by more than seed noise (`beats`) or not (`ties`)."""

    label: str
    leader: str
    runner_up: str | None
    within_noise: bool | None  # the leader against the runner-up; None: no paired test could tell
    interval_clipped: bool  # the leader's interval had to be clipped to 0-100%
    disagreement: tuple[str, str] | None  # (most sequences, most tokens) when they differ
    beats: tuple[str, ...]
    ties: tuple[str, ...]
    widest_gap: str


@dataclass(frozen=True)
class StudyReading:
    """A study's reading: the decisions per evaluated condition, the conditions that failed and were left out, and the
    sentences that say it all (`text`)."""

    text: str
    conditions: tuple[ConditionReading, ...] = ()
    left_out: tuple[str, ...] = ()


def read_study(summaries: list[dict[str, Any]]) -> StudyReading:
    """For a student, per condition: first whether the leader's lead over the next arm is beyond seed noise (their
    paired test), then the leader with its interval (within 0-100%), the trade-off with token accuracy when the two
    disagree, and which other differences the seeds can tell apart."""
    paragraphs, conditions = [], []
    for summary in summaries:
        if not summary["arms"]:
            continue
        ranked = sorted(summary["arms"], key=lambda row: row[Metric.FR_EXACT]["mean"], reverse=True)
        best = ranked[0]
        exact = best[Metric.FR_EXACT]
        sentence = f"**{summary['label']}** (step {summary['step']}): "
        within = runner_up = None
        if len(ranked) > 1:
            runner_up = ranked[1]
            paired = next((test for test in summary["tests"]
                           if {test["a"], test["b"]} == {best["arm"], runner_up["arm"]}), None)
            within = None if paired is None or not math.isfinite(paired["p"]) else paired["within_seed_noise"]
            sentence += noise_lead(best["arm"], runner_up["arm"],
                                   difference(exact["mean"], runner_up[Metric.FR_EXACT]["mean"]), within,
                                   f"paired test over seeds, p = {paired['p']:.3f}" if within is not None else "")
            sentence += " "
        seeds = interval(*exact["ci"]) if math.isfinite(exact["ci"][0]) else "one seed: no interval"
        sentence += (f"{best['arm']} gets the most sequences exactly right on its own, {share(exact['mean'])} "
                     f"free-running exact match ({seeds}).")
        by_exact = {row["arm"]: row[Metric.FR_EXACT]["mean"] for row in ranked}
        by_tokens = {row["arm"]: row[Metric.FR_TOKEN_ACC]["mean"] for row in ranked}
        if agree := trade_off(by_exact, by_tokens):
            sentence += " " + agree
        against = [test for test in summary["tests"] if best["arm"] in (test["a"], test["b"])]
        clear = [test for test in against if not test["within_seed_noise"]]
        noise = [test for test in against if test["within_seed_noise"]]

        def others(test: dict[str, Any], best: dict[str, Any] = best) -> str:
            return str(test["b"] if test["a"] == best["arm"] else test["a"])

        if clear:
            sentence += (" It beats " + ", ".join(f"{others(t)} (p = {t['p']:.3f})" for t in clear)
                         + ": the same seeds, paired, differ by more than seed noise.")
        if noise:
            sentence += (" Against " + ", ".join(f"{others(t)} (p = {t['p']:.2f})" for t in noise)
                         + " the difference is within seed noise: more seeds or steps could tell them apart.")
        widest = max(summary["arms"], key=lambda row: row[GAP]["mean"])
        sentence += (f" The widest exposure-bias gap (teacher-forced minus free-running token accuracy) is "
                     f"{widest['arm']}'s, {points(widest[GAP]['mean'])}.")
        paragraphs.append(sentence)
        conditions.append(ConditionReading(
            summary["label"], best["arm"], runner_up["arm"] if runner_up else None, within,
            math.isfinite(exact["ci"][0]) and clipped(*exact["ci"])[2], disagreement(by_exact, by_tokens),
            tuple(others(test) for test in clear), tuple(others(test) for test in noise), widest["arm"]))
    left_out = tuple(summary["label"] for summary in summaries if summary["failed"] and not summary["arms"])
    paragraphs += [f"**{summary['label']}** failed twice and was left out: {summary['failed']}."
                   for summary in summaries if summary["failed"] and not summary["arms"]]
    if not paragraphs:
        return StudyReading("No condition has evaluated yet: the reading appears as conditions report.")
    return StudyReading("A 95% confidence interval says where the mean over *all* seeds would likely be; a paired "
                        "test compares two arms seed by seed (same initial weights and batches), and p < 0.05 means "
                        "a difference that large would be rare if the arms were equally good.\n\n"
                        + "\n\n".join(paragraphs), tuple(conditions), left_out)


def study_reading(summaries: list[dict[str, Any]]) -> str:
    """The reading's sentences (`read_study` has its decisions too)."""
    return read_study(summaries).text
