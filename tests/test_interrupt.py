"""A stop that arrives in the middle of a step undoes that step: training then goes on exactly as if the stop had
never come (Stop lands within about a second at any size, while a step at the largest size takes minutes)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from playground.core import interrupt
from playground.core.config import TrainConfig
from playground.model import step_hook
from playground.runs.registry import RunRegistry
from playground.runs.train_engine import TrainingEngine
from playground.training.run_folder import RunStatus
from playground.training.stacked import StackedTrainer
from playground.training.trainer import Trainer

SMALL = TrainConfig(hidden_dim=16, emb_dim=8, batch_size=8, min_len=4, max_len=7, val_size=16, steps=50)


class StopAt(threading.Event):
    """A stop request that arrives at the `at`-th check (None: never); counts the checks either way."""

    def __init__(self, at: int | None) -> None:
        super().__init__()
        self.at, self.checks = at, 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.at is not None and self.checks >= self.at


def checks_in_one_step(trainer: Trainer | StackedTrainer) -> int:
    counter = StopAt(None)
    with interrupt.requests(counter):
        trainer.train_step()
    return counter.checks


@pytest.fixture
def chunked_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoder reads one time step per LSTM call, as at the largest sizes: a check between each."""
    monkeypatch.setattr(step_hook, "CHUNK_FLOPS", 1.0)


@pytest.mark.parametrize("settings", [{}, {"teacher_forcing_ratio": 1.0}, {"coin": "token", "num_layers": 2},
                                      {"dropout": 0.3, "num_layers": 2}])
@pytest.mark.parametrize("where", [0.2, 0.9])  # early in the forward, late in the backward
@pytest.mark.usefixtures("chunked_encoder")
def test_an_interrupted_step_is_undone_and_training_goes_on_as_if_never_stopped(settings: dict,
                                                                                where: float) -> None:
    config = SMALL.replace(**settings)
    stopped, never = Trainer(config), Trainer(config)
    checks = checks_in_one_step(Trainer(config))
    torch.manual_seed(5)  # dropout's draws come from torch's generator: both trainers start from the same state
    for _ in range(2):
        stopped.train_step()
    weights = {name: value.clone() for name, value in stopped.model.state_dict().items()}
    with pytest.raises(interrupt.Interrupted), interrupt.requests(StopAt(max(1, int(where * checks)))):
        stopped.train_step()
    assert stopped.step == 2 and all(p.grad is None for p in stopped.model.parameters())
    assert all(torch.equal(weights[name], value) for name, value in stopped.model.state_dict().items())
    losses = [stopped.train_step().loss for _ in range(3)]
    torch.manual_seed(5)
    expected = [never.train_step().loss for _ in range(5)][2:]
    assert losses == expected
    for name, value in never.model.state_dict().items():
        assert torch.equal(stopped.model.state_dict()[name], value), name


@pytest.mark.parametrize(("path", "workers"), [("stacked", 1), ("each", 2)])
@pytest.mark.usefixtures("chunked_encoder")
def test_an_interrupted_k_model_step_is_undone_in_every_group(path: str, workers: int) -> None:
    configs = [SMALL.replace(teacher_forcing_ratio=ratio) for ratio in (0.0, 0.5, 1.0)]
    stopped, never = (StackedTrainer(configs, path=path, workers=workers) for _ in range(2))
    stopped.train_step()
    checks = checks_in_one_step(StackedTrainer(configs, path=path, workers=workers))
    with pytest.raises(interrupt.Interrupted), interrupt.requests(StopAt(checks // 2)):
        stopped.train_step()
    assert stopped.step == 1
    losses = [stopped.train_step().losses for _ in range(2)]
    assert losses == [never.train_step().losses for _ in range(3)][1:]
    assert all(torch.equal(stopped.model_state(k)[name], value) for k in range(3)
               for name, value in never.model_state(k).items())


def test_without_a_request_or_outside_a_step_nothing_is_interrupted() -> None:
    trainer = Trainer(SMALL)
    trainer.train_step()  # no request: the checks pass
    with interrupt.requests(StopAt(1)):
        trainer.evaluate()  # an evaluation is not undoable: it runs to its end
        assert trainer.sample_predictions(2)


@pytest.mark.usefixtures("chunked_encoder")
def test_stop_in_the_middle_of_a_step_ends_the_run_at_the_last_whole_step_and_it_resumes_exactly(
        tmp_path: Path) -> None:
    config = SMALL.replace(steps=12, eval_every=4)
    registry, engine, launched = RunRegistry(tmp_path), TrainingEngine.create(config), []

    def stop_in_step_6(*_: object) -> None:
        if engine.trainer.step == 5:
            launched[0].stop()  # from the page, while step 6's encoder is between two of its chunks

    engine.trainer.model.encoder.lstm.register_forward_hook(stop_in_step_6)
    launched.append(run := registry.launch("stopped", engine, config))
    run.join(60)
    assert (run.status, run.step) == (RunStatus.STOPPED, 5)
    reopened = RunRegistry(tmp_path).get(run.id)  # from its files, as after a restart
    reopened.train_on(12)
    reopened.join(60)
    never = registry.launch("never", TrainingEngine.create(config), config)
    never.join(60)
    assert reopened.status == never.status == RunStatus.FINISHED
    drop = ("seconds",)
    rows = [{k: v for k, v in row.items() if k not in drop} for row in reopened.snapshot().rows]
    assert rows == [{k: v for k, v in row.items() if k not in drop} for row in never.snapshot().rows]
