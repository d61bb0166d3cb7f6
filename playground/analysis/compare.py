"""Several teacher-forcing ratios (or schedules), trained side by side, and what their numbers say.

A `CompareConfig` is a validated base `TrainConfig` plus the arms to compare
and a number of seeds; `runs.engines.CompareEngine` trains all arms x seeds
as one `BatchedTrainer`; `summary_rows` and `reading` turn its history into the final table and
a plain-language reading computed from those numbers.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from playground.analysis.readings import difference, noise_lead, points, share, trade_off
from playground.core.config import SETTINGS, VARIANT_SETTINGS, ConfigError, TrainConfig
from playground.core.forcing import SCHEDULES
from playground.training.rules import Metric

DEFAULT_RATIOS = (0.0, 0.25, 0.5, 0.75, 1.0)
# Longer sequences, where the trade-off shows within a minute (3 ratios x 600 steps: 38 s on 2 cores, page open):
# gamma = 1 learns fastest but has the widest gap between teacher-forced and free-running accuracy, peaking near
# step 100 (the defaults are too easy: every ratio ends near 99%).
TRADE_OFF_EXAMPLE = TrainConfig(min_len=8, max_len=16, hidden_dim=64, steps=600)
TRADE_OFF_RATIOS = (0.0, 0.5, 1.0)
MAX_ARMS = 8  # ratios and schedules
MAX_MODEL_ARMS = 24  # ratios and schedules x models (cells x attentions x source orders)
RATIO_CHOICES = tuple(round(i * 0.05, 2) for i in range(21))  # what the pages offer
MAX_SEEDS = 3
TARGET_ACCURACY = 0.9
GAP = "gap"  # the exposure-bias gap: teacher-forced minus free-running token accuracy (a column, a chart)
LENGTHS = "lengths"  # the chart of free-running exact match by output length


ARM_FIELDS = ("ratio", "schedule", *VARIANT_SETTINGS)  # what names an arm in a table row, beside its label


@dataclass(frozen=True)
class Arm:
    """One curve: a constant ratio, or a schedule decaying from 1 to the base config's final gamma, on one model
    of the family (its cell, attention and source order)."""

    label: str
    changes: tuple[tuple[str, Any], ...]

    def settings(self) -> dict[str, Any]:
        """The arm's own settings as table fields: ratio (γ at the start), schedule, cell, attention, reverse_source."""
        changes = dict(self.changes)
        return dict(zip(ARM_FIELDS, (changes[Metric.GAMMA], changes["schedule"],
                                     *(changes[name] for name in VARIANT_SETTINGS)), strict=True))


_VARIANT_WORDS = {"cell": lambda value: value.upper(),
                  "attention": lambda value: "no attention" if value == "none" else f"{value} attention",
                  "reverse_source": lambda value: "source reversed" if value == "on" else "source in order"}


