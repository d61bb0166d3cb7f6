"""A study: teacher-forcing arms measured over seeds, tasks, task settings and model sizes, with statistics.

One comparison (`CompareConfig`: every arm x seed in one `BatchedTrainer`) is one *cell* of the grid
tasks x settings x hidden sizes. Within a cell, seed s of every arm starts from the same initial weights and
reads the same batches and coin draws, so arms are compared *paired over seeds*: the differences between two
arms on the same seed cancel the luck of the draw, and a paired t-test says whether what is left is more than
seed noise. Means carry a t-based 95% confidence interval over seeds.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from scipy import stats

from playground.analysis.compare import GAP, VARIANT_KEYS, CompareConfig, evaluated, steps_to_reach
from playground.analysis.readings import difference, interval, noise_lead, points, share, trade_off
from playground.core.config import ConfigError, TrainConfig
from playground.core.tasks import TASKS
from playground.training.rules import Metric

MAX_SEEDS = 30
MAX_CELLS = 64
LEVEL = 0.95  # confidence of the intervals; a paired test's p below 1 - LEVEL is "more than seed noise"
MEASURES = (Metric.FR_EXACT, Metric.FR_TOKEN_ACC, Metric.TF_TOKEN_ACC)
STEPS_TO_TARGET = "steps_to_90"  # first evaluated step at TARGET_ACCURACY free-running exact match, over the seeds
# that reached it


@dataclass(frozen=True)
class Cell:
    """One group of the grid: a task, its setting (max length or digits) and a hidden size."""

    index: int
    task: str
    setting: str  # "max_len" or "max_digits": what the task's size knob is
    value: int
    hidden: int
    compare: CompareConfig

    @property
    def label(self) -> str:
        size = f"max length {self.value}" if self.setting == "max_len" else f"{self.value} digits"
        return f"{self.task}, {size}, hidden {self.hidden}"


@dataclass(frozen=True)
class StudyConfig:
    base: TrainConfig  # everything the grid does not vary (steps, batch, optimizer, val_size, first seed, ...)
    tasks: tuple[str, ...]
    max_lens: tuple[int, ...]
    digits: tuple[int, ...]
    hiddens: tuple[int, ...]
    ratios: tuple[float, ...]
    schedules: tuple[str, ...]
    seeds: int
    variants: tuple[tuple[str, ...], ...] = ((), (), ())  # the model settings compared in every cell (as Compare)

    @classmethod
    def build(cls, base: TrainConfig, tasks: Any, max_lens: Any = (8,), digits: Any = (3,), hiddens: Any = (64,),
              ratios: Any = (0.0, 0.5, 1.0), schedules: Any = (), seeds: Any = 5,
              variants: Any = ((), (), ())) -> StudyConfig:
        """Coerce and validate the grid; every problem at once, each cell checked as a comparison would be.
        `variants` lists the cells, attentions and source orders whose arms every cell compares (empty: the base's)."""
        problems: list[str] = []
        tasks = tuple(dict.fromkeys(tasks))
        if not tasks:
            problems.append("no task chosen: choose at least one")
        problems += [f"task {t!r} is not allowed in a study: choose from "
                     f"{', '.join(name for name in TASKS if name != 'custom')}" for t in tasks
                     if t not in TASKS or t == "custom"]
        numbers = {"max length": max_lens, "digits": digits, "hidden size": hiddens}
        parsed: dict[str, tuple[int, ...]] = {}
        for name, values in numbers.items():
            try:
                parsed[name] = tuple(dict.fromkeys(int(str(v)) for v in values))
            except ValueError:
                problems.append(f"{name} values {list(values)!r} are not allowed: give whole numbers")
                parsed[name] = ()
        if not parsed["hidden size"]:
            problems.append("no hidden size chosen: choose at least one")
        if seeds is True or seeds is False or not isinstance(seeds, int) or not 2 <= seeds <= MAX_SEEDS:
            problems.append(f"seeds = {seeds!r} is not allowed: a study needs a whole number between 2 and "
                            f"{MAX_SEEDS} (a confidence interval needs at least two seeds)")
        if problems:
            raise ConfigError(problems)
        config = cls(base.validate(), tasks, parsed["max length"], parsed["digits"], parsed["hidden size"],
                     (), tuple(dict.fromkeys(schedules)), seeds, tuple(tuple(values) for values in variants))
        if len(config.grid()) > MAX_CELLS:
            raise ConfigError([f"{len(config.grid())} cells (tasks x settings x hidden sizes) chosen: at most "
                               f"{MAX_CELLS}"])
        cells = config.cells(ratios)  # validates every cell's config and arms, with their own messages
        return cls(config.base, tasks, config.max_lens, config.digits, config.hiddens, cells[0].compare.ratios,
                   config.schedules, seeds, cells[0].compare.variants)

    def grid(self) -> list[tuple[str, str, int, int]]:
        """(task, setting, value, hidden) for every cell: a length task varies max_len, a number task digits."""
        rows = []
        for task in self.tasks:
            setting, values = ("max_len", self.max_lens) if TASKS[task].uses_lengths else ("max_digits", self.digits)
            rows += [(task, setting, value, hidden) for value in (values or (getattr(self.base, setting),))
                     for hidden in self.hiddens]
        return rows

    def cells(self, ratios: Any = None) -> list[Cell]:
        cells = []
        problems: list[str] = []
        for index, (task, setting, value, hidden) in enumerate(self.grid()):
            changes: dict[str, Any] = {"task": task, setting: value, "hidden_dim": hidden}
            if setting == "max_len":
                changes["min_len"] = min(self.base.min_len, value)
            try:
                compare = CompareConfig.build(self.base.replace(**changes),
                                              self.ratios if ratios is None else ratios, self.schedules, self.seeds,
                                              max_seeds=MAX_SEEDS, variants=self.variants)
            except ConfigError as error:
                problems += [problem for problem in error.problems if problem not in problems]
                continue
            cells.append(Cell(index, task, setting, value, hidden, compare))
        if problems:
            raise ConfigError(problems)
        return cells

    @property
    def models_per_cell(self) -> int:
        return len(self.cells()[0].compare.configs())

    def as_dict(self) -> dict[str, Any]:
        return {"base": self.base.as_dict(), "tasks": list(self.tasks), "max_lens": list(self.max_lens),
                "digits": list(self.digits), "hiddens": list(self.hiddens), "ratios": list(self.ratios),
                "schedules": list(self.schedules), "seeds": self.seeds} | {
                    key: list(values) for key, values in zip(VARIANT_KEYS, self.variants, strict=True)}

    @classmethod
    def from_dict(cls, values: Any) -> StudyConfig:
        if not isinstance(values, dict) or not isinstance(values.get("base"), dict):
            raise ValueError("the study file is damaged: it holds no base config")
        return cls.build(TrainConfig.from_dict(values["base"]), values.get("tasks", ()), values.get("max_lens", ()),
                         values.get("digits", ()), values.get("hiddens", ()), values.get("ratios", ()),
                         values.get("schedules", ()), values.get("seeds", 0),
                         [values.get(key, ()) for key in VARIANT_KEYS])


@dataclass(frozen=True)
class CellResult:
    """What a cell has reported so far: each model's latest evaluation (arm-major, seed-minor), the first step
    at which each reached TARGET_ACCURACY free-running exact match (None: not yet), the Ray node that reported
    it, and, for a cell that failed twice, why."""

    step: int = 0
    done: bool = False
    seconds: float = 0.0
    finals: list[dict[str, float]] = field(default_factory=list)
    reached: list[float | None] = field(default_factory=list)
    failed: str = ""
    node: str = ""

    @property
    def ended(self) -> bool:
        return self.done or bool(self.failed)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "done": self.done, "seconds": self.seconds, "finals": self.finals,
                "reached": self.reached, "failed": self.failed, "node": self.node}

    @classmethod
    def from_dict(cls, values: Any) -> CellResult:
        if not isinstance(values, dict):
            raise ValueError("the study file is damaged: a cell result is not an object")
        return cls(int(values.get("step", 0)), bool(values.get("done", False)), float(values.get("seconds", 0.0)),
                   [{str(k): float(v) for k, v in row.items()} for row in values.get("finals", [])],
                   [None if step is None else float(step) for step in values.get("reached", [])],
                   str(values.get("failed", "")), str(values.get("node", "")))

    @classmethod
    def from_rows(cls, rows: list[list[dict[str, float]]], step: int, done: bool, seconds: float) -> CellResult:
        """From a comparison's history: each model's latest evaluated row, and when it first reached the target."""
        finals = [evaluated(model_rows)[-1] for model_rows in rows if evaluated(model_rows)]
        reached = [steps_to_reach([model_rows]) for model_rows in rows]
        return cls(step, done, seconds, finals if len(finals) == len(rows) else [], reached)


