"""Several teacher-forcing ratios (or schedules), trained side by side, and what their numbers say.

A `CompareConfig` is a validated base `TrainConfig` plus the arms to compare
and a number of seeds; `runs.engines.CompareEngine` trains all arms x seeds
as one `BatchedTrainer`; `summary_rows` and `reading` turn its history into the final table and
a plain-language reading computed from those numbers.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass
from typing import Any

from playground.analysis.readings import difference, noise_lead, points, share, trade_off
from playground.core.config import ConfigError, TrainConfig
from playground.core.forcing import SCHEDULES
from playground.training.rules import Metric

DEFAULT_RATIOS = (0.0, 0.25, 0.5, 0.75, 1.0)
# Longer sequences, where the trade-off shows within a minute (3 ratios x 600 steps: 38 s on 2 cores, page open):
# gamma = 1 learns fastest but has the widest gap between teacher-forced and free-running accuracy, peaking near
# step 100 (the defaults are too easy: every ratio ends near 99%).
TRADE_OFF_EXAMPLE = TrainConfig(min_len=8, max_len=16, hidden_dim=64, steps=600)
TRADE_OFF_RATIOS = (0.0, 0.5, 1.0)
MAX_ARMS = 8
RATIO_CHOICES = tuple(round(i * 0.05, 2) for i in range(21))  # what the pages offer
MAX_SEEDS = 3
TARGET_ACCURACY = 0.9
GAP = "gap"  # the exposure-bias gap: teacher-forced minus free-running token accuracy (a column, a chart)
LENGTHS = "lengths"  # the chart of free-running exact match by output length


@dataclass(frozen=True)
class Arm:
    """One curve: a constant ratio, or a schedule decaying from 1 to the base config's final gamma."""

    label: str
    changes: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class CompareConfig:
    base: TrainConfig
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    schedules: tuple[str, ...] = ()
    seeds: int = 1

    @classmethod
    def build(cls, base: TrainConfig, ratios: Any = DEFAULT_RATIOS, schedules: Any = (), seeds: Any = 1,
              max_seeds: int = MAX_SEEDS) -> CompareConfig:
        """Coerce and validate; every problem is reported at once, as `ConfigError` does for one run.

        `max_seeds` is the page's limit (curves stay readable); a study, which reports statistics, allows more.
        """
        problems: list[str] = []
        parsed: list[float] = []
        for value in ratios:
            try:
                ratio = float(value)
            except (TypeError, ValueError):
                problems.append(f"ratio {value!r} is not allowed: it must be a number between 0 and 1")
                continue
            if not 0.0 <= ratio <= 1.0:
                problems.append(f"ratio {value!r} is not allowed: it must be between 0 and 1")
            elif ratio in parsed:
                problems.append(f"ratio {ratio:g} is listed twice")
            else:
                parsed.append(ratio)
        decaying = [s for s in SCHEDULES if s != "constant"]
        problems += [f"schedule {s!r} is not allowed: choose from {', '.join(decaying)}"
                     for s in schedules if s not in decaying]
        arms = len(parsed) + len(set(schedules))
        if not problems and not 1 <= arms <= MAX_ARMS:
            problems.append(f"{arms} ratios and schedules chosen: choose between 1 and {MAX_ARMS}")
        if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= max_seeds:
            problems.append(f"seeds = {seeds!r} is not allowed: it must be a whole number between 1 and {max_seeds}")
        elif base.seed + seeds - 1 > 2**31 - 1:
            problems.append(f"seed {base.seed} + {seeds} seeds runs past the largest seed (2147483647)")
        if problems:
            raise ConfigError(problems)
        return cls(base.validate(), tuple(parsed), tuple(dict.fromkeys(schedules)), seeds)

    def arms(self) -> list[Arm]:
        arms = [Arm(f"γ = {r:g}", ((Metric.GAMMA, r), ("schedule", "constant"))) for r in self.ratios]
        return arms + [Arm(f"{s.replace('_', ' ')} 1→{self.base.tf_end:g}",
                           ((Metric.GAMMA, 1.0), ("schedule", s))) for s in self.schedules]

    def configs(self) -> list[TrainConfig]:
        """Arm-major, seed-minor: model k is arm k // seeds with seed base.seed + k % seeds."""
        return [self.base.replace(**dict(arm.changes), seed=self.base.seed + s)
                for arm in self.arms() for s in range(self.seeds)]

    def as_dict(self) -> dict[str, Any]:
        return {"base": self.base.as_dict(), "ratios": list(self.ratios), "schedules": list(self.schedules),
                "seeds": self.seeds}