@dataclass(frozen=True)
class CompareConfig:
    base: TrainConfig
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    schedules: tuple[str, ...] = ()
    seeds: int = 1
    variants: tuple[tuple[str, ...], ...] = ((), (), ())  # cells, attentions, reverse_sources; () = the base's

    @classmethod
    def build(cls, base: TrainConfig, ratios: Any = DEFAULT_RATIOS, schedules: Any = (), seeds: Any = 1,
              max_seeds: int = MAX_SEEDS, variants: Any = ((), (), ())) -> CompareConfig:
        """Coerce and validate; every problem is reported at once, as `ConfigError` does for one run.

        `max_seeds` is the page's limit (curves stay readable); a study, which reports statistics, allows more.
        `variants` lists, per model setting (cell, attention, reverse_source), the values to compare (empty: the
        base's); the arms are every combination of them with the ratios and schedules.
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
        listed = tuple(tuple(dict.fromkeys(values)) for values in variants)
        if len(listed) != len(VARIANT_SETTINGS):
            problems.append(f"variants must list {', '.join(VARIANT_SETTINGS)}")
        else:
            problems += [f"{name} {value!r} is not allowed: choose from {', '.join(SETTINGS[name].options)}"
                         for name, values in zip(VARIANT_SETTINGS, listed, strict=True) for value in values
                         if value not in SETTINGS[name].options]
        models = math.prod(max(len(values), 1) for values in listed)
        forcing = len(parsed) + len(set(schedules))
        if not problems and not 1 <= forcing <= MAX_ARMS:
            problems.append(f"{forcing} ratios and schedules chosen: choose between 1 and {MAX_ARMS}")
        elif not problems and forcing * models > MAX_MODEL_ARMS:
            problems.append(f"{forcing * models} arms chosen ({forcing} ratios and schedules x {models} models): "
                            f"at most {MAX_MODEL_ARMS}")
        if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= max_seeds:
            problems.append(f"seeds = {seeds!r} is not allowed: it must be a whole number between 1 and {max_seeds}")
        elif base.seed + seeds - 1 > 2**31 - 1:
            problems.append(f"seed {base.seed} + {seeds} seeds runs past the largest seed (2147483647)")
        if problems:
            raise ConfigError(problems)
        return cls(base.validate(), tuple(parsed), tuple(dict.fromkeys(schedules)), seeds, listed)

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: TrainConfig) -> CompareConfig:
        """As `as_dict` wrote it (compare.json); a file from before model variants compares the base's model."""
        return cls.build(base, values.get("ratios", ()), values.get("schedules", ()), values.get("seeds", 1),
                         variants=[values.get(key, ()) for key in VARIANT_KEYS])

    def with_base(self, base: TrainConfig) -> CompareConfig:
        """The same arms on another base (more steps, a lesson shortened for tests)."""
        return CompareConfig.build(base, self.ratios, self.schedules, self.seeds, max(self.seeds, MAX_SEEDS),
                                   self.variants)

    def models(self) -> list[dict[str, str]]:
        """Every combination of the listed model settings (the base's where none is listed)."""
        choices = [values or (getattr(self.base, name),) for name, values in zip(VARIANT_SETTINGS, self.variants,
                                                                                 strict=True)]
        return [dict(zip(VARIANT_SETTINGS, combination, strict=True)) for combination in itertools.product(*choices)]

    def arms(self) -> list[Arm]:
        """Model-major (so models of one shape sit together and train stacked), then ratios, then schedules."""
        varying = [name for name, values in zip(VARIANT_SETTINGS, self.variants, strict=True) if len(values) > 1]
        arms = []
        for model in self.models():
            model_text = "".join(f", {_VARIANT_WORDS[name](model[name])}" for name in varying)
            arms += [Arm(f"γ = {r:g}{model_text}", ((Metric.GAMMA, r), ("schedule", "constant"), *model.items()))
                     for r in self.ratios]
            arms += [Arm(f"{s.replace('_', ' ')} 1→{self.base.tf_end:g}{model_text}",
                         ((Metric.GAMMA, 1.0), ("schedule", s), *model.items())) for s in self.schedules]
        return arms

    def configs(self) -> list[TrainConfig]:
        """Arm-major, seed-minor: model k is arm k // seeds with seed base.seed + k % seeds."""
        return [self.base.replace(**dict(arm.changes), seed=self.base.seed + s)
                for arm in self.arms() for s in range(self.seeds)]

    def model_labels(self) -> list[str]:
        """One per model of `configs()`: the arm's label, and the seed where an arm has several."""
        return [arm.label + (f", seed {self.base.seed + s}" if self.seeds > 1 else "")
                for arm in self.arms() for s in range(self.seeds)]

    def as_dict(self) -> dict[str, Any]:
        return {"base": self.base.as_dict(), "ratios": list(self.ratios), "schedules": list(self.schedules),
                "seeds": self.seeds} | {key: list(values) for key, values in zip(VARIANT_KEYS, self.variants,
                                                                                 strict=True)}


VARIANT_KEYS = ("cells", "attentions", "reverse_sources")  # compare.json's lists of the model settings compared


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


Value = Callable[[dict[str, float]], float | None]


def token_gap(row: dict[str, float]) -> float | None:
    """Teacher-forced minus free-running token accuracy, in an evaluated row (exact match cannot differ, see
    `summary_rows`)."""
    if Metric.TF_TOKEN_ACC not in row:
        return None
    return row[Metric.TF_TOKEN_ACC] - row[Metric.FR_TOKEN_ACC]


def shared_keys(values_by_seed: list[dict[Any, float]]) -> pd.DataFrame:
    """One column per seed, one row per key (a step, a target length) that every seed has a value for, sorted."""
    if not values_by_seed:
        return pd.DataFrame(dtype=float)
    return pd.concat([pd.Series(values, dtype=float) for values in values_by_seed], axis=1, join="inner",
                     ignore_index=True).sort_index()


def by_step(rows_by_seed: list[list[dict[str, float]]], value: Value) -> pd.DataFrame:
    """`value` of each seed's rows at the steps every seed has logged it: the one alignment of seeds by step."""
    return shared_keys([{row["step"]: v for row in rows if (v := value(row)) is not None} for rows in rows_by_seed])


def mean_exact_by_length(snapshot: CompareSnapshot, arm: int = 0) -> pd.Series:
    """Free-running exact match by target length at the latest evaluation, averaged over the arm's seeds (at the
    lengths every seed has), indexed by length."""
    return shared_keys(snapshot.exact_by_length[arm * snapshot.seeds:(arm + 1) * snapshot.seeds]).mean(axis=1)


def steps_to_reach(rows_by_seed: list[list[dict[str, float]]], level: float = TARGET_ACCURACY) -> int | None:
    """First evaluated step where the seeds' mean free-running exact match reaches `level`."""
    means = by_step(rows_by_seed, lambda row: row.get(Metric.FR_EXACT)).mean(axis=1)
    reached = means.index[means >= level]
    return int(reached[0]) if len(reached) else None


