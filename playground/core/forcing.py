"""Teacher-forcing schedules gamma(step): the chance that a decoder step sees the true token.

Scheduled sampling (Bengio et al., 2015) starts near full teacher forcing and
decays it so the model learns to consume its own predictions. Each decaying
schedule moves from `start` towards `end` by a decay factor d(step) in [0, 1]:
gamma(step) = end + (start - end) * d(step).

- constant:          d = 1 (gamma = start throughout)
- linear:            d = max(0, 1 - step / decay_steps)
- exponential:       d = k ** step, 0 < k < 1           (Bengio's eps_i = k^i)
- inverse_sigmoid:   d = k / (k + exp(step / k)), k >= 1 (Bengio's eps_i)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "linear", "exponential", "inverse_sigmoid")


@dataclass(frozen=True)
class ForcingSchedule:
    kind: str = "constant"
    start: float = 1.0
    end: float = 0.0
    decay_steps: int = 1000  # linear: steps from start to end
    exp_k: float = 0.999  # exponential: per-step factor
    sigmoid_k: float = 100.0  # inverse sigmoid: larger k decays later

    def ratio(self, step: int) -> float:
        """Exactly `start` while d = 1 (so gamma = 1 keeps the fused path), never outside [start, end]."""
        decay = self.decay(step)
        if decay >= 1.0:
            return self.start
        value = self.end + (self.start - self.end) * decay
        return min(max(value, min(self.start, self.end)), max(self.start, self.end))

    def decay(self, step: int) -> float:
        if self.kind == "constant":
            return 1.0
        if self.kind == "linear":
            return max(0.0, 1.0 - step / self.decay_steps)
        if self.kind == "exponential":
            return self.exp_k**step
        if self.kind == "inverse_sigmoid":
            exponent = step / self.sigmoid_k
            return 0.0 if exponent > 700 else self.sigmoid_k / (self.sigmoid_k + math.exp(exponent))
        raise ValueError(f"unknown schedule {self.kind!r}; choose one of {', '.join(SCHEDULES)}")
