"""The batched K-model engine equals K single-model Trainers, step for step."""

from __future__ import annotations

import copy

import pytest
import torch

from playground.core.config import ConfigError, TrainConfig
from playground.core.tasks import TaskError, parse_custom_csv
from playground.training.stacked import ForwardPath, StackedTrainer, choose_path, choose_workers, model_losses
from playground.training.trainer import Trainer

SMALL = TrainConfig(emb_dim=8, hidden_dim=16, batch_size=16, val_size=32, max_len=6, steps=5, eval_every=5)
STEPS = 4


@pytest.mark.parametrize(("path", "workers"), [("stacked", 1), ("each", 1), ("stacked", 2), ("each", 3)])
@pytest.mark.parametrize("changes", [{}, {"coin": "token"}, {"num_layers": 2, "optimizer": "sgd", "grad_clip": 0.05}])
def test_batched_step_equals_single_models(changes: dict, path: ForwardPath, workers: int) -> None:
    torch.manual_seed(0)
    base = SMALL.replace(**changes)
    configs = [base.replace(teacher_forcing_ratio=ratio) for ratio in (0.0, 0.5, 1.0)]
    configs.append(base.replace(schedule="linear", teacher_forcing_ratio=1.0, decay_steps=3))
    batched = StackedTrainer(configs, path=path, workers=workers)
    assert len(batched.groups) == workers
    singles = [Trainer(config) for config in configs]
    for _ in range(STEPS):
        losses = batched.train_step().losses
        for trainer, loss in zip(singles, losses, strict=True):
            assert loss == pytest.approx(trainer.train_step().loss, abs=1e-5)
    for k, trainer in enumerate(singles):
        for name, value in batched.model_state(k).items():
            torch.testing.assert_close(value, trainer.model.state_dict()[name], atol=1e-5, rtol=1e-4)
    for evaluation, trainer in zip(batched.evaluate(), singles, strict=True):
        expected = trainer.evaluate()
        for name, value in expected.metrics.items():
            assert evaluation.metrics[name] == pytest.approx(value, abs=1e-4), name
        assert evaluation.exact_by_length == pytest.approx(expected.exact_by_length, abs=1e-6)


def test_seeds_give_their_own_initial_weights() -> None:
    batched = StackedTrainer([SMALL, SMALL.replace(seed=1)])
    single = Trainer(SMALL.replace(seed=1))
    for name, value in batched.model_state(1).items():
        torch.testing.assert_close(value, single.model.state_dict()[name])
    first, second = (batched.model_state(k)["decoder.fc_out.weight"] for k in (0, 1))
    assert not torch.equal(first, second)


def test_models_must_share_everything_but_forcing_and_seed() -> None:
    with pytest.raises(ConfigError, match="hidden_dim differs"):
        StackedTrainer([SMALL, SMALL.replace(hidden_dim=8)])
    with pytest.raises(ConfigError, match="at least one"):
        StackedTrainer([])


@pytest.mark.parametrize(("saved_by", "resumed_by"), [(1, 1), (1, 2), (2, 1)])
def test_restore_with_resume_state_continues_exactly_as_if_never_interrupted(saved_by: int, resumed_by: int) -> None:
    """Whatever the number of parallel groups on either side (a run saved on one machine resumes on another); the
    forward path is fixed, as two paths agree only to float rounding."""
    configs = [SMALL.replace(teacher_forcing_ratio=ratio) for ratio in (0.0, 1.0)]
    uninterrupted = StackedTrainer(configs, path="each", workers=saved_by)
    for _ in range(STEPS):
        uninterrupted.train_step()
    states = [uninterrupted.model_state(k) for k in range(2)]
    resume = copy.deepcopy(uninterrupted.resume_state())
    expected = [uninterrupted.train_step().losses for _ in range(STEPS)]
    torch.manual_seed(321)  # the global RNG must not matter
    resumed = StackedTrainer(configs, path="each", workers=resumed_by)
    resumed.restore(states, STEPS, resume)
    assert resumed.step == STEPS
    assert [resumed.train_step().losses for _ in range(STEPS)] == expected
    for k in range(2):
        final, again = uninterrupted.model_state(k), resumed.model_state(k)
        assert all(torch.equal(final[name], again[name]) for name in final)


def test_restore_refuses_another_number_of_models() -> None:
    batched = StackedTrainer([SMALL, SMALL.replace(seed=1)])
    with pytest.raises(ValueError, match="holds 1 models, this comparison trains 2"):
        batched.restore([batched.model_state(0)], 3, None)
    batched.restore([batched.model_state(1), batched.model_state(0)], 3, None)  # without resume: weights and step
    assert batched.step == 3
    assert torch.equal(batched.model_state(0)["decoder.fc_out.weight"],
                       Trainer(SMALL.replace(seed=1)).model.state_dict()["decoder.fc_out.weight"])


def test_custom_pairs_train_batched_like_one_model() -> None:
    pairs = parse_custom_csv("".join(f"{w},{w[::-1]}\n" for w in
                                     ["ab", "bc", "cd", "de", "ef", "fa", "ace", "bdf", "ca", "eb"]).encode())
    configs = [SMALL.replace(task="custom", custom_data=pairs.fingerprint, teacher_forcing_ratio=ratio)
               for ratio in (0.0, 1.0)]
    with pytest.raises(TaskError, match="none were given"):
        StackedTrainer(configs)
    batched = StackedTrainer(configs, pairs)
    single = Trainer(configs[1], pairs)
    for _ in range(STEPS):
        assert batched.train_step().losses[1] == pytest.approx(single.train_step().loss, abs=1e-5)


@pytest.mark.parametrize("coin", ["step", "token"])
def test_both_forward_paths_give_the_same_logits_and_losses(coin: str) -> None:
    configs = [SMALL.replace(coin=coin, num_layers=2, teacher_forcing_ratio=ratio) for ratio in (0.0, 0.3, 1.0)]
    stacked, each = StackedTrainer(configs, path="stacked"), StackedTrainer(configs, path="each")
    batch = next(stacked.batches)
    teacher = torch.rand(3, *batch.tgt.shape if coin == "token" else batch.tgt.shape[1:]) < 0.5
    teacher[2] = True
    logits = [engine.forward(batch.src, batch.tgt, teacher, training=False) for engine in (stacked, each)]
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(model_losses(logits[0], batch.tgt), model_losses(logits[1], batch.tgt))


def test_the_path_follows_the_size_and_threads_stay_off_where_they_would_change_numbers() -> None:
    assert choose_path(SMALL, 5) == "stacked"
    assert choose_path(SMALL.replace(hidden_dim=512), 5) == "each"
    assert choose_path(SMALL, 1) == "each"
    wide = SMALL.replace(hidden_dim=128)
    assert choose_workers(wide.replace(dropout=0.1), 5) == 1  # dropout draws from torch's shared generator
    assert choose_workers(wide, 1) == 1
    assert choose_workers(SMALL, 5) == 1  # a tiny model is GIL-bound: one stacked group
