"""What a comparison is: a validated base `TrainConfig`, the arms to compare (ratios, schedules, models) and seeds.

A `CompareConfig` names every arm x seed that `runs.compare_engine.CompareEngine` trains side by side; a
`CompareSnapshot` is what such a run has produced so far, the input of every table, chart and reading."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from playground.core.config import MODEL_SHAPE, SETTINGS, VARIANT_SETTINGS, ConfigError, TrainConfig
from playground.core.forcing import SCHEDULES
from playground.training.metrics import Metric

DEFAULT_RATIOS = (0.0, 0.25, 0.5, 0.75, 1.0)


# Longer sequences, where the trade-off shows within about a minute on 2 CPU cores (3 ratios x 600 steps):
# gamma = 1 learns fastest but has the widest gap between teacher-forced and free-running accuracy, peaking near
# step 100 (the defaults are too easy: every ratio ends near 99%).
TRADE_OFF_EXAMPLE = TrainConfig(min_len=8, max_len=16, hidden_dim=64, steps=600)


TRADE_OFF_RATIOS = (0.0, 0.5, 1.0)


MAX_ARMS = 8  # ratios and schedules


MAX_MODEL_ARMS = 24  # ratios and schedules x models (cells x attentions x source orders)


RATIO_CHOICES = tuple(round(i * 0.05, 2) for i in range(21))  # what the pages offer


MAX_COMPARE_SEEDS = 3


TARGET_ACCURACY = 0.9


ARM_FIELDS = ("ratio", "schedule", *MODEL_SHAPE)  # what names an arm in a table row, beside its label
NO_VARIANTS: tuple[tuple[str, ...], ...] = ((),) * len(VARIANT_SETTINGS)  # every model setting the base's


@dataclass(frozen=True)
class Arm:
    """One curve: a constant ratio, or a schedule decaying from 1 to the base config's final gamma, on one model
    of the family (its cell, attention and source order)."""

    label: str
    changes: tuple[tuple[str, Any], ...]

    def settings(self) -> dict[str, Any]:
        """The arm's own settings as table fields: ratio (γ at the start), schedule, cell, attention, reverse_source."""
        changes = dict(self.changes)
        return dict(zip(ARM_FIELDS, (changes[Metric.GAMMA], changes["schedule"],
                                     *(changes[name] for name in MODEL_SHAPE)), strict=True))


def forcing_label(config: TrainConfig) -> str:
    """How an arm with this run's teacher forcing is named (so a single run has its arm's colour): "γ = 0.5",
    "linear 1→0"."""
    if config.schedule == "constant":
        return f"γ = {config.teacher_forcing_ratio:g}"
    return f"{config.schedule.replace('_', ' ')} {config.teacher_forcing_ratio:g}→{config.tf_end:g}"


SEED_SUFFIX = ", seed "


def arm_of(model_label: str, config: TrainConfig | None = None) -> str:
    """The arm a model belongs to, from its label (`CompareConfig.model_labels`: the arm's label and its seed);
    a model trained alone (no label) is named by its teacher forcing when its config is given."""
    return re.sub(rf"{SEED_SUFFIX}\d+$", "", model_label) or (forcing_label(config) if config is not None else "")


_VARIANT_WORDS = {"architecture": lambda value: "Transformer" if value == "transformer" else "RNN",
                  "positions": lambda value: f"{value} positions",
                  "cell": lambda value: value.upper(),
                  "attention": lambda value: "no attention" if value == "none" else f"{value} attention",
                  "reverse_source": lambda value: "source reversed" if value == "on" else "source in order",
                  "eos": lambda value: "−EOS" if value == "oracle" else "+EOS"}  # Newman et al. (2020)


