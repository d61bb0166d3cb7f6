"""TrainConfig: every bad value gets its own message naming the field, the value and what is allowed."""

import dataclasses
import math

import pytest

from playground.core.config import SETTINGS, ConfigError, TrainConfig, label
from playground.core.devices import device_choices

FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}
_RULES = {name: setting for name, setting in SETTINGS.items() if setting.kind is not str or setting.options}


def out_of_range(name: str) -> list:
    rule = _RULES[name]
    if rule.options:
        return ["nope"]
    kind = type(FIELDS[name].default)
    step = 1 if kind is int else rule.high / 2 + 0.5
    return [kind(rule.low - step), kind(rule.high + step)]


CASES = [(name, value) for name in _RULES for value in out_of_range(name)]


def problems_of(values: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict(values)
    assert str(caught.value) == "; ".join(caught.value.problems)
    return caught.value.problems


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_each_out_of_range_value_names_field_value_and_allowed(name: str, value) -> None:
    rule = _RULES[name]
    (problem,) = problems_of({name: value})  # min_len = 51 is not also reported as exceeding max_len
    assert problem.startswith(f"{name} = {value!r} is not allowed: ")
    if rule.options:
        assert problem.endswith(f"choose one of {', '.join(rule.options)}")
    else:
        assert "it must be between" in problem


@pytest.mark.parametrize("name", [name for name, rule in _RULES.items() if not rule.options])
def test_bounds_themselves_are_allowed(name: str) -> None:
    kind = type(FIELDS[name].default)
    low, high = kind(_RULES[name].low), kind(_RULES[name].high)
    extra = {"max_len": 50} if name == "min_len" else {"min_len": 1} if name == "max_len" else {}
    extra |= {"test_max_len": {"max_len": 25}, "test_max_digits": {"max_digits": 5}}.get(name, {})
    assert getattr(TrainConfig.from_dict({name: low, **extra}), name) == low
    assert getattr(TrainConfig.from_dict({name: high, **extra}), name) == high


def test_bounds_are_printed_in_full() -> None:
    (problem,) = problems_of({"seed": -1})
    assert problem == "seed = -1 is not allowed: it must be between 0 and 2147483647"
    (problem,) = problems_of({"lr": 2.0})
    assert problem == "lr = 2.0 is not allowed: it must be between 1e-06 and 1"


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("hidden_dim", "abc", "hidden_dim = 'abc' is not allowed: it must be a whole number"),
    ("steps", 2.5, "steps = 2.5 is not allowed: it must be a whole number"),
    ("steps", True, "steps = True is not allowed: it must be a whole number"),
    ("lr", "fast", "lr = 'fast' is not allowed: it must be a number"),
    ("lr", None, "lr = None is not allowed: it must be a number"),
    ("task", 3, "task = 3 is not allowed: it must be text"),
])
def test_wrong_types(name: str, value, expected: str) -> None:
    assert problems_of({name: value}) == [expected]


@pytest.mark.parametrize("value", [math.nan, "nan", math.inf, "-inf"])
def test_nan_and_infinite_lr_are_refused(value) -> None:
    (problem,) = problems_of({"lr": value})
    assert problem.startswith("lr = ") and "it must be between 1e-06 and 1" in problem


def test_unknown_keys_are_named_with_the_known_ones() -> None:
    problems = problems_of({"hiden_dim": 64, "hidden_dim": "x"})
    assert problems[0].startswith("'hiden_dim' is not a setting; known settings: task, min_len, max_len")
    assert problems[1] == "hidden_dim = 'x' is not allowed: it must be a whole number"


def test_several_problems_are_reported_together() -> None:
    problems = problems_of({"lr": 5, "batch_size": 0, "schedule": "cosine"})
    assert [p.split(" = ")[0] for p in problems] == ["lr", "batch_size", "schedule"]


def test_min_len_above_max_len() -> None:
    assert problems_of({"min_len": 6, "max_len": 4}) == [
        "min_len = 6 is not allowed: it must be at most max_len (4)"]


def test_messages_name_settings_by_their_labels_for_a_page() -> None:
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({"min_len": 6, "max_len": 4})
    assert caught.value.messages(label) == ["Min length = 6 is not allowed: it must be at most Max length (4)"]
    assert caught.value.messages() == caught.value.problems
    with pytest.raises(ConfigError) as braces:  # a value with braces is shown as typed, not formatted
        TrainConfig.from_dict({"lr": "{0}"})
    assert braces.value.messages(label) == ["Learning rate = '{0}' is not allowed: it must be a number"]
    assert ConfigError(["plain {text}"]).messages(label) == ["plain {text}"]


def test_custom_task_needs_its_pairs() -> None:
    (problem,) = problems_of({"task": "custom"})
    assert problem == "task needs a CSV file of source,target pairs: none is loaded"
    fingerprint = "0123456789abcdef"
    config = TrainConfig.from_dict({"task": "custom", "custom_data": fingerprint})
    assert (config.task, config.custom_data) == ("custom", fingerprint)


def test_custom_data_is_a_fingerprint_never_a_path() -> None:
    (problem,) = problems_of({"task": "custom", "custom_data": "pairs.csv"})
    assert problem == ("custom_data = 'pairs.csv' is not allowed: it must be empty or the fingerprint of loaded "
                       "pairs (16 hexadecimal digits)")
    (problem,) = problems_of({"task": "custom", "custom_csv": "pairs.csv"})  # the old path setting is gone
    assert problem.startswith("'custom_csv' is not a setting; known settings: ")
    assert "custom_csv" not in SETTINGS and "custom_data" in SETTINGS


def test_device_must_be_present() -> None:
    (problem,) = problems_of({"device": "cuda:7"})
    assert problem == f"device = 'cuda:7' is not allowed: choose one of {', '.join(device_choices())}"
    assert TrainConfig.from_dict({"device": "cpu"}).device == "cpu"


def test_from_dict_coerces_cli_strings() -> None:
    config = TrainConfig.from_dict({"hidden_dim": "64", "lr": "0.01", "teacher_forcing_ratio": "1",
                                    "task": "sort", "steps": 300.0, "dropout": 0})
    assert (config.hidden_dim, config.lr, config.teacher_forcing_ratio, config.task, config.steps) == (
        64, 0.01, 1.0, "sort", 300)
    assert type(config.hidden_dim) is int and type(config.lr) is float and type(config.steps) is int


def test_defaults_and_round_trip() -> None:
    config = TrainConfig()
    assert config.validate() is config
    assert TrainConfig.from_dict(config.as_dict()) == config
    changed = config.replace(hidden_dim=64, schedule="linear")
    assert (changed.hidden_dim, changed.schedule, config.hidden_dim) == (64, "linear", 128)
    with pytest.raises(ConfigError, match="hidden_dim = 0 is not allowed"):
        config.replace(hidden_dim=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0  # type: ignore[misc]


def test_directly_built_config_gets_its_types_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        TrainConfig(hidden_dim="64", lr=True).validate()  # type: ignore[arg-type]
    assert caught.value.problems == ["hidden_dim = '64' is not allowed: it must be a whole number",
                                     "lr = True is not allowed: it must be a number"]


def test_forcing_schedule_takes_the_config_values() -> None:
    config = TrainConfig(teacher_forcing_ratio=0.9, schedule="exponential", tf_end=0.1, exp_k=0.5)
    schedule = config.forcing_schedule()
    assert (schedule.kind, schedule.start, schedule.end, schedule.exp_k) == ("exponential", 0.9, 0.1, 0.5)
    assert schedule.ratio(1) == pytest.approx(0.5)
