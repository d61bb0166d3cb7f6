"""What an export carries out of a run folder: every model's settings and label, and a custom task's pairs.

A training run is one model; a comparison (and each condition of a study) is K models that read one data stream and
one coin stream, picked by the first model's seed (`StackedTrainer`). Read from the run's own files, validated
as the app validates them; nothing read is used as a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playground.core.config import TrainConfig
from playground.core.tasks import CustomPairs
from playground.experiments.comparison import CompareConfig
from playground.experiments.study_grid import StudyConfig
from playground.training.checkpoints import portable
from playground.training.run_folder import (
    COMPARE_FILE,
    CONFIG_FILE,
    STUDY_FILE,
    RunKind,
    read_config,
    read_custom,
    read_json,
    read_run_file,
)


class ExportError(ValueError):
    """The folder holds nothing an export can read, or the condition asked for does not exist."""


@dataclass(frozen=True)
class Experiment:
    name: str
    labels: tuple[str, ...]
    configs: tuple[TrainConfig, ...]  # model k's settings; configs[0].seed picks the batches and coins of all
    custom: CustomPairs | None = None

    @property
    def base(self) -> TrainConfig:
        return self.configs[0]

    @classmethod
    def of_run(cls, name: str, config: TrainConfig, custom: CustomPairs | None = None) -> Experiment:
        return cls(name, (name,), (config,), custom)

    @classmethod
    def of_comparison(cls, name: str, compare: CompareConfig, custom: CustomPairs | None = None) -> Experiment:
        return cls(name, tuple(compare.model_labels()), tuple(compare.configs()), custom)


def read_experiment(run_dir: Path, condition: int | None = None) -> Experiment:
    """The experiment of a training run, a comparison, or (with `condition`, counted from 0) one condition of a
    study."""
    info = read_run_file(run_dir) or {}
    name = str(info.get("name") or run_dir.name)
    if info.get("kind") == RunKind.STUDY:
        values = read_json(run_dir / STUDY_FILE)
        study = StudyConfig.from_dict(values.get("config") if isinstance(values, dict) else None)
        conditions = study.conditions()
        if condition is None or not 0 <= condition < len(conditions):
            raise ExportError(f"{run_dir.name} is a study of {len(conditions)} conditions: choose one with "
                              f"--condition 0 to {len(conditions) - 1}")
        return Experiment.of_comparison(f"{name}: {conditions[condition].label}", conditions[condition].compare)
    if condition is not None:
        raise ExportError(f"{run_dir.name} is not a study: --condition applies to studies only")
    if (run_dir / COMPARE_FILE).is_file():
        values = read_json(run_dir / COMPARE_FILE)
        if not isinstance(values, dict) or not isinstance(values.get("base"), dict):
            raise ExportError(f"{COMPARE_FILE} is damaged: it holds no base config")
        base = TrainConfig.from_dict(portable(values["base"]))
        compare = CompareConfig.from_dict(values, base)
        return Experiment.of_comparison(name, compare, read_custom(run_dir, base))
    if (run_dir / CONFIG_FILE).is_file():
        config = read_config(run_dir)
        return Experiment.of_run(name, config, read_custom(run_dir, config))
    raise ExportError(f"{run_dir} is not a run folder: it has no {CONFIG_FILE}")
