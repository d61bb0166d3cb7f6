"""The words every reading shares (Compare, Study, Lessons), so the three pages never tell one run two stories.

A reading leads with whether a difference is beyond seed noise, computes its arithmetic from the figures it
displays (a difference of two shown percentages is their shown difference), keeps an interval of a share within
[0, 100%], and names the trade-off when exact match and token accuracy rank the arms differently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

SHOWN_DIGITS = 3  # a share is shown as 98.2%: three decimals of the fraction


def share(value: float) -> str:
    """98.2%, not 98%: near the ceiling the differences that matter are tenths ("-" for a missing figure)."""
    return f"{value:.1%}" if math.isfinite(value) else "-"


def points(value: float) -> str:
    """A difference of two shares, in percentage points: one sign convention everywhere (a minus when it falls)."""
    return f"{value * 100:.1f} points"


def shown(value: float) -> float:
    """The share as it is displayed (rounded to a tenth of a percent), for arithmetic a reader can redo."""
    return round(value, SHOWN_DIGITS)


def difference(first: float, second: float) -> float:
    """`first - second` of the displayed figures: 17.4% - 3.0% reads 14.4 points, never 14.5."""
    return shown(first) - shown(second)


def clipped(low: float, high: float) -> tuple[float, float, bool]:
    """A share's interval within [0, 1], and whether it had to be clipped (a normal interval near 100% overshoots)."""
    inside = (min(max(low, 0.0), 1.0), min(max(high, 0.0), 1.0))
    return inside[0], inside[1], inside != (low, high)


def interval(low: float, high: float) -> str:
    """`95% CI 91.0% to 100.0%`, clipped to what a share can be, saying so when it was clipped."""
    low, high, cut = clipped(low, high)
    return f"95% CI {share(low)} to {share(high)}" + (" (clipped to 0-100%)" if cut else "")


def noise_lead(best: str, runner_up: str, gap: float, within_noise: bool | None, evidence: str) -> str:
    """The sentence a reading opens with: whether the leader's lead over the next arm is more than seed noise.

    `gap` is the lead in shares, `within_noise` None when one seed cannot tell, `evidence` how that was judged.
    """
    if within_noise is None:
        return (f"One seed cannot tell a real difference from luck: {best} leads {runner_up} by {points(gap)}, "
                "which another seed could reverse; run 2 or 3 seeds to see the spread.")
    if within_noise:
        return (f"Within seed noise: {best} and {runner_up} cannot be ranked ({points(gap)} apart; {evidence}), "
                "so the lead below may be luck.")
    return f"Beyond seed noise: {best} leads {runner_up} by {points(gap)} ({evidence})."


def disagreement(exact: Mapping[str, float], tokens: Mapping[str, float]) -> tuple[str, str] | None:
    """The arm with the most whole sequences right and the one with the most tokens right, when they differ (by the
    shown figures); None when exact match and token accuracy rank the same arm first."""
    if len(exact) < 2:
        return None
    by_exact, by_tokens = max(exact, key=exact.__getitem__), max(tokens, key=tokens.__getitem__)
    if by_exact == by_tokens or shown(tokens[by_exact]) == shown(tokens[by_tokens]):
        return None
    return by_exact, by_tokens


def trade_off(exact: Mapping[str, float], tokens: Mapping[str, float]) -> str:
    """When the arm with the most whole sequences right is not the one with the most tokens right, say why both
    can be true; empty when they agree."""
    if (leaders := disagreement(exact, tokens)) is None:
        return ""
    by_exact, by_tokens = leaders
    return (f"Exact match and token accuracy disagree: {by_exact} gets the most whole sequences right "
            f"({share(exact[by_exact])} exact match, {share(exact[by_tokens])} for {by_tokens}) but {by_tokens} the "
            f"most tokens ({share(tokens[by_tokens])} free-running token accuracy, {share(tokens[by_exact])} for "
            f"{by_exact}). Both can be true: exact match counts a sequence only if every token is right, while a "
            "model that errs once and then derails loses every token after the error; a model can get more "
            "sequences entirely right and still lose more tokens on the ones it gets wrong.")