def gap_over_time(rows_by_seed: list[list[dict[str, float]]]) -> list[tuple[float, float]]:
    """(step, seed-mean gap) at every evaluation all seeds share: teacher-forced minus free-running tokens."""
    means = by_step(rows_by_seed, token_gap).mean(axis=1)
    return list(zip(means.index.tolist(), means.tolist(), strict=True))


def _spread(values: list[float]) -> float:
    return statistics.pstdev(values) if len(values) > 1 else 0.0


def summary_rows(snapshot: CompareSnapshot) -> list[dict[str, Any]]:
    """One row per arm: final metrics averaged over seeds, the gap (final and its peak), steps to 90%, wall time.

    The gap is in token accuracy: a sequence exactly right under teacher forcing is exactly right free-running
    too (every fed token equals its own argmax), so exact match cannot show exposure bias and the teacher-forced
    exact column is left out. `fr_exact_spread` and `gap_spread` (std over seeds) and the 95% interval of the
    free-running exact match over seeds (`fr_exact_ci_low`, `fr_exact_ci_high`) tell a difference from noise.
    Each row names its arm by its settings (`ARM_FIELDS`) beside its display `label`.
    """
    from playground.analysis.study import mean_ci  # study builds on this module

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
            return _mean([row[name] for row in finals])

        table.append({
            "label": label, **arms[arm].settings(), "seeds": snapshot.seeds, "step": int(finals[0]["step"]),
            Metric.TRAIN_LOSS: _mean([rows[-1][Metric.TRAIN_LOSS] for rows in trained if rows]),
            Metric.TF_LOSS: final(Metric.TF_LOSS), Metric.FR_LOSS: final(Metric.FR_LOSS),
            Metric.FR_EXACT: final(Metric.FR_EXACT),
            Metric.TF_TOKEN_ACC: final(Metric.TF_TOKEN_ACC), Metric.FR_TOKEN_ACC: final(Metric.FR_TOKEN_ACC),
            GAP: final(Metric.TF_TOKEN_ACC) - final(Metric.FR_TOKEN_ACC),
            "gap_peak": peak[1], "gap_peak_step": peak[0],
            "fr_exact_spread": _spread([row[Metric.FR_EXACT] for row in finals]),
            **_interval("fr_exact", mean_ci([row[Metric.FR_EXACT] for row in finals])),
            "gap_spread": _spread([row[Metric.TF_TOKEN_ACC] - row[Metric.FR_TOKEN_ACC] for row in finals]),
            "steps_to_90": steps_to_reach(rows_by_seed),
            "wall_seconds": round(snapshot.seconds, 2),
        })
    return table


def _interval(name: str, estimate: Any) -> dict[str, float]:
    """A 95% confidence interval over seeds as two fields (NaN, null in JSON, from one seed)."""
    return {f"{name}_ci_low": estimate.low, f"{name}_ci_high": estimate.high}


def summary_csv(table: list[dict[str, Any]]) -> str:
    """The table as CSV, each value as written (object columns: a whole number stays whole beside a blank)."""
    if not table:
        return ""
    return pd.DataFrame(table, dtype=object).to_csv(index=False, lineterminator="\r\n")




def _names(rows: list[dict[str, Any]]) -> str:
    labels = [row["label"] for row in rows]
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
        if within is not False and difference(best[Metric.FR_EXACT], worst[Metric.FR_EXACT]) < 0.02:
            sentences.append(f"After {step} steps, all ratios are within 2 points on free-running exact match "
                             f"({share(worst['val_fr_exact'])} for {worst['label']} to "
                             f"{share(best['val_fr_exact'])} for {best['label']}): no clear winner.")
        else:
            sentences.append(f"After {step} steps, {best['label']} gets the most sequences exactly right on its own: "
                             f"{share(best['val_fr_exact'])} free-running exact match, against "
                             f"{share(worst['val_fr_exact'])} for {worst['label']}.")
        sentences.append(trade_off({row["label"]: row[Metric.FR_EXACT] for row in table},
                                   {row["label"]: row[Metric.FR_TOKEN_ACC] for row in table}))
    by_gap = sorted(table, key=lambda row: row[GAP], reverse=True)
    widest, narrowest = by_gap[0], by_gap[-1]
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
        return (f"The trade-off: {fastest['label']} learns fastest (it {speed}) and pays with the widest gap "
                f"({points(widest['gap'])}). {why}")
    return (f"The trade-off: {fastest['label']} learns fastest (it {speed}), while {widest['label']} has the widest "
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
    return (f"Over time, the gap of {row['label']} peaked at {points(row['gap_peak'])} at step "
            f"{row['gap_peak_step']:.0f} and ends at {points(end)} at step {row['step']}: {trend}.")


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
