"""The seam between a run and what it trains: the `RunPlan` a server keeps, the `Engine` protocol a worker drives,
and the live changes a page may send.

A run's worker process (`worker.py`) builds its engine from the plan or from the run folder and drives it the same
way for every kind (advance until finished, save now and then); the server never builds one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from playground.core.config import TrainConfig
from playground.core.tasks import CustomPairs
from playground.experiments.comparison import CompareConfig
from playground.experiments.study_grid import StudyConfig
from playground.training.run_folder import RunKind
from playground.training.trainer import TrainedModel


class RunError(RuntimeError):
    """A run cannot do what was asked (too many training at once, already finished, trained elsewhere, ...)."""


@dataclass(frozen=True)
class RunPlan:
    """What a new run trains, as configs only: what the server keeps of a run until a worker builds it."""

    kind: RunKind
    config: TrainConfig | CompareConfig | StudyConfig
    custom: CustomPairs | None = None
    address: str | None = None  # a study's Ray cluster (None: a local Ray)
    workers: int | None = None  # a local study's Ray workers (None: one per core)

    @classmethod
    def train(cls, config: TrainConfig, custom: CustomPairs | None = None) -> RunPlan:
        return cls(RunKind.TRAIN, config, custom)

    @classmethod
    def compare(cls, config: CompareConfig, custom: CustomPairs | None = None) -> RunPlan:
        return cls(RunKind.COMPARE, config, custom)

    @classmethod
    def study(cls, config: StudyConfig, address: str | None = None, workers: int | None = None) -> RunPlan:
        return cls(RunKind.STUDY, config, None, address, workers)

    @property
    def base(self) -> TrainConfig:
        """The config of one model (a comparison's or a study's base): what the run folder's config.json holds."""
        return self.config if isinstance(self.config, TrainConfig) else self.config.base


@dataclass(frozen=True)
class LiveChange:
    """A setting moved while the run trained, drawn as a marker on the charts."""

    step: int
    text: str


SnapshotT = TypeVar("SnapshotT", covariant=True)


class Engine(Protocol[SnapshotT]):
    kind: RunKind
    wants_save: bool  # news to write at once (a study's cell reported); every run also saves every few seconds

    @property
    def size(self) -> int:
        """How many models it trains (what admission control multiplies a model's cost by)."""

    @property
    def workers(self) -> int:
        """How many cores it trains on at once: what it counts against the server's slots and a seat's quota."""

    @property
    def step(self) -> int: ...

    @property
    def total_steps(self) -> int: ...

    @property
    def finished(self) -> bool: ...

    def advance(self) -> None:
        """One training step, evaluating when due; records its own history."""

    def snapshot(self) -> SnapshotT:
        """A copy of what the pages draw, safe to hand to another thread."""

    def set_live(self, changes: Mapping[str, float]) -> None:
        """Change settings that may move while training (config.LIVE_SETTINGS) from the next step on."""

    def extend(self, total_steps: int) -> None:
        """Train on to `total_steps` (resuming a run that ended)."""

    def halt(self) -> None:
        """Let go of work running elsewhere (a study's Ray tasks) when the run ends; local engines have none."""

    def models(self) -> list[TrainedModel]:
        """The trained models as they are now, for the inspection views (the engine's own objects)."""

    def save(self, run_dir: Path) -> None:
        """Config, metrics and checkpoint into the run folder, each file atomically."""
