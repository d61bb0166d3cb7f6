"""Trainer: it really learns, is repeatable, stops cleanly on NaN, and reports sensible metrics."""

import copy
import math
from pathlib import Path

import pytest
import torch

from playground.core.config import ConfigError, TrainConfig
from playground.core.tasks import CustomPairs, TaskError, load_custom_csv
from playground.runs.train_engine import TrainingEngine
from playground.training import trainer as train
from playground.training.metrics import LENGTH_COLUMN, DivergedError
from playground.training.resume import draw_coins
from playground.training.trainer import Trainer, build_task

TINY = TrainConfig(task="reverse", min_len=2, max_len=5, alphabet_size=6, emb_dim=8, hidden_dim=16,
                   batch_size=16, val_size=32, steps=20, eval_every=10, device="cpu")
METRICS = {f"{prefix}_{name}" for prefix in ("val_tf", "val_fr") for name in ("loss", "ppl", "token_acc", "exact")}


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in trainer.model.state_dict().items()}


@pytest.mark.slow
def test_learns_reverse_free_running() -> None:
    """A seeded 300-step run on CPU reaches ~0.98-1.0 free-running exact match; 0.9 leaves a margin."""
    config = TrainConfig(task="reverse", min_len=2, max_len=5, alphabet_size=6, emb_dim=16, hidden_dim=64,
                         batch_size=64, lr=0.01, teacher_forcing_ratio=0.5, steps=300, eval_every=100,
                         val_size=200, seed=0, device="cpu")
    trainer = Trainer(config)
    first = trainer.evaluate().metrics["val_fr_exact"]
    evaluation = None
    while trainer.step < config.steps:
        _, evaluation = trainer.logged_step()
    assert first < 0.1
    assert evaluation is not None and trainer.step == 300
    assert evaluation.metrics["val_fr_exact"] >= 0.9
    assert evaluation.metrics["val_tf_exact"] >= 0.9
    rows = trainer.sample_predictions(8)
    assert sum(row["correct"] for row in rows) >= 6
    for row, (source, target) in zip(rows, trainer.data.val_pairs, strict=False):
        assert row["source"] == "".join(source) and row["target"] == "".join(target) == row["source"][::-1]
        assert row["correct"] == (row["prediction"] == row["target"])