# --- statistics -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int


def mean_ci(values: list[float], level: float = LEVEL) -> Estimate:
    """Mean and t-based confidence interval over seeds (no interval from one seed)."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = statistics.fmean(values)
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf((1.0 + level) / 2.0, n - 1) * stats.sem(values))
    return Estimate(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class Paired:
    difference: Estimate  # mean of a - b over seeds, with its interval
    t: float
    p: float

    @property
    def within_noise(self) -> bool:
        return not self.p < 1.0 - LEVEL


def paired_test(a: list[float], b: list[float]) -> Paired:
    """Paired t-test of a - b over seeds. Identical differences on every seed give p = 0 (or 1 if all zero)."""
    differences = [x - y for x, y in zip(a, b, strict=True)]
    estimate = mean_ci(differences)
    n = len(differences)
    if n < 2:
        return Paired(estimate, math.nan, math.nan)
    if statistics.stdev(differences) == 0.0:  # scipy answers nan (and warns) where no spread is left to test
        return Paired(estimate, 0.0 if estimate.mean == 0 else math.copysign(math.inf, estimate.mean),
                      1.0 if estimate.mean == 0 else 0.0)
    result = stats.ttest_rel(a, b)
    return Paired(estimate, float(result.statistic), float(result.pvalue))


# --- tables and reading ---------------------------------------------------------------------------------------


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
