"""The cost model counts what the model really has, grows with what makes a step dearer, and gates starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playground.cli import main
from playground.core.config import TrainConfig
from playground.runs.background import RunError
from playground.runs.protocol import RunPlan
from playground.runs.registry import RunRegistry
from playground.training.cost import Calibration, estimate, parameter_count
from playground.training.trainer import Trainer, build_task

FIXED = Calibration(flops_per_second=1e11, seconds_per_token_layer=1e-4)
LARGEST = TrainConfig(hidden_dim=1024, num_layers=4, batch_size=1024, min_len=50, max_len=50, emb_dim=512)


@pytest.mark.parametrize("config", [TrainConfig(), TrainConfig(task="addition", num_layers=3, emb_dim=7),
                                    TrainConfig(task="number_words", hidden_dim=33)])
def test_the_parameter_count_is_the_model_s_own(config: TrainConfig) -> None:
    model = Trainer(config.replace(val_size=16)).model
    task = build_task(config)
    assert parameter_count(config, len(task.src_vocab), len(task.tgt_vocab)) == sum(
        p.numel() for p in model.parameters())


@pytest.mark.parametrize("change", [{"hidden_dim": 256}, {"batch_size": 128}, {"max_len": 16}, {"num_layers": 2}])
def test_a_larger_setting_costs_more(change: dict) -> None:
    def cost(config: TrainConfig):
        return estimate(config, build_task(config), FIXED)

    small, large = cost(TrainConfig()), cost(TrainConfig().replace(**change))
    assert large.flops_per_step > small.flops_per_step
    assert large.peak_memory_bytes > small.peak_memory_bytes
    assert large.seconds_per_step > small.seconds_per_step


def test_the_largest_size_matches_its_measured_memory_within_2x() -> None:
    """Measured on a 2-core, 24 GB machine: 17.2 GB above an idle process for a step and an evaluation of the
    largest allowed settings (the encoder in one-step chunks, `interrupt`; 13.6 GB in one call)."""
    cost = estimate(LARGEST, build_task(LARGEST), FIXED)
    assert 17.2 / 2 <= cost.peak_memory_bytes / 1024**3 <= 17.2 * 2


def test_a_start_past_the_memory_budget_is_refused_with_its_numbers(tmp_path: Path) -> None:
    config = TrainConfig(hidden_dim=16, emb_dim=8, steps=100_000, val_size=32)
    need = estimate(config, build_task(config)).peak_memory_bytes
    registry = RunRegistry(tmp_path / "runs", memory_budget=need * 1.5)
    first = registry.launch("first", RunPlan.train(config))
    try:
        with pytest.raises(RunError, match=r"needs about .* together more than the budget of"):
            registry.launch("second", RunPlan.train(config))
        assert [summary.name for summary in registry.list()] == ["first"]
    finally:
        first.stop()
        first.join(30)
    registry.launch("third", RunPlan.train(config.replace(steps=2))).join(30)


def test_estimate_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "--hidden", "64", "--json"]) == 0
    values = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"flops_per_step", "peak_memory_bytes", "seconds_per_step"} <= values.keys()
    assert all(values[key] > 0 for key in ("flops_per_step", "peak_memory_bytes", "seconds_per_step"))
