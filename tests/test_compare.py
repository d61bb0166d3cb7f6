"""Comparison config, engine history, summary table, the computed reading and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from playground.cli import main
from playground.core.config import ConfigError, TrainConfig
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.experiments.statistics import steps_to_reach
from playground.reports.comparison_table import (
    NOT_EVALUATED,
    GapTrend,
    comparison_reading,
    read_table,
    summary_csv,
    summary_rows,
)
from playground.runs.compare_engine import CompareEngine
from playground.training.checkpoints import load_checkpoint
from playground.training.run_folder import CHECKPOINT_FILE, METRICS_FILE, MODEL_COLUMN, read_config, read_metrics

TINY = TrainConfig(emb_dim=8, hidden_dim=16, batch_size=16, val_size=32, max_len=5, steps=12, eval_every=6)


def test_arms_times_seeds_become_configs_in_arm_major_order() -> None:
    config = CompareConfig.build(TINY.replace(seed=7), ["0", 1], ["linear"], 2)
    assert [arm.label for arm in config.arms()] == ["γ = 0", "γ = 1", "linear 1→0"]
    configs = config.configs()
    assert [(c.teacher_forcing_ratio, c.schedule, c.seed) for c in configs] == [
        (0.0, "constant", 7), (0.0, "constant", 8), (1.0, "constant", 7), (1.0, "constant", 8),
        (1.0, "linear", 7), (1.0, "linear", 8)]


@pytest.mark.parametrize(("ratios", "schedules", "seeds", "message"), [
    (["x"], [], 1, "ratio 'x' is not allowed: it must be a number between 0 and 1"),
    ([1.5], [], 1, "ratio 1.5 is not allowed: it must be between 0 and 1"),
    ([0.5, "0.5"], [], 1, "ratio 0.5 is listed twice"),
    ([], ["constant"], 1, "schedule 'constant' is not allowed: choose from linear, exponential, inverse_sigmoid"),
    ([i / 10 for i in range(9)], [], 1, "9 ratios and schedules chosen: choose between 1 and 8"),
    ([0.5], [], 4, "seeds = 4 is not allowed: it must be a whole number between 1 and 3"),
])
def test_bad_choices_are_named(ratios: list, schedules: list, seeds: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CompareConfig.build(TINY, ratios, schedules, seeds)
    assert caught.value.problems == [message]


def test_engine_history_feeds_table_and_reading() -> None:
    config = CompareConfig.build(TINY, [0.0, 1.0], seeds=1)
    engine = CompareEngine(config, log_every=4)
    snapshot = engine.run_to_end()
    assert snapshot.step == 12 and len(snapshot.rows) == 2 and snapshot.config == config
    assert [row["step"] for row in snapshot.rows[0]] == [0, 1, 4, 6, 8, 12]
    assert all("val_fr_exact" in row for row in snapshot.rows[1] if row["step"] in (0, 6, 12))
    table = summary_rows(snapshot)
    assert [row["label"] for row in table] == ["γ = 0", "γ = 1"]
    assert [(row["ratio"], row["schedule"], row["cell"], row["attention"], row["reverse_source"]) for row in table] == [
        (0.0, "constant", "lstm", "none", "off"), (1.0, "constant", "lstm", "none", "off")]
    assert table[1]["gap"] == pytest.approx(table[1]["val_tf_token_acc"] - table[1]["val_fr_token_acc"])
    assert summary_csv(table).splitlines()[0].startswith(
        "label,ratio,schedule,cell,attention,reverse_source,architecture,positions,eos,heads,parameters,seeds,step,"
        "train_loss")
    assert table[0]["parameters"] == table[1]["parameters"] > 0
    assert read_table(table).within_noise is None  # one seed cannot tell


def _row(label: str, fr: float, tf_tokens: float, fr_tokens: float, reached: float | None) -> dict:
    return {"label": label, "seeds": 1, "step": 500, "val_fr_exact": fr, "val_tf_token_acc": tf_tokens,
            "val_fr_token_acc": fr_tokens, "gap": tf_tokens - fr_tokens, "steps_to_90": reached,
            "val_tf_exact": fr, "val_tf_loss": 0.1, "val_fr_loss": 0.1 + (tf_tokens - fr_tokens)}


def test_reading_is_computed_from_the_numbers() -> None:
    table = [_row("γ = 0", 0.62, 0.90, 0.85, None), _row("γ = 1", 0.31, 0.97, 0.61, None),
             _row("γ = 0.5", 0.93, 0.99, 0.97, 400.0)]
    read = read_table(table)
    assert (read.leader, read.runner_up, read.no_clear_winner) == ("γ = 0.5", "γ = 0", False)
    assert (read.widest_gap, read.narrowest_gap) == ("γ = 1", "γ = 0.5")
    assert (read.first_to_target, read.reached_target) == (("γ = 0.5",), 1)
    assert (read.fastest, read.fastest_has_widest_gap, read.gap_trend) == ("γ = 0.5", False, None)
    tie = read_table([_row("a", 0.50, 0.9, 0.8, 300.0), _row("b", 0.51, 0.9, 0.8, 300.0)])
    assert tie.no_clear_winner and tie.first_to_target == ("a", "b")


def test_steps_to_reach_uses_the_seed_mean() -> None:
    seeds = [[{"step": 10, "val_fr_exact": 0.95}, {"step": 20, "val_fr_exact": 0.95}],
             [{"step": 10, "val_fr_exact": 0.80}, {"step": 20, "val_fr_exact": 0.90}]]
    assert steps_to_reach(seeds) == 20
    assert steps_to_reach(seeds, 0.99) is None
    empty = CompareSnapshot(["γ = 0"], 1, [[]], [{}], 0, 10, 0.0, CompareConfig.build(TINY, [0.0]))
    assert summary_rows(empty) == [] and read_table([]) == NOT_EVALUATED and read_table([]).leader is None


def test_engine_saves_and_loads_back_every_model(tmp_path: Path) -> None:
    config = CompareConfig.build(TINY, [0.0, 1.0], ["linear"], seeds=2)
    engine = CompareEngine(config, log_every=4)
    before = engine.run_to_end()
    engine.save(tmp_path)
    assert read_config(tmp_path) == config.base
    rows = read_metrics(tmp_path)
    assert sorted({row[MODEL_COLUMN] for row in rows}) == list(range(6))
    assert len(rows) == sum(len(model_rows) for model_rows in before.rows)
    loaded = CompareEngine.load(tmp_path)
    after = loaded.snapshot()
    assert after.config == config and after.labels == before.labels and after.step == 12 and loaded.finished
    assert after.rows == before.rows and after.seconds == before.seconds
    assert [m.label for m in loaded.models()] == [m.label for m in engine.models()] == [
        "γ = 0, seed 0", "γ = 0, seed 1", "γ = 1, seed 0", "γ = 1, seed 1", "linear 1→0, seed 0",
        "linear 1→0, seed 1"]
    for saved, trained in zip(loaded.models(), engine.models(), strict=True):
        state = trained.model.state_dict()
        assert saved.config == trained.config
        assert all(torch.equal(value, state[name]) for name, value in saved.model.state_dict().items())


def test_a_loaded_comparison_trains_on_as_if_never_interrupted(tmp_path: Path) -> None:
    config = CompareConfig.build(TINY, [0.0, 1.0])
    uninterrupted = CompareEngine(config)
    halfway = CompareEngine(config)
    while halfway.step < 6:
        halfway.advance()
    halfway.save(tmp_path)
    resumed = CompareEngine.load(tmp_path)
    resumed.run_to_end()
    uninterrupted.run_to_end()
    for mine, theirs in zip(resumed.snapshot().rows, uninterrupted.snapshot().rows, strict=True):
        assert [{k: v for k, v in row.items() if k != "seconds"} for row in mine] == [
            {k: v for k, v in row.items() if k != "seconds"} for row in theirs]


def test_a_comparisons_settings_are_fixed_and_it_extends() -> None:
    engine = CompareEngine(CompareConfig.build(TINY, [0.0, 1.0]))
    with pytest.raises(ValueError, match="fixed while it trains"):
        engine.set_live({"lr": 0.01})
    engine.run_to_end()
    engine.extend(18)
    assert (engine.total_steps, engine.finished, engine.snapshot().config.base.steps) == (18, False, 18)
    assert engine.run_to_end().step == 18
    assert "val_fr_exact" in engine.snapshot().rows[0][-1]  # the new last step is evaluated


def test_cli_prints_the_table_then_one_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", "--task", "copy", "--ratios", "0,0.5,1", "--seeds", "2", "--json", "--hidden", "16",
                 "--emb", "8", "--steps", "6", "--eval-every", "3", "--val-size", "32", "--batch-size", "8",
                 "--runs-dir", str(tmp_path), "--name", "three ratios", "--quiet"])
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    assert code == 0 and out[0].startswith("arm") and captured.err == ""  # --quiet: no progress bar
    result = json.loads(out[-1])
    assert [row["label"] for row in result["rows"]] == ["γ = 0", "γ = 0.5", "γ = 1"]
    assert [row["ratio"] for row in result["rows"]] == [0.0, 0.5, 1.0]
    assert result["steps"] == 6 and all(row["seeds"] == 2 for row in result["rows"])
    assert result["status"] == "finished"
    run_dir = Path(result["run_dir"])
    assert run_dir.parent == tmp_path and run_dir.name == result["id"] and "-three-ratios-" in run_dir.name
    assert {"compare.json", "config.json", "run.json", METRICS_FILE, CHECKPOINT_FILE} <= {
        path.name for path in run_dir.iterdir()}
    assert [saved.label for saved in load_checkpoint(run_dir / CHECKPOINT_FILE).models] == [
        "γ = 0, seed 0", "γ = 0, seed 1", "γ = 0.5, seed 0", "γ = 0.5, seed 1", "γ = 1, seed 0", "γ = 1, seed 1"]
    rows = read_metrics(run_dir)
    last = {row[MODEL_COLUMN]: row for row in rows if row["step"] == 6}
    assert sorted(last) == list(range(6))
    assert last[2]["val_fr_exact"] == pytest.approx(  # the table's γ = 0.5 row is the mean of its two seeds
        2 * result["rows"][1]["val_fr_exact"] - last[3]["val_fr_exact"])


def test_cli_progress_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--ratios", "0,1", "--hidden", "8", "--emb", "4", "--steps", "4", "--val-size", "16",
                 "--batch-size", "8", "--runs-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "4/4 steps" in captured.err and "/4 steps" not in captured.out


def test_cli_rejects_bad_ratios_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--ratios", "0,2", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ratio '2' is not allowed" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written for a refused comparison


def test_a_loaded_comparison_keeps_exact_match_by_length(tmp_path: Path) -> None:
    engine = CompareEngine(CompareConfig.build(TINY, [0.0, 1.0]))
    before = engine.run_to_end()
    assert all(before.exact_by_length)
    engine.save(tmp_path)
    assert CompareEngine.load(tmp_path).snapshot().exact_by_length == before.exact_by_length


def _timed(label: str, fr: float, tf_tokens: float, fr_tokens: float, reached: float | None, peak: float,
           peak_step: int, seeds: int = 1, spread: float = 0.0) -> dict:
    return _row(label, fr, tf_tokens, fr_tokens, reached) | {"seeds": seeds, "gap_peak": peak,
                                                             "gap_peak_step": peak_step, "fr_exact_spread": spread}


COMPARISON_READING = (
    "One seed cannot tell a real difference from luck: γ = 0 leads γ = 1 by 10.0 points, which another seed could "
    "reverse; run 2 or 3 seeds to see the spread. After 500 steps, γ = 0 gets the most sequences exactly right on its "
    "own: 80.0% free-running exact match, against 70.0% for γ = 1. The exposure-bias gap (teacher-forced minus "
    "free-running token accuracy) is widest for γ = 1 (20.0 points: 99.0% of tokens right when fed the true previous "
    "tokens, 79.0% on its own) and narrowest for γ = 0 (2.0 points). In validation loss, free-running is 3.0x the "
    "teacher-forced loss for γ = 1 and 1.2x for γ = 0. γ = 1 first reached 90% free-running exact match (step 200); 2 "
    "of 2 reached it. The trade-off: γ = 1 learns fastest (it reached 90% first (step 200)) and pays with the widest "
    "gap (20.0 points). Feeding the true previous token makes every training step an easy, well-aimed lesson, so the "
    "model learns fast; but it never practises continuing from its own mistakes, and that shows as a gap between "
    "teacher-forced and free-running accuracy (exposure bias). Over time, the gap of γ = 1 peaked at 30.0 points at "
    "step 300 and ends at 20.0 points at step 500: it has narrowed since.")


def test_reading_explains_the_trade_off_and_the_gap_over_time() -> None:
    table = [_timed("γ = 0", 0.80, 0.90, 0.88, 450.0, 0.04, 100), _timed("γ = 1", 0.70, 0.99, 0.79, 200.0, 0.30, 300)]
    assert comparison_reading(table) == COMPARISON_READING  # the one test of a comparison reading's words
    read = read_table(table)
    assert (read.leader, read.within_noise, read.fastest, read.fastest_has_widest_gap) == ("γ = 0", None, "γ = 1", True)
    assert read.gap_trend is GapTrend.NARROWED  # peaked at 30 points, ends at 20
    noisy = read_table([_timed("a", 0.80, 0.9, 0.8, None, 0.1, 100, seeds=3, spread=0.05),
                        _timed("b", 0.75, 0.9, 0.8, None, 0.1, 100, seeds=3, spread=0.02)])
    assert (noisy.leader, noisy.runner_up, noisy.within_noise) == ("a", "b", True)
    assert noisy.gap_trend is GapTrend.AS_WIDE and noisy.reached_target == 0
    closed = read_table([_timed("a", 0.80, 0.9, 0.88, None, 0.1, 100, seeds=3), _timed("b", 0.5, 0.9, 0.8, None,
                                                                                        0.1, 100, seeds=3)])
    assert (closed.within_noise, closed.gap_trend) == (False, GapTrend.CLOSED)
