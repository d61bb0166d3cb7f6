"""The seam between a run and what it trains: the `Engine` protocol and the live changes a page may send.

A `BackgroundRun` drives any engine the same way (advance until finished, save now and then); the registry loads
each kind from its folder with the loader registered for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from playground.training.run_folder import RunKind
from playground.training.trainer import TrainedModel


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
