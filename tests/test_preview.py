"""The first ten seconds: the task preview, chance levels, the parameter count and the model diagram."""

from __future__ import annotations

import math

import numpy as np
import pytest

from playground.core.config import TrainConfig
from playground.inspection.preview import parameter_counts, task_preview
from playground.inspection.states import best_by_free_running, informative_units
from playground.plots.curves import accuracy_figure, group_changes, loss_figure
from playground.plots.diagram import DiagramSizes, model_diagram
from playground.training.trainer import build_model


@pytest.mark.parametrize("task", ["reverse", "addition", "number_words", "count"])
@pytest.mark.parametrize("layers", [1, 2])
def test_parameter_count_matches_a_built_model(task: str, layers: int) -> None:
    config = TrainConfig(task=task, num_layers=layers, hidden_dim=24, emb_dim=8)
    preview = task_preview(config)
    model = build_model(config, preview.src_vocab_size, preview.tgt_vocab_size)
    counted = parameter_counts(config, preview.src_vocab_size, preview.tgt_vocab_size)
    assert sum(counted.values()) == sum(p.numel() for p in model.parameters())


def test_preview_shows_examples_vocabulary_and_chance() -> None:
    preview = task_preview(TrainConfig(task="reverse", alphabet_size=5, min_len=2, max_len=4))
    assert len(preview.examples) == 4
    assert all(target == source[::-1] for source, target in preview.examples)
    assert preview.src_symbols == list("abcde") and preview.src_lengths == (2, 4)
    assert preview.chance_accuracy == pytest.approx(1 / 9) and preview.chance_loss == pytest.approx(math.log(9))
    assert task_preview(TrainConfig(task="reverse", seed=1)).examples != task_preview(TrainConfig()).examples


def test_diagram_follows_the_settings() -> None:
    def dot(hidden: int, gamma: float) -> str:
        config = TrainConfig(hidden_dim=hidden)
        preview = task_preview(config)
        parts = parameter_counts(config, preview.src_vocab_size, preview.tgt_vocab_size)
        return model_diagram(DiagramSizes(preview.src_vocab_size, preview.tgt_vocab_size, config.emb_dim, hidden,
                                          1, parts), gamma)
    small, large = dot(16, 0.5), dot(64, 0.25)
    assert "hidden 16" in small and "γ = 0.50" in small and "true previous" in small and "own prediction" in small
    assert "hidden 64" in large and "γ = 0.25" in large
    assert small.split("label=\"")[1] != large.split("label=\"")[1]  # the parameter count changed


def test_empty_charts_have_real_axes_and_say_when() -> None:
    accuracy = accuracy_figure([], total_steps=2000, first_evaluation=100)
    assert list(accuracy.layout.yaxis.range) == [0, 101] and list(accuracy.layout.xaxis.range) == [0, 2000]
    assert "every 100 steps" in accuracy.layout.annotations[-1].text.replace("<br>", " ")
    loss = loss_figure([], total_steps=500, chance_loss=2.6)
    assert loss.layout.yaxis.range[0] == 0 and list(loss.layout.xaxis.range) == [0, 500]


def test_close_changes_share_one_label() -> None:
    groups = group_changes([(100, "lr 0.01"), (110, "γ 0.5"), (900, "lr 0.001")], span=1000)
    assert [step for step, _ in groups] == [100, 900]
    assert groups[0][1] == ["step 100: lr 0.01", "step 110: γ 0.5"]


def test_informative_units_and_best_run() -> None:
    steps = np.arange(6, dtype=float)[:, None]
    values = np.hstack([np.zeros((6, 1)), steps / 6, np.sin(steps) * 3, np.full((6, 1), 0.1)])
    marked = informative_units(values, count=1)
    assert marked == {2: "varies most", 1: "tracks position"}
    header = "model,step,val_fr_exact\n"
    assert best_by_free_running({"a": (header + "0,10,0.9\n0,20,0.5\n").encode(),
                                 "b": (header + "0,20,0.7\n1,20,0.6\n").encode(), "c": header.encode()}) == "b"