@dataclass(frozen=True)
class CompareConfig:
    base: TrainConfig
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    schedules: tuple[str, ...] = ()
    seeds: int = 1
    variants: tuple[tuple[str, ...], ...] = NO_VARIANTS  # per VARIANT_SETTINGS the values compared; () = the base's

    @classmethod
    def build(cls, base: TrainConfig, ratios: Any = DEFAULT_RATIOS, schedules: Any = (), seeds: Any = 1,
              max_seeds: int = MAX_COMPARE_SEEDS, variants: Any = NO_VARIANTS) -> CompareConfig:
        """Coerce and validate; every problem is reported at once, as `ConfigError` does for one run.

        `max_seeds` is the page's limit (curves stay readable); a study, which reports statistics, allows more.
        `variants` lists, per model setting (`VARIANT_SETTINGS`), the values to compare (empty: the
        base's); the arms are every combination of them with the ratios and schedules.
        """
        problems: list[str] = []
        parsed: list[float] = []
        for value in ratios:
            try:
                ratio = float(value)
            except (TypeError, ValueError):
                problems.append(f"ratio {value!r} is not allowed: it must be a number between 0 and 1")
                continue
            if not 0.0 <= ratio <= 1.0:
                problems.append(f"ratio {value!r} is not allowed: it must be between 0 and 1")
            elif ratio in parsed:
                problems.append(f"ratio {ratio:g} is listed twice")
            else:
                parsed.append(ratio)
        decaying = [s for s in SCHEDULES if s != "constant"]
        problems += [f"schedule {s!r} is not allowed: choose from {', '.join(decaying)}"
                     for s in schedules if s not in decaying]
        listed = tuple(tuple(dict.fromkeys(values)) for values in variants)
        listed += NO_VARIANTS[len(listed):]  # the settings not listed: the base's
        if len(listed) != len(VARIANT_SETTINGS):
            problems.append(f"variants must list {', '.join(VARIANT_SETTINGS)}")
        else:
            problems += [f"{name} {value!r} is not allowed: choose from {', '.join(SETTINGS[name].options)}"
                         for name, values in zip(VARIANT_SETTINGS, listed, strict=True) for value in values
                         if value not in SETTINGS[name].options]
        models = math.prod(max(len(values), 1) for values in listed)
        forcing = len(parsed) + len(set(schedules))
        if not problems and not 1 <= forcing <= MAX_ARMS:
            problems.append(f"{forcing} ratios and schedules chosen: choose between 1 and {MAX_ARMS}")
        elif not problems and forcing * models > MAX_MODEL_ARMS:
            problems.append(f"{forcing * models} arms chosen ({forcing} ratios and schedules x {models} models): "
                            f"at most {MAX_MODEL_ARMS}")
        if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= max_seeds:
            problems.append(f"seeds = {seeds!r} is not allowed: it must be a whole number between 1 and {max_seeds}")
        elif base.seed + seeds - 1 > 2**31 - 1:
            problems.append(f"seed {base.seed} + {seeds} seeds runs past the largest seed (2147483647)")
        if problems:
            raise ConfigError(problems)
        return cls(base.validate(), tuple(parsed), tuple(dict.fromkeys(schedules)), seeds, listed)

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: TrainConfig) -> CompareConfig:
        """As `as_dict` wrote it (compare.json); a file from before model variants compares the base's model."""
        return cls.build(base, values.get("ratios", ()), values.get("schedules", ()), values.get("seeds", 1),
                         variants=[values.get(key, ()) for key in VARIANT_KEYS])

    def with_base(self, base: TrainConfig) -> CompareConfig:
        """The same arms on another base (more steps, a lesson shortened for tests)."""
        return CompareConfig.build(base, self.ratios, self.schedules, self.seeds, max(self.seeds, MAX_COMPARE_SEEDS),
                                   self.variants)

    def models(self) -> list[dict[str, Any]]:
        """Every combination of the listed model settings (the base's where none is listed), with the base's heads;
        a setting that does not apply to a combination's model (a Transformer's cell) keeps its first value, so no
        model is listed twice."""
        choices = [values or (getattr(self.base, name),) for name, values in zip(VARIANT_SETTINGS, self.variants,
                                                                                 strict=True)]
        models: dict[tuple[Any, ...], dict[str, Any]] = {}
        for combination in itertools.product(*choices):
            model = dict(zip(VARIANT_SETTINGS, combination, strict=True)) | {"heads": self.base.heads}
            values = self.base.as_dict() | model
            model |= {name: choice[0] for name, choice in zip(VARIANT_SETTINGS, choices, strict=True)
                      if not SETTINGS[name].applies(values)}
            models.setdefault(tuple(model.values()), model)
        return list(models.values())

    def arms(self) -> list[Arm]:
        """Model-major (so models of one shape sit together and train stacked), then ratios, then schedules."""
        varying = [name for name, values in zip(VARIANT_SETTINGS, self.variants, strict=True) if len(values) > 1]
        arms = []
        for model in self.models():
            values = self.base.as_dict() | model
            model_text = "".join(f", {_VARIANT_WORDS[name](model[name])}" for name in varying
                                 if SETTINGS[name].applies(values))
            arms += [Arm(f"γ = {r:g}{model_text}", ((Metric.GAMMA, r), ("schedule", "constant"), *model.items()))
                     for r in self.ratios]
            arms += [Arm(f"{s.replace('_', ' ')} 1→{self.base.tf_end:g}{model_text}",
                         ((Metric.GAMMA, 1.0), ("schedule", s), *model.items())) for s in self.schedules]
        return arms

    def differs_by(self) -> list[str]:
        """What the arms differ by, as the page names it: "teacher forcing" and each model setting listed with more
        than one value; a comparison is read as a comparison of these, and only these."""
        forcing = ["teacher forcing"] if len(self.ratios) + len(self.schedules) > 1 else []
        return forcing + [SETTINGS[name].label.lower() for name, values in zip(VARIANT_SETTINGS, self.variants,
                                                                                 strict=True) if len(values) > 1]

    def configs(self) -> list[TrainConfig]:
        """Arm-major, seed-minor: model k is arm k // seeds with seed base.seed + k % seeds."""
        return [self.base.replace(**dict(arm.changes), seed=self.base.seed + s)
                for arm in self.arms() for s in range(self.seeds)]

    def model_labels(self) -> list[str]:
        """One per model of `configs()`: the arm's label, and the seed where an arm has several (`arm_of` reads it
        back)."""
        return [arm.label + (f"{SEED_SUFFIX}{self.base.seed + s}" if self.seeds > 1 else "")
                for arm in self.arms() for s in range(self.seeds)]

    def as_dict(self) -> dict[str, Any]:
        return {"base": self.base.as_dict(), "ratios": list(self.ratios), "schedules": list(self.schedules),
                "seeds": self.seeds} | {key: list(values) for key, values in zip(VARIANT_KEYS, self.variants,
                                                                                 strict=True)}


# compare.json's lists of the model settings compared, in VARIANT_SETTINGS order
VARIANT_KEYS = ("cells", "attentions", "reverse_sources", "architectures", "positions", "eos_modes")


def parse_ratios(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass
class CompareSnapshot:
    labels: list[str]
    seeds: int
    rows: list[list[dict[str, float]]]  # per model (arm-major, seed-minor): logged rows, evaluations included
    exact_by_length: list[dict[int, float]]
    step: int
    total_steps: int
    seconds: float
    config: CompareConfig
    parameters: list[int] = field(default_factory=list)  # per arm: its model's parameter count

    def arm_rows(self, arm: int) -> list[list[dict[str, float]]]:
        return self.rows[arm * self.seeds:(arm + 1) * self.seeds]
