"""The probe's headline: after one wrong token, how often each arm recovers."""

from __future__ import annotations

import numpy as np

from playground.inspection.exposure import Exposure, by_arm
from playground.reports.readings import share


def recovery_headline(exposures: list[Exposure]) -> str:
    """'After one wrong token, γ = 1 recovers 29.3%, γ = 0.5 41.0%.': per arm, the share of injected wrong tokens
    after which every later token was right, the mean over its seeds (their range with several)."""
    parts = []
    for arm, models in by_arm(exposures).items():
        values = np.array([model.recovery.overall for model in models], dtype=float)
        spread = f" (seeds {share(np.nanmin(values))} to {share(np.nanmax(values))})" if len(values) > 1 else ""
        verb = "" if parts else " recovers"
        parts.append(f"{arm or 'the model'}{verb} {share(float(np.nanmean(values)))}{spread}")
    if not parts:
        return "No model has validation examples to probe."
    return "After one wrong token, " + ", ".join(parts) + "."