def run_losses(config: TrainConfig, steps: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    trainer = Trainer(config)
    losses = [trainer.train_step().loss for _ in range(steps)]
    return losses, weights(trainer)


@pytest.mark.parametrize("coin", ["step", "token"])
def test_same_seed_same_losses(coin: str) -> None:
    config = TINY.replace(coin=coin, teacher_forcing_ratio=0.5)
    losses, state = run_losses(config, 12)
    torch.manual_seed(123)  # the global RNG must not matter
    again, state_again = run_losses(config, 12)
    assert losses == again
    assert all(torch.equal(state[name], state_again[name]) for name in state)
    assert run_losses(config.replace(seed=1), 12)[0] != losses


def test_nan_loss_raises_and_keeps_the_last_finite_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(TINY)
    for _ in range(3):
        trainer.train_step()
    before = weights(trainer)
    real_loss = train.sequence_loss
    monkeypatch.setattr(train, "sequence_loss", lambda logits, tgt: real_loss(logits, tgt) * math.nan)
    with pytest.raises(DivergedError, match="the training loss became nan at step 4"):
        trainer.train_step()
    assert trainer.step == 3
    after = weights(trainer)
    assert all(torch.equal(before[name], after[name]) and after[name].isfinite().all() for name in after)


def test_nan_gradients_with_a_finite_loss_leave_the_weights_unchanged() -> None:
    trainer = Trainer(TINY)
    trainer.train_step()
    before = weights(trainer)
    trainer.model.decoder.fc_out.bias.register_hook(lambda grad: grad * math.inf)
    with pytest.raises(DivergedError, match=r"the gradient norm became (nan|inf) at step 2"):
        trainer.train_step()
    assert trainer.step == 1
    after = weights(trainer)
    assert all(torch.equal(before[name], after[name]) and after[name].isfinite().all() for name in after)


def test_set_live_changes_lr_and_ratio_from_the_next_step() -> None:
    trainer, forced = (Trainer(TINY.replace(teacher_forcing_ratio=1.0, lr=0.005)) for _ in range(2))
    first = trainer.train_step()
    assert forced.train_step().loss == first.loss  # twins until the ratio moves
    trainer.set_live(lr=0.02, teacher_forcing_ratio=0.25)
    forced.set_live(lr=0.02)
    second = trainer.train_step()
    assert (first.lr, first.teacher_forcing_ratio) == (0.005, 1.0)
    assert (second.lr, second.teacher_forcing_ratio) == (0.02, 0.25)
    assert second.loss != forced.train_step().loss  # the model was fed its own tokens at the new ratio
    assert [group["lr"] for group in trainer.optimizer.param_groups] == [0.02]
    trainer.set_live(teacher_forcing_ratio=0.75)  # lr untouched
    assert (trainer.config.lr, trainer.teacher_forcing_ratio()) == (0.02, 0.75)
    with pytest.raises(ConfigError, match=r"lr = 5\.0 is not allowed"):
        trainer.set_live(lr=5.0)
    assert trainer.config.lr == 0.02


def test_set_live_ratio_moves_a_schedules_start() -> None:
    trainer = Trainer(TINY.replace(schedule="linear", teacher_forcing_ratio=1.0, tf_end=0.0, decay_steps=10))
    for _ in range(5):
        trainer.train_step()
    assert trainer.teacher_forcing_ratio() == pytest.approx(0.5)
    trainer.set_live(teacher_forcing_ratio=0.6)
    assert trainer.train_step().teacher_forcing_ratio == pytest.approx(0.3)


def headline(metrics: dict[str, float]) -> set[str]:
    """The metrics' names but exact match at each size."""
    return {name for name in metrics if not LENGTH_COLUMN.fullmatch(name)}


def test_evaluate_metrics_and_exact_by_length() -> None:
    trainer = Trainer(TINY)
    for _ in range(5):
        trainer.train_step()
    evaluation = trainer.evaluate()
    metrics = evaluation.metrics
    assert headline(metrics) == METRICS
    for prefix in ("val_tf", "val_fr"):
        assert metrics[f"{prefix}_loss"] > 0
        assert metrics[f"{prefix}_ppl"] == pytest.approx(math.exp(metrics[f"{prefix}_loss"]))
        assert 0 <= metrics[f"{prefix}_exact"] <= metrics[f"{prefix}_token_acc"] <= 1
    lengths = [len(target) for _, target in trainer.data.val_pairs]
    assert sorted(evaluation.exact_by_length) == sorted(set(lengths)) and set(lengths) <= set(range(2, 6))
    weighted = sum(evaluation.exact_by_length[n] * lengths.count(n) for n in set(lengths)) / len(lengths)
    assert weighted == pytest.approx(metrics["val_fr_exact"])
    assert trainer.model.training  # evaluation puts the model back into training mode


def test_logged_step_evaluates_every_eval_every_and_at_the_end() -> None:
    trainer = Trainer(TINY.replace(steps=25, eval_every=10))
    evaluated = []
    while trainer.step < 25:
        row, evaluation = trainer.logged_step()
        assert {"step", "train_loss", "teacher_forcing_ratio", "lr"} <= set(row)
        if evaluation:
            evaluated.append(row["step"])
            assert set(row) >= METRICS
        else:
            assert not METRICS & set(row)
    assert evaluated == [10, 20, 25]


def test_draw_coins_shape_follows_the_coin_mode() -> None:
    batch = next(Trainer(TINY).batches)
    generator = torch.Generator().manual_seed(5)
    assert draw_coins(generator, "step", tuple(batch.tgt.shape)).shape == (batch.tgt.shape[1],)
    assert draw_coins(generator, "token", tuple(batch.tgt.shape)).shape == tuple(batch.tgt.shape)
    draws = []
    for global_seed in (1, 99):  # the run's own generator decides the coins, whatever the global RNG
        torch.manual_seed(global_seed)
        draws.append(draw_coins(torch.Generator().manual_seed(5), "token", (4, 7)))
    assert torch.equal(*draws) and ((draws[0] >= 0) & (draws[0] < 1)).all()


def test_coins_are_drawn_at_every_ratio_so_the_stream_never_shifts() -> None:
    """A ratio of 1 or 0 needs no coin, but still draws one: otherwise a live change would shift later coins."""
    forced, free = Trainer(TINY.replace(teacher_forcing_ratio=1.0)), Trainer(TINY.replace(teacher_forcing_ratio=0.0))
    for _ in range(3):
        forced.train_step()
        free.train_step()
    assert torch.equal(forced.coins.get_state(), free.coins.get_state())


def write_pairs(path: Path) -> Path:
    path.write_text("source,target\n" + "".join(f"{w},{w.upper()}\n" for w in
                                                ["ab", "bc", "cd", "de", "ef", "fa", "ace", "bdf", "ca", "eb"]))
    return path


def test_custom_csv_task_trains(tmp_path: Path) -> None:
    pairs = load_custom_csv(write_pairs(tmp_path / "pairs.csv"))
    assert len(pairs.pairs) == 10 and pairs.pairs[0] == (["a", "b"], ["A", "B"])
    trainer = Trainer(TINY.replace(task="custom", custom_data=pairs.fingerprint), pairs)
    assert trainer.task.name == "custom" and trainer.task.tgt_vocab.itos[4:] == sorted("ABCDEF")
    assert trainer.train_step().loss > 0
    assert headline(trainer.evaluate().metrics) == METRICS


def test_missing_custom_csv_is_a_task_error(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match=r"cannot read the CSV file .*missing\.csv"):
        load_custom_csv(tmp_path / "missing.csv")


def test_custom_task_needs_the_pairs_its_config_names(tmp_path: Path) -> None:
    pairs = load_custom_csv(write_pairs(tmp_path / "pairs.csv"))
    config = TINY.replace(task="custom", custom_data=pairs.fingerprint)
    with pytest.raises(TaskError, match="none were given"):
        Trainer(config)
    other = CustomPairs(pairs.pairs[1:])
    with pytest.raises(TaskError, match="not the ones this run was trained on"):
        build_task(config, other)
    with pytest.raises(TaskError, match="not the ones this run was trained on"):
        build_task(config.replace(custom_tokenization="space"), pairs)
    assert build_task(TINY, pairs).name == "reverse"  # a generated task ignores pairs


def test_restore_with_resume_state_continues_exactly_as_if_never_interrupted() -> None:
    config = TINY.replace(teacher_forcing_ratio=0.5, coin="token")
    uninterrupted = Trainer(config)
    for _ in range(4):
        uninterrupted.train_step()
    saved_weights, saved_resume = weights(uninterrupted), copy.deepcopy(uninterrupted.resume_state())
    expected = [uninterrupted.train_step().loss for _ in range(4)]
    torch.manual_seed(321)  # the global RNG must not matter
    resumed = Trainer(config)
    resumed.restore(saved_weights, 4, saved_resume)
    assert resumed.step == 4
    assert [resumed.train_step().loss for _ in range(4)] == expected
    final, again = weights(uninterrupted), weights(resumed)
    assert all(torch.equal(final[name], again[name]) for name in final)


def test_restore_without_resume_state_sets_weights_and_step_only() -> None:
    trained = Trainer(TINY)
    for _ in range(3):
        trained.train_step()
    fresh = Trainer(TINY)
    coins_before = fresh.coins.get_state()
    fresh.restore(weights(trained), 3, None)
    assert fresh.step == 3 and torch.equal(fresh.coins.get_state(), coins_before)
    assert all(torch.equal(value, weights(trained)[name]) for name, value in weights(fresh).items())
    assert fresh.evaluate().metrics == trained.evaluate().metrics
    with pytest.raises(ValueError, match="does not fit this run"):
        fresh.restore(weights(trained), 3, {"optimizer": {}, "coins": None, "data": None})


def test_trained_model_describes_the_model_as_it_is() -> None:
    trainer = Trainer(TINY)
    trainer.train_step()
    trained = trainer.trained_model("mine")
    assert (trained.label, trained.step, trained.config) == ("mine", 1, TINY)
    assert trained.model is trainer.model and trained.task is trainer.task
    assert trained.val_pairs == trainer.data.val_pairs


@pytest.mark.parametrize("steps", [1, 3])
def test_step_zero_row_scores_the_initial_weights_after_the_first_step(steps: int) -> None:
    config = TrainConfig(emb_dim=8, hidden_dim=16, batch_size=16, val_size=32, max_len=5, steps=steps, eval_every=50)
    engine = TrainingEngine.create(config)
    initial = Trainer(config).evaluate().metrics
    engine.advance()
    assert [row["step"] for row in engine.rows] == ([0, 1] if steps == 1 else [1])  # the first point comes first
    while not engine.finished:
        engine.advance()
    assert [row["step"] for row in engine.rows] == list(range(steps + 1))
    assert engine.rows[0]["seconds"] == 0.0
    for name, value in initial.items():
        assert engine.rows[0][name] == pytest.approx(value, abs=1e-6), name
