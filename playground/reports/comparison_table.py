"""A comparison's final table and its reading: the numbers a student reads, and what they say in words.

`summary_rows` turns a `CompareSnapshot` into one row per arm; `read_table` says, from those rows alone, which
differences are beyond seed noise (its decisions as data, its sentences as `text`, which `comparison_reading`
gives); `format_table` prints the table for a terminal."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pandas as pd

from playground.experiments.comparison import TARGET_ACCURACY, CompareSnapshot
from playground.experiments.statistics import (
    SHARE,
    SHARE_DIFFERENCE,
    evaluated,
    final_by_length,
    gap_over_time,
    mean_ci,
    mean_or_nan,
    seed_spread,
    steps_to_reach,
)
from playground.reports.readings import difference, disagreement, noise_lead, points, share, trade_off
from playground.training.metrics import Metric

GAP = "gap"  # the exposure-bias gap: teacher-forced minus free-running token accuracy (a column, a chart)


LENGTHS = "lengths"  # the chart of free-running exact match by output length


def summary_rows(snapshot: CompareSnapshot) -> list[dict[str, Any]]:
    """One row per arm: final metrics averaged over seeds, the gap (final and its peak), steps to 90%, wall time.

    The gap is in token accuracy: a sequence exactly right under teacher forcing is exactly right free-running
    too (every fed token equals its own argmax), so exact match cannot show exposure bias and the teacher-forced
    exact column is left out. `fr_exact_spread` and `gap_spread` (std over seeds) and the 95% interval of the
    free-running exact match and of the gap over seeds (`fr_exact_ci_low`, `gap_ci_high`, ...; `_ci_clipped`: cut to the
    possible range) tell a difference from noise.
    Each row names its arm by its settings (`ARM_FIELDS`) beside its display `label`, with its parameter count.
    """

    table = []
    arms = snapshot.config.arms()
    for arm, label in enumerate(snapshot.labels):
        rows_by_seed = snapshot.arm_rows(arm)
        finals = [evaluated(rows)[-1] for rows in rows_by_seed if evaluated(rows)]
        if not finals:
            continue
        trained = [[row for row in rows if Metric.TRAIN_LOSS in row] for rows in rows_by_seed]
        gaps = gap_over_time(rows_by_seed)
        peak = max(gaps, key=lambda point: point[1]) if gaps else (finals[0]["step"], math.nan)

        def final(name: str, finals: list[dict[str, float]] = finals) -> float:
            return mean_or_nan([row[name] for row in finals])

        table.append({
            "label": label, **arms[arm].settings(),
            "parameters": snapshot.parameters[arm] if arm < len(snapshot.parameters) else None,
            "seeds": snapshot.seeds, "step": int(finals[0]["step"]),
            Metric.TRAIN_LOSS: mean_or_nan([rows[-1][Metric.TRAIN_LOSS] for rows in trained if rows]),
            Metric.TF_LOSS: final(Metric.TF_LOSS), Metric.FR_LOSS: final(Metric.FR_LOSS),
            Metric.FR_EXACT: final(Metric.FR_EXACT),
            Metric.TF_TOKEN_ACC: final(Metric.TF_TOKEN_ACC), Metric.FR_TOKEN_ACC: final(Metric.FR_TOKEN_ACC),
            GAP: final(Metric.TF_TOKEN_ACC) - final(Metric.FR_TOKEN_ACC),
            "gap_peak": peak[1], "gap_peak_step": peak[0],
            "fr_exact_spread": seed_spread([row[Metric.FR_EXACT] for row in finals]),
            **_interval("fr_exact", mean_ci([row[Metric.FR_EXACT] for row in finals], bounds=SHARE)),
            "gap_spread": seed_spread([row[Metric.TF_TOKEN_ACC] - row[Metric.FR_TOKEN_ACC] for row in finals]),
            **_interval(GAP, mean_ci([row[Metric.TF_TOKEN_ACC] - row[Metric.FR_TOKEN_ACC] for row in finals],
                                     bounds=SHARE_DIFFERENCE)),
            "steps_to_90": steps_to_reach(rows_by_seed),
            **beyond_figures(finals),
            "wall_seconds": round(snapshot.seconds, 2),
        })
    return table


def beyond_figures(finals: list[dict[str, float]]) -> dict[str, Any]:
    """Exact match by size, free-running and teacher-forced, and its mean beyond the training sizes (NaN, null in
    JSON, when validation tests none), averaged over seeds."""
    return {"exact_by_length": final_by_length(finals), "tf_exact_by_length": final_by_length(finals, "val_tf"),
            Metric.BEYOND_EXACT: mean_or_nan([row[Metric.BEYOND_EXACT] for row in finals
                                              if Metric.BEYOND_EXACT in row])}


def _interval(name: str, estimate: Any) -> dict[str, float | bool]:
    """A 95% confidence interval over seeds as two fields (NaN, null in JSON, from one seed), and whether it was cut
    to the possible range."""
    return {f"{name}_ci_low": estimate.low, f"{name}_ci_high": estimate.high, f"{name}_ci_clipped": estimate.clipped}


def summary_csv(table: list[dict[str, Any]]) -> str:
    """The table as CSV, each value as written (object columns: a whole number stays whole beside a blank)."""
    if not table:
        return ""
    flat = [{name: value for name, value in row.items() if not isinstance(value, dict)} for row in table]
    return pd.DataFrame(flat, dtype=object).to_csv(index=False, lineterminator="\r\n")


def _names(rows: list[dict[str, Any]]) -> str:
    labels = [row["label"] for row in rows]
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


class GapTrend(StrEnum):
    """Where the widest gap ended against its peak: a gap that closes is not the same as one that stays."""

    CLOSED = "it has mostly closed since"
    NARROWED = "it has narrowed since"
    AS_WIDE = "it is still about as wide"


@dataclass(frozen=True)
class ComparisonReading:
    """What a comparison's reading decided, beside the sentences that say it (`text`): the decisions are data, so
    a caller or a test never has to parse the words."""

    text: str
    leader: str | None = None  # the most free-running exact match
    runner_up: str | None = None
    within_noise: bool | None = None  # the leader's lead over the runner-up; None: one seed cannot tell
    no_clear_winner: bool = False  # every arm within 2 points on free-running exact match
    disagreement: tuple[str, str] | None = None  # (most sequences, most tokens) when they differ
    widest_gap: str | None = None
    narrowest_gap: str | None = None
    first_to_target: tuple[str, ...] = ()  # the arms that reached the target accuracy first
    reached_target: int = 0  # how many arms reached it
    fastest: str | None = None  # the fastest learner (two or more arms)
    fastest_has_widest_gap: bool | None = None
    gap_trend: GapTrend | None = None


NOT_EVALUATED = ComparisonReading("No evaluation yet: the reading appears after the first evaluation.")


def read_table(table: list[dict[str, Any]]) -> ComparisonReading:
    """A few sentences computed from the table: first whether the leader's lead is beyond seed noise, then the
    leader on free-running exact match, the trade-off with token accuracy when they disagree, the gaps, the speed."""
    if not table:
        return NOT_EVALUATED
    by_fr = sorted(table, key=lambda row: row[Metric.FR_EXACT], reverse=True)
    best, worst = by_fr[0], by_fr[-1]
    step = best["step"]
    sentences = []
    decided: dict[str, Any] = {"leader": best["label"]}
    if len(table) == 1:
        sentences.append(f"After {step} steps, {best['label']} gets {share(best['val_fr_exact'])} of validation "
                         f"sequences exactly right when it decodes on its own (free-running).")
    else:
        runner_up, seeds = by_fr[1], best["seeds"]
        lead = difference(best[Metric.FR_EXACT], runner_up[Metric.FR_EXACT])
        spread = max(row.get("fr_exact_spread", 0.0) for row in table)
        within = None if seeds < 2 else lead <= 2 * spread
        sentences.append(noise_lead(best["label"], runner_up["label"], lead, within,
                                    f"means over {seeds} seeds, which spread free-running exact match by up to "
                                    f"{points(spread)} (std)"))
        tied = within is not False and difference(best[Metric.FR_EXACT], worst[Metric.FR_EXACT]) < 0.02
        if tied:
            sentences.append(f"After {step} steps, all ratios are within 2 points on free-running exact match "
                             f"({share(worst['val_fr_exact'])} for {worst['label']} to "
                             f"{share(best['val_fr_exact'])} for {best['label']}): no clear winner.")
        else:
            sentences.append(f"After {step} steps, {best['label']} gets the most sequences exactly right on its own: "
                             f"{share(best['val_fr_exact'])} free-running exact match, against "
                             f"{share(worst['val_fr_exact'])} for {worst['label']}.")
        exact = {row["label"]: row[Metric.FR_EXACT] for row in table}
        tokens = {row["label"]: row[Metric.FR_TOKEN_ACC] for row in table}
        sentences.append(trade_off(exact, tokens))
        decided |= {"runner_up": runner_up["label"], "within_noise": within, "no_clear_winner": tied,
                    "disagreement": disagreement(exact, tokens)}
    by_gap = sorted(table, key=lambda row: row[GAP], reverse=True)
    widest, narrowest = by_gap[0], by_gap[-1]
    decided |= {"widest_gap": widest["label"], "narrowest_gap": narrowest["label"] if len(table) > 1 else None}
    sentences.append(f"The exposure-bias gap (teacher-forced minus free-running token accuracy) is widest for "
                     f"{widest['label']} ({points(widest['gap'])}: {share(widest['val_tf_token_acc'])} of tokens "
                     f"right when fed the true previous tokens, {share(widest['val_fr_token_acc'])} on its own)"
                     + (f" and narrowest for {narrowest['label']} ({points(narrowest['gap'])})."
                        if len(table) > 1 else "."))
    if len(table) > 1:
        def loss_ratio(row: dict[str, Any]) -> float:
            return row[Metric.FR_LOSS] / max(row[Metric.TF_LOSS], 1e-12)

        most, least = max(table, key=loss_ratio), min(table, key=loss_ratio)
        sentences.append(f"In validation loss, free-running is {loss_ratio(most):.1f}x the teacher-forced loss for "
                         f"{most['label']} and {loss_ratio(least):.1f}x for {least['label']}.")
    reached = [row for row in table if row["steps_to_90"] is not None]
    if reached:
        first_step = min(row["steps_to_90"] for row in reached)
        first = [row for row in reached if row["steps_to_90"] == first_step]
        decided |= {"first_to_target": tuple(row["label"] for row in first), "reached_target": len(reached)}
        sentences.append(f"{_names(first)} first reached {TARGET_ACCURACY:.0%} free-running exact match "
                         f"(step {first_step:.0f}); {len(reached)} of {len(table)} reached it.")
    else:
        sentences.append(f"None reached {TARGET_ACCURACY:.0%} free-running exact match yet.")
    if len(table) > 1:
        fastest = _fastest(table)
        decided |= {"fastest": fastest["label"], "fastest_has_widest_gap": fastest is widest}
        sentences.append(_trade_off(table, fastest, widest))
    if (peaked := _gap_peak(table)) is not None:
        decided["gap_trend"] = _trend(peaked)
        sentences.append(_gap_over_time(peaked))
    return ComparisonReading(" ".join(sentence for sentence in sentences if sentence), **decided)


def comparison_reading(table: list[dict[str, Any]]) -> str:
    """The reading's sentences (`read_table` has its decisions too)."""
    return read_table(table).text


