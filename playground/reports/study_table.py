"""A study's tables and reading: per cell, each arm's mean with its interval over seeds and the paired
tests between arms; a reading that says which differences are more than seed noise."""

from __future__ import annotations

import itertools
import math
from typing import Any

from playground.experiments.statistics import final_by_length, mean_ci, paired_test
from playground.experiments.study_grid import MEASURES, STEPS_TO_TARGET, Cell, CellResult
from playground.reports.comparison_table import GAP
from playground.reports.readings import difference, interval, noise_lead, points, share, trade_off
from playground.training.metrics import Metric


def _arm_values(cell: Cell, result: CellResult, arm: int, name: str) -> list[float]:
    seeds = cell.compare.seeds
    return [row[name] for row in result.finals[arm * seeds:(arm + 1) * seeds]]


def cell_summary(cell: Cell, result: CellResult | None) -> dict[str, Any]:
    """A cell's arms (means and 95% CIs over seeds) and paired tests between every two arms, on free-running
    exact match; empty lists until the cell has evaluated."""
    summary: dict[str, Any] = {"cell": cell.index, "label": cell.label, "task": cell.task, cell.setting: cell.value,
                               "hidden": cell.hidden, "step": result.step if result else 0,
                               "done": bool(result and result.done), "failed": result.failed if result else "",
                               "node": result.node if result else "",
                               "arms": [], "tests": []}
    if result is None or not result.finals:
        return summary
    arms = cell.compare.arms()
    labels = [arm.label for arm in arms]
    seeds = cell.compare.seeds
    for arm, label in enumerate(labels):
        row: dict[str, Any] = {"arm": label, **arms[arm].settings()}
        gaps = [tf - fr for tf, fr in zip(_arm_values(cell, result, arm, Metric.TF_TOKEN_ACC),
                                          _arm_values(cell, result, arm, Metric.FR_TOKEN_ACC), strict=True)]
        for name, values in [*((name, _arm_values(cell, result, arm, name)) for name in MEASURES), (GAP, gaps)]:
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
        test = paired_test(_arm_values(cell, result, a, Metric.FR_EXACT), _arm_values(cell, result, b, Metric.FR_EXACT))
        summary["tests"].append({"a": labels[a], "b": labels[b], "difference": test.difference.mean,
                                 "ci": [test.difference.low, test.difference.high], "t": test.t, "p": test.p,
                                 "within_seed_noise": test.within_noise})
    return summary


def table_rows(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The whole study as one flat row per (cell, arm): what the CSV export and the page's table hold."""
    rows = []
    for summary in summaries:
        for row in summary["arms"]:
            flat: dict[str, Any] = {"cell": summary["label"], "task": summary["task"], "hidden": summary["hidden"],
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


def format_summaries(summaries: list[dict[str, Any]]) -> str:
    """The results as aligned text: one line per arm, then the paired tests of the cell."""
    lines = [f"{'cell':<34} {'arm':<22} {'FR exact':>9} {'95% CI':>17} {'FR tokens':>9} {'gap':>7} "
             f"{'steps to 90%':>13}"]
    for summary in summaries:
        if summary["failed"]:
            lines.append(f"{summary['label']:<34} failed: {summary['failed']}")
        for row in summary["arms"]:
            exact, tokens, gap, steps = row[Metric.FR_EXACT], row[Metric.FR_TOKEN_ACC], row[GAP], row[STEPS_TO_TARGET]
            low, high = exact["ci"]
            reached = f"{steps['mean']:.0f} ({steps['seeds']}/{steps['of']})" if steps["seeds"] else "-"
            lines.append(f"{summary['label']:<34} {row['arm']:<22} {share(exact['mean']):>9} "
                         f"{'[' + share(low) + ', ' + share(high) + ']':>17} {share(tokens['mean']):>9} "
                         f"{gap['mean'] * 100:>+6.1f}  {reached:>13}")
        for test in summary["tests"]:
            verdict = "within seed noise" if test["within_seed_noise"] else "more than seed noise"
            p = "-" if not math.isfinite(test["p"]) else f"{test['p']:.3f}"
            lines.append(f"{'':<34} {test['a']} vs {test['b']}: {test['difference'] * 100:+.1f} points, p = {p} "
                         f"({verdict})")
    return "\n".join(lines)


def reading(summaries: list[dict[str, Any]]) -> str:
    """For a student, per cell: first whether the leader's lead over the next arm is beyond seed noise (their
    paired test), then the leader with its interval (within 0-100%), the trade-off with token accuracy when the two
    disagree, and which other differences the seeds can tell apart."""
    paragraphs = []
    for summary in summaries:
        if not summary["arms"]:
            continue
        ranked = sorted(summary["arms"], key=lambda row: row[Metric.FR_EXACT]["mean"], reverse=True)
        best = ranked[0]
        exact = best[Metric.FR_EXACT]
        sentence = f"**{summary['label']}** (step {summary['step']}): "
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
        if agree := trade_off({row["arm"]: row[Metric.FR_EXACT]["mean"] for row in ranked},
                              {row["arm"]: row[Metric.FR_TOKEN_ACC]["mean"] for row in ranked}):
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
    paragraphs += [f"**{summary['label']}** failed twice and was left out: {summary['failed']}."
                   for summary in summaries if summary["failed"] and not summary["arms"]]
    if not paragraphs:
        return "No cell has evaluated yet: the reading appears as cells report."
    return ("A 95% confidence interval says where the mean over *all* seeds would likely be; a paired test "
            "compares two arms seed by seed (same initial weights and batches), and p < 0.05 means a difference "
            "that large would be rare if the arms were equally good.\n\n" + "\n\n".join(paragraphs))
