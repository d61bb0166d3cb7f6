"""The one validated training configuration: every field, its range, one clear error.

All user input (sliders, CLI flags, config.json, checkpoints) passes through
`TrainConfig.from_dict` or `TrainConfig.validate`, so the rest of the code can
trust it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from playground.core.devices import device_choices
from playground.core.forcing import SCHEDULES, ForcingSchedule
from playground.core.model import COIN_MODES
from playground.core.tasks import TASKS


class ConfigError(ValueError):
    """One or more settings are out of range; the message names each field, value and what is allowed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TrainConfig:
    # task
    task: str = "reverse"
    min_len: int = 3
    max_len: int = 8
    alphabet_size: int = 10
    max_digits: int = 3
    custom_csv: str = ""
    custom_tokenization: str = "char"
    # model
    emb_dim: int = 32
    hidden_dim: int = 128
    num_layers: int = 1
    dropout: float = 0.0
    # optimizer
    optimizer: str = "adam"
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    grad_clip: float = 1.0
    # teacher forcing
    teacher_forcing_ratio: float = 0.5
    schedule: str = "constant"
    tf_end: float = 0.0
    decay_steps: int = 1000
    exp_k: float = 0.999
    sigmoid_k: float = 100.0
    coin: str = "step"
    # run
    steps: int = 2000
    eval_every: int = 100
    val_size: int = 500
    seed: int = 0
    device: str = "auto"

    def forcing_schedule(self) -> ForcingSchedule:
        return ForcingSchedule(self.schedule, self.teacher_forcing_ratio, self.tf_end,
                               self.decay_steps, self.exp_k, self.sigmoid_k)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        return TrainConfig.from_dict({**self.as_dict(), **changes})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Coerce and validate; unknown keys and wrong types are errors too."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        problems = [f"{key!r} is not a setting; known settings: {', '.join(fields)}"
                    for key in values if key not in fields]
        coerced: dict[str, Any] = {}
        for key, value in values.items():
            if key in fields:
                kind = type(getattr(cls, key))
                try:
                    coerced[key] = _coerce(value, kind)
                except (TypeError, ValueError):
                    problems.append(f"{key} = {value!r} is not allowed: it must be {_TYPE_NAMES[kind]}")
        if problems:
            raise ConfigError(problems)
        return cls(**coerced).validate()

    def validate(self) -> TrainConfig:
        """Check ranges; a config built directly (not by from_dict) gets its types checked first."""
        wrong_types = [f"{field.name} = {value!r} is not allowed: it must be {_TYPE_NAMES[type(field.default)]}"
                       for field in dataclasses.fields(self)
                       if not _is_a(value := getattr(self, field.name), type(field.default))]
        if wrong_types:
            raise ConfigError(wrong_types)
        problems = [problem for name, rule in _RULES.items()
                    if (problem := rule.check(name, getattr(self, name)))]
        if self.device not in device_choices():
            problems.append(f"device = {self.device!r} is not allowed: choose one of {', '.join(device_choices())}")
        lengths_valid = not any(problem.startswith(("min_len ", "max_len ")) for problem in problems)
        if lengths_valid and self.min_len > self.max_len:
            problems.append(f"min_len = {self.min_len} is not allowed: it must not exceed max_len ({self.max_len})")
        if self.task == "custom" and not self.custom_csv:
            problems.append("custom_csv is empty: the custom task needs a CSV file of source,target pairs")
        if problems:
            raise ConfigError(problems)
        return self


_TYPE_NAMES = {int: "a whole number", float: "a number", str: "text"}


def _is_a(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) if kind is float else isinstance(value, kind)


def _coerce(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or (kind is str and not isinstance(value, str)):
        raise TypeError(value)
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return kind(value)


def _show(bound: float) -> str:
    """2147483647, not 2.14748e+09: bounds are printed in full."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


@dataclass(frozen=True)
class _Rule:
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def check(self, name: str, value: Any) -> str | None:
        if self.choices:
            if value not in self.choices:
                return f"{name} = {value!r} is not allowed: choose one of {', '.join(self.choices)}"
            return None
        if not (self.low <= value <= self.high):  # also rejects NaN
            return f"{name} = {value!r} is not allowed: it must be between {_show(self.low)} and {_show(self.high)}"
        return None


_RULES: dict[str, _Rule] = {
    "task": _Rule(choices=tuple(TASKS)),
    "min_len": _Rule(1, 50),
    "max_len": _Rule(1, 50),
    "alphabet_size": _Rule(2, 26),
    "max_digits": _Rule(1, 9),
    "custom_tokenization": _Rule(choices=("char", "space")),
    "emb_dim": _Rule(2, 512),
    "hidden_dim": _Rule(2, 1024),
    "num_layers": _Rule(1, 4),
    "dropout": _Rule(0.0, 0.9),
    "optimizer": _Rule(choices=("adam", "adamw", "sgd")),
    "lr": _Rule(1e-6, 1.0),
    "momentum": _Rule(0.0, 0.999),
    "weight_decay": _Rule(0.0, 1.0),
    "batch_size": _Rule(1, 1024),
    "grad_clip": _Rule(0.0, 100.0),
    "teacher_forcing_ratio": _Rule(0.0, 1.0),
    "schedule": _Rule(choices=SCHEDULES),
    "tf_end": _Rule(0.0, 1.0),
    "decay_steps": _Rule(1, 1_000_000),
    "exp_k": _Rule(0.5, 0.99999),
    "sigmoid_k": _Rule(1.0, 100_000.0),
    "coin": _Rule(choices=COIN_MODES),
    "steps": _Rule(1, 1_000_000),
    "eval_every": _Rule(1, 1_000_000),
    "val_size": _Rule(16, 10_000),
    "seed": _Rule(0, 2**31 - 1),
}