def _fastest(table: list[dict[str, Any]]) -> dict[str, Any]:
    """The first arm to reach the target, or the lowest teacher-forced loss when none has."""
    reached = [row for row in table if row["steps_to_90"] is not None]
    return (min(reached, key=lambda row: row["steps_to_90"]) if reached
            else min(table, key=lambda row: row[Metric.TF_LOSS]))


def _trade_off(table: list[dict[str, Any]], fastest: dict[str, Any], widest: dict[str, Any]) -> str:
    """Faster learning against a wider gap: the fastest learner and the widest gap, and why they go together."""
    speed = (f"reached {TARGET_ACCURACY:.0%} first (step {fastest['steps_to_90']:.0f})"
             if fastest["steps_to_90"] is not None
             else f"has the lowest teacher-forced loss ({fastest[Metric.TF_LOSS]:.3f})")
    why = ("Feeding the true previous token makes every training step an easy, well-aimed lesson, so the model "
           "learns fast; but it never practises continuing from its own mistakes, and that shows as a gap between "
           "teacher-forced and free-running accuracy (exposure bias).")
    if fastest is widest:
        return (f"The trade-off: {fastest['label']} learns fastest (it {speed}) and pays with the widest gap "
                f"({points(widest['gap'])}). {why}")
    return (f"The trade-off: {fastest['label']} learns fastest (it {speed}), while {widest['label']} has the widest "
            f"gap ({points(widest['gap'])}), so here speed and gap are not bought together. {why}")


