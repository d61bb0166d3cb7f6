"""Exposure bias inside a run, for the pages and the CLI alike: every model's recovery probe and state drift,
grouped by arm (a comparison's seeds of one arm together)."""

from __future__ import annotations

from dataclasses import dataclass

from playground.experiments.comparison import arm_of
from playground.inspection.drift import Drift, state_drift
from playground.inspection.probe import Recovery, recovery_probe
from playground.training.trainer import TrainedModel

PROBED_EXAMPLES = 500  # validation examples a probe reads by default (the first of the run's validation set)


@dataclass(frozen=True)
class Exposure:
    """One model's probe and drift."""

    label: str  # the model's label ("" for a training run's one model)
    step: int
    recovery: Recovery
    drift: Drift | None

    @property
    def arm(self) -> str:
        return arm_of(self.label)

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "arm": self.arm, "step": self.step, "recovery": self.recovery.as_dict()} | (
            {"drift": self.drift.as_dict()} if self.drift else {})


def examine(models: list[TrainedModel], examples: int = PROBED_EXAMPLES, drift: bool = True) -> list[Exposure]:
    """The probe (and the drift) of each model that has validation examples, over its first `examples`."""
    return [Exposure(trained.label, trained.step, recovery_probe(trained.model, trained.task,
                                                                 trained.val_pairs[:examples]),
                     state_drift(trained.model, trained.task, trained.val_pairs[:examples]) if drift else None)
            for trained in models if trained.val_pairs]


def by_arm(exposures: list[Exposure]) -> dict[str, list[Exposure]]:
    """The models of each arm (its seeds), arms in run order."""
    arms: dict[str, list[Exposure]] = {}
    for exposure in exposures:
        arms.setdefault(exposure.arm, []).append(exposure)
    return arms
