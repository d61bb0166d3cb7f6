"""What a study is: teacher-forcing arms measured over seeds, tasks, task settings and model sizes.

One comparison (`CompareConfig`: every arm x seed trained together) is one *condition* of the grid tasks x settings x
hidden sizes. Within a condition, seed s of every arm starts from the same initial weights and reads the same batches
and coin draws, so arms are compared paired over seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playground.core.config import MAX_TEST_DIGITS, ConfigError, TrainConfig, longest_test
from playground.core.tasks import TASKS
from playground.experiments.comparison import NO_VARIANTS, VARIANT_KEYS, CompareConfig
from playground.experiments.statistics import evaluated, steps_to_reach
from playground.training.metrics import Metric

MAX_STUDY_SEEDS = 30


MAX_CONDITIONS = 64


MEASURES = (Metric.FR_EXACT, Metric.FR_TOKEN_ACC, Metric.TF_TOKEN_ACC)


STEPS_TO_TARGET = "steps_to_90"  # first evaluated step at TARGET_ACCURACY free-running exact match, over the seeds
# that reached it


@dataclass(frozen=True)
class Condition:
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
    variants: tuple[tuple[str, ...], ...] = NO_VARIANTS  # the model settings compared in every condition (as Compare)

    @classmethod
    def build(cls, base: TrainConfig, tasks: Any, max_lens: Any = (8,), digits: Any = (3,), hiddens: Any = (64,),
              ratios: Any = (0.0, 0.5, 1.0), schedules: Any = (), seeds: Any = 5,
              variants: Any = NO_VARIANTS) -> StudyConfig:
        """Coerce and validate the grid; every problem at once, each condition checked as a comparison would be.
        `variants` lists the model settings (`VARIANT_SETTINGS`: architectures, cells, ...) whose arms every
        condition compares (empty: the base's)."""
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
        if seeds is True or seeds is False or not isinstance(seeds, int) or not 2 <= seeds <= MAX_STUDY_SEEDS:
            problems.append(f"seeds = {seeds!r} is not allowed: a study needs a whole number between 2 and "
                            f"{MAX_STUDY_SEEDS} (a confidence interval needs at least two seeds)")
        if problems:
            raise ConfigError(problems)
        config = cls(base.validate(), tasks, parsed["max length"], parsed["digits"], parsed["hidden size"],
                     (), tuple(dict.fromkeys(schedules)), seeds, tuple(tuple(values) for values in variants))
        if len(config.grid()) > MAX_CONDITIONS:
            raise ConfigError([f"{len(config.grid())} conditions (tasks x settings x hidden sizes) chosen: at most "
                               f"{MAX_CONDITIONS}"])
        conditions = config.conditions(ratios)  # validates every condition's config and arms, with their own messages
        return cls(config.base, tasks, config.max_lens, config.digits, config.hiddens, conditions[0].compare.ratios,
                   config.schedules, seeds, conditions[0].compare.variants)

    def grid(self) -> list[tuple[str, str, int, int]]:
        """(task, setting, value, hidden) for every condition: a length task varies max_len, a number task digits."""
        rows = []
        for task in self.tasks:
            setting, values = ("max_len", self.max_lens) if TASKS[task].uses_lengths else ("max_digits", self.digits)
            rows += [(task, setting, value, hidden) for value in (values or (getattr(self.base, setting),))
                     for hidden in self.hiddens]
        return rows

    def conditions(self, ratios: Any = None) -> list[Condition]:
        conditions = []
        problems: list[str] = []
        for index, (task, setting, value, hidden) in enumerate(self.grid()):
            changes: dict[str, Any] = {"task": task, setting: value, "hidden_dim": hidden}
            if setting == "max_len":
                changes["min_len"] = min(self.base.min_len, value)
            tested, most = ("test_max_len", 50) if setting == "max_len" else ("test_max_digits", MAX_TEST_DIGITS)
            if getattr(self.base, tested):  # as far beyond as asked, within what the condition's own size allows
                changes[tested] = min(max(getattr(self.base, tested), value), longest_test(value, most))
            try:
                compare = CompareConfig.build(self.base.replace(**changes),
                                              self.ratios if ratios is None else ratios, self.schedules, self.seeds,
                                              max_seeds=MAX_STUDY_SEEDS, variants=self.variants)
            except ConfigError as error:
                problems += [problem for problem in error.problems if problem not in problems]
                continue
            conditions.append(Condition(index, task, setting, value, hidden, compare))
        if problems:
            raise ConfigError(problems)
        return conditions

    @property
    def models_per_condition(self) -> int:
        return len(self.conditions()[0].compare.configs())

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
class ConditionResult:
    """What a condition has reported so far: each model's latest evaluation (arm-major, seed-minor), the first step
    at which each reached TARGET_ACCURACY free-running exact match (None: not yet), the Ray node that reported
    it, and, for a condition that failed twice, why."""

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
    def from_dict(cls, values: Any) -> ConditionResult:
        if not isinstance(values, dict):
            raise ValueError("the study file is damaged: a condition result is not an object")
        return cls(int(values.get("step", 0)), bool(values.get("done", False)), float(values.get("seconds", 0.0)),
                   [{str(k): float(v) for k, v in row.items()} for row in values.get("finals", [])],
                   [None if step is None else float(step) for step in values.get("reached", [])],
                   str(values.get("failed", "")), str(values.get("node", "")))

    @classmethod
    def from_rows(cls, rows: list[list[dict[str, float]]], step: int, done: bool, seconds: float) -> ConditionResult:
        """From a comparison's history: each model's latest evaluated row, and when it first reached the target."""
        finals = [evaluated(model_rows)[-1] for model_rows in rows if evaluated(model_rows)]
        reached = [steps_to_reach([model_rows]) for model_rows in rows]
        return cls(step, done, seconds, finals if len(finals) == len(rows) else [], reached)


# --- statistics -----------------------------------------------------------------------------------------------