def _gap_peak(table: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The arm whose gap peaked highest (None when no arm's peak is known)."""
    rows = [row for row in table if not math.isnan(row.get("gap_peak", math.nan))]
    return max(rows, key=lambda row: row["gap_peak"]) if rows else None


def _trend(row: dict[str, Any]) -> GapTrend:
    end, peak = row[GAP], row["gap_peak"]
    return GapTrend.CLOSED if end < 0.5 * peak else GapTrend.AS_WIDE if end > 0.8 * peak else GapTrend.NARROWED


def _gap_over_time(row: dict[str, Any]) -> str:
    """Where the widest gap peaked and where it ended."""
    return (f"Over time, the gap of {row['label']} peaked at {points(row['gap_peak'])} at step "
            f"{row['gap_peak_step']:.0f} and ends at {points(row[GAP])} at step {row['step']}: {_trend(row)}.")


TERMINAL_COLUMNS = {"label": ("arm", str), Metric.TRAIN_LOSS: ("train loss", "{:.4f}".format),
                    Metric.TF_TOKEN_ACC: ("TF tokens", "{:.1%}".format),
                    Metric.FR_TOKEN_ACC: ("FR tokens", "{:.1%}".format),
                    GAP: ("gap", lambda value: f"{value * 100:+.1f}p"), Metric.FR_EXACT: ("FR exact", "{:.1%}".format),
                    Metric.FR_LOSS: ("FR loss", "{:.3f}".format),
                    "steps_to_90": ("steps to 90%", "{:.0f}".format)}


def format_table(table: list[dict[str, Any]]) -> str:
    """The summary as aligned text for the terminal."""
    if not table:
        return "  ".join(name for name, _ in TERMINAL_COLUMNS.values())
    frame = pd.DataFrame(table)[list(TERMINAL_COLUMNS)].astype({"steps_to_90": float})  # None: not reached
    return frame.to_string(index=False, header=[name for name, _ in TERMINAL_COLUMNS.values()],
                           formatters=[format for _, format in TERMINAL_COLUMNS.values()], na_rep="-")