def parse_ratios(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass
class CompareSnapshot:
    labels: list[str]
    seeds: int
    rows: list[list[dict[str, float]]]  # per model (arm-major, seed-minor): logged rows, evaluations included
    exact_by_length: list[dict[int, float]]
    step: int
    total_steps: int
    seconds: float
    config: CompareConfig

    def arm_rows(self, arm: int) -> list[list[dict[str, float]]]:
        return self.rows[arm * self.seeds:(arm + 1) * self.seeds]


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def evaluated(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    return [row for row in rows if Metric.FR_EXACT in row]


def steps_to_reach(rows_by_seed: list[list[dict[str, float]]], level: float = TARGET_ACCURACY) -> float | None:
    """First evaluated step where the seeds' mean free-running exact match reaches `level`."""
    for rows in zip(*(evaluated(rows) for rows in rows_by_seed), strict=False):
        if _mean([row[Metric.FR_EXACT] for row in rows]) >= level:
            return rows[0]["step"]
    return None


def gap_over_time(rows_by_seed: list[list[dict[str, float]]]) -> list[tuple[float, float]]:
    """(step, seed-mean gap) at every evaluation all seeds share: teacher-forced minus free-running tokens."""
    per_seed = [{row["step"]: row[Metric.TF_TOKEN_ACC] - row[Metric.FR_TOKEN_ACC] for row in evaluated(rows)}
                for rows in rows_by_seed]
    steps = sorted(set.intersection(*(set(gaps) for gaps in per_seed))) if per_seed else []
    return [(step, _mean([gaps[step] for gaps in per_seed])) for step in steps]


def _spread(values: list[float]) -> float:
    return statistics.pstdev(values) if len(values) > 1 else 0.0


def summary_rows(snapshot: CompareSnapshot) -> list[dict[str, Any]]:
    """One row per arm: final metrics averaged over seeds, the gap (final and its peak), steps to 90%, wall time.

    The gap is in token accuracy: a sequence exactly right under teacher forcing is exactly right free-running
    too (every fed token equals its own argmax), so exact match cannot show exposure bias and the teacher-forced
    exact column is left out. `fr_exact_spread` and `gap_spread` (std over seeds) tell a difference from noise.
    """
    table = []
    for arm, label in enumerate(snapshot.labels):
        rows_by_seed = snapshot.arm_rows(arm)
        finals = [evaluated(rows)[-1] for rows in rows_by_seed if evaluated(rows)]
        if not finals:
            continue
        trained = [[row for row in rows if Metric.TRAIN_LOSS in row] for rows in rows_by_seed]
        gaps = gap_over_time(rows_by_seed)
        peak = max(gaps, key=lambda point: point[1]) if gaps else (finals[0]["step"], math.nan)

        def final(name: str, finals: list[dict[str, float]] = finals) -> float:
            return _mean([row[name] for row in finals])

        table.append({
            "ratio": label, "seeds": snapshot.seeds, "step": int(finals[0]["step"]),
            Metric.TRAIN_LOSS: _mean([rows[-1][Metric.TRAIN_LOSS] for rows in trained if rows]),
            Metric.TF_LOSS: final(Metric.TF_LOSS), Metric.FR_LOSS: final(Metric.FR_LOSS),
            Metric.FR_EXACT: final(Metric.FR_EXACT),
            Metric.TF_TOKEN_ACC: final(Metric.TF_TOKEN_ACC), Metric.FR_TOKEN_ACC: final(Metric.FR_TOKEN_ACC),
            GAP: final(Metric.TF_TOKEN_ACC) - final(Metric.FR_TOKEN_ACC),
            "gap_peak": peak[1], "gap_peak_step": peak[0],
            "fr_exact_spread": _spread([row[Metric.FR_EXACT] for row in finals]),
            "gap_spread": _spread([row[Metric.TF_TOKEN_ACC] - row[Metric.FR_TOKEN_ACC] for row in finals]),
            "steps_to_90": steps_to_reach(rows_by_seed),
            "wall_seconds": round(snapshot.seconds, 2),
        })
    return table


def summary_csv(table: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if table:
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return buffer.getvalue()




def _names(rows: list[dict[str, Any]]) -> str:
    labels = [row["ratio"] for row in rows]
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def reading(table: list[dict[str, Any]]) -> str:
    """A few sentences computed from the table: first whether the leader's lead is beyond seed noise, then the
    leader on free-running exact match, the trade-off with token accuracy when they disagree, the gaps, the speed."""
    if not table:
        return "No evaluation yet: the reading appears after the first evaluation."
    by_fr = sorted(table, key=lambda row: row[Metric.FR_EXACT], reverse=True)
    best, worst = by_fr[0], by_fr[-1]
    step = best["step"]
    sentences = []
    if len(table) == 1:
        sentences.append(f"After {step} steps, {best['ratio']} gets {share(best['val_fr_exact'])} of validation "
                         f"sequences exactly right when it decodes on its own (free-running).")
    else:
        runner_up, seeds = by_fr[1], best["seeds"]
        lead = difference(best[Metric.FR_EXACT], runner_up[Metric.FR_EXACT])
        spread = max(row.get("fr_exact_spread", 0.0) for row in table)
        within = None if seeds < 2 else lead <= 2 * spread
        sentences.append(noise_lead(best["ratio"], runner_up["ratio"], lead, within,
                                    f"means over {seeds} seeds, which spread free-running exact match by up to "
                                    f"{points(spread)} (std)"))
        if within is not False and difference(best[Metric.FR_EXACT], worst[Metric.FR_EXACT]) < 0.02:
            sentences.append(f"After {step} steps, all ratios are within 2 points on free-running exact match "
                             f"({share(worst['val_fr_exact'])} for {worst['ratio']} to "
                             f"{share(best['val_fr_exact'])} for {best['ratio']}): no clear winner.")
        else:
            sentences.append(f"After {step} steps, {best['ratio']} gets the most sequences exactly right on its own: "
                             f"{share(best['val_fr_exact'])} free-running exact match, against "
                             f"{share(worst['val_fr_exact'])} for {worst['ratio']}.")
        sentences.append(trade_off({row["ratio"]: row[Metric.FR_EXACT] for row in table},
                                   {row["ratio"]: row[Metric.FR_TOKEN_ACC] for row in table}))
    by_gap = sorted(table, key=lambda row: row[GAP], reverse=True)
    widest, narrowest = by_gap[0], by_gap[-1]
    sentences.append(f"The exposure-bias gap (teacher-forced minus free-running token accuracy) is widest for "
                     f"{widest['ratio']} ({points(widest['gap'])}: {share(widest['val_tf_token_acc'])} of tokens "
                     f"right when fed the true previous tokens, {share(widest['val_fr_token_acc'])} on its own)"
                     + (f" and narrowest for {narrowest['ratio']} ({points(narrowest['gap'])})."
                        if len(table) > 1 else "."))
    if len(table) > 1:
        def loss_ratio(row: dict[str, Any]) -> float:
            return row[Metric.FR_LOSS] / max(row[Metric.TF_LOSS], 1e-12)

        most, least = max(table, key=loss_ratio), min(table, key=loss_ratio)
        sentences.append(f"In validation loss, free-running is {loss_ratio(most):.1f}x the teacher-forced loss for "
                         f"{most['ratio']} and {loss_ratio(least):.1f}x for {least['ratio']}.")
    reached = [row for row in table if row["steps_to_90"] is not None]
    if reached:
        first_step = min(row["steps_to_90"] for row in reached)
        first = [row for row in reached if row["steps_to_90"] == first_step]
        sentences.append(f"{_names(first)} first reached {TARGET_ACCURACY:.0%} free-running exact match "
                         f"(step {first_step:.0f}); {len(reached)} of {len(table)} reached it.")
    else:
        sentences.append(f"None reached {TARGET_ACCURACY:.0%} free-running exact match yet.")
    sentences += [_trade_off(table), _gap_over_time(table)]
    return " ".join(sentence for sentence in sentences if sentence)


def _trade_off(table: list[dict[str, Any]]) -> str:
    """Faster learning against a wider gap: the fastest learner and the widest gap, and why they go together."""
    if len(table) < 2:
        return ""
    reached = [row for row in table if row["steps_to_90"] is not None]
    fastest = (min(reached, key=lambda row: row["steps_to_90"]) if reached
               else min(table, key=lambda row: row[Metric.TF_LOSS]))
    speed = (f"reached {TARGET_ACCURACY:.0%} first (step {fastest['steps_to_90']:.0f})" if reached
             else f"has the lowest teacher-forced loss ({fastest[Metric.TF_LOSS]:.3f})")
    widest = max(table, key=lambda row: row[GAP])
    why = ("Feeding the true previous token makes every training step an easy, well-aimed lesson, so the model "
           "learns fast; but it never practises continuing from its own mistakes, and that shows as a gap between "
           "teacher-forced and free-running accuracy (exposure bias).")
    if fastest is widest:
        return (f"The trade-off: {fastest['ratio']} learns fastest (it {speed}) and pays with the widest gap "
                f"({points(widest['gap'])}). {why}")
    return (f"The trade-off: {fastest['ratio']} learns fastest (it {speed}), while {widest['ratio']} has the widest "
            f"gap ({points(widest['gap'])}), so here speed and gap are not bought together. {why}")


def _gap_over_time(table: list[dict[str, Any]]) -> str:
    """Where the widest gap peaked and where it ended: a gap that closes is not the same as one that stays."""
    rows = [row for row in table if not math.isnan(row.get("gap_peak", math.nan))]
    if not rows:
        return ""
    row = max(rows, key=lambda row: row["gap_peak"])
    end = row[GAP]
    trend = ("it has mostly closed since" if end < 0.5 * row["gap_peak"]
             else "it is still about as wide" if end > 0.8 * row["gap_peak"] else "it has narrowed since")
    return (f"Over time, the gap of {row['ratio']} peaked at {points(row['gap_peak'])} at step "
            f"{row['gap_peak_step']:.0f} and ends at {points(end)} at step {row['step']}: {trend}.")


def format_table(table: list[dict[str, Any]]) -> str:
    """The summary as aligned text for the terminal."""
    header = (f"{'ratio':<24} {'train loss':>10} {'TF tokens':>9} {'FR tokens':>9} {'gap':>7} {'FR exact':>9} "
              f"{'FR loss':>8} {'steps to 90%':>12}")
    lines = [header]
    for row in table:
        reached = "-" if row["steps_to_90"] is None else f"{row['steps_to_90']:.0f}"
        lines.append(f"{row['ratio']:<24} {row['train_loss']:>10.4f} {row['val_tf_token_acc']:>9.1%} "
                     f"{row['val_fr_token_acc']:>9.1%} {row['gap'] * 100:>+6.1f}p {row['val_fr_exact']:>9.1%} "
                     f"{row['val_fr_loss']:>8.3f} {reached:>12}")
    return "\n".join(lines)
