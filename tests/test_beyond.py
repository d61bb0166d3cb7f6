"""Lengths beyond training: the setting, validation spread over every size, and the figures by size."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from playground import cli
from playground.core.config import ConfigError, TrainConfig
from playground.core.tasks import EOS_ID, SOS_ID, TASKS
from playground.model.seq2seq import Seq2Seq
from playground.training.checkpoints import load_checkpoint
from playground.training.metrics import Metric, by_length
from playground.training.run_folder import CHECKPOINT_FILE, read_metrics
from playground.training.trainer import Trainer
from tests.test_cli import last_json

SMALL = TrainConfig(emb_dim=8, hidden_dim=16, batch_size=16, val_size=120, steps=5, eval_every=5)


@pytest.mark.parametrize(("changes", "allowed"), [
    ({}, True), ({"test_max_len": 8}, True), ({"test_max_len": 16}, True), ({"test_max_len": 7}, False),
    ({"test_max_len": 17}, False), ({"max_len": 30, "test_max_len": 50}, True),
    ({"max_len": 30, "test_max_len": 51}, False), ({"test_max_digits": 6}, True), ({"test_max_digits": 7}, False),
    ({"test_max_digits": 2}, False), ({"max_digits": 6, "test_max_digits": 9}, True),
])
def test_the_tested_size_lies_between_the_training_size_and_twice_it(changes: dict, allowed: bool) -> None:
    if allowed:
        TrainConfig.from_dict(changes)
    else:
        with pytest.raises(ConfigError) as error:
            TrainConfig.from_dict(changes)
        assert {problem.fields[0] for problem in error.value.details} <= {"test_max_len", "test_max_digits"}


def test_by_default_a_run_tests_its_training_sizes_only() -> None:
    assert TrainConfig().size_range().beyond == range(9, 9)
    assert TrainConfig(test_max_len=12).size_range().beyond == range(9, 13)
    assert TrainConfig(task="addition", test_max_digits=5).size_range().beyond == range(4, 6)
    trainer = Trainer(SMALL)
    assert Metric.BEYOND_EXACT not in trainer.evaluate().metrics


def test_validation_spreads_over_every_length_and_training_stays_the_same() -> None:
    plain, longer = Trainer(SMALL), Trainer(SMALL.replace(test_max_len=12))
    counts = Counter(longer.data.sizes.tolist())
    assert sorted(counts) == list(range(3, 13)) and sum(counts.values()) == 120
    assert {counts[size] for size in range(9, 13)} == {12}  # 120 examples over 10 lengths
    assert sum(counts[size] for size in range(3, 9)) == 72
    assert longer.data.val_pairs[:72] == plain.data.val_pairs[:72]
    for _ in range(3):
        assert plain.train_step().loss == pytest.approx(longer.train_step().loss, abs=1e-6)
    assert not {tuple(src) for src, _ in longer.data.val_pairs} & {tuple(src) for src, _ in
                                                                     longer.data.training_pairs(2000)}


@pytest.mark.parametrize("task", ["addition", "number_words"])
def test_number_tasks_go_beyond_by_digits(task: str) -> None:
    trainer = Trainer(SMALL.replace(task=task, max_digits=2, test_max_digits=4))
    size_of = TASKS[task].size_of
    sizes = [size_of(*pair) for pair in trainer.data.val_pairs]
    assert sizes == trainer.data.sizes.tolist()
    assert Counter(sizes)[3] == Counter(sizes)[4] == 30 and max(sizes) == 4
    assert trainer.data.trained_largest == 2


def test_headline_figures_count_the_training_lengths_and_beyond_exact_the_rest() -> None:
    trainer = Trainer(SMALL.replace(test_max_len=10, hidden_dim=32))
    for _ in range(60):
        trainer.train_step()
    scored = trainer.evaluate()
    sizes = trainer.data.sizes.tolist()
    assert sorted(scored.exact_by_length) == sorted(scored.tf_exact_by_length) == list(range(3, 11))
    trained = [size for size in sizes if size <= 8]
    weighted = sum(scored.exact_by_length[size] for size in trained) / len(trained)
    assert scored.metrics[Metric.FR_EXACT] == pytest.approx(weighted, abs=1e-6)
    assert scored.metrics[Metric.BEYOND_EXACT] == pytest.approx(
        (scored.exact_by_length[9] + scored.exact_by_length[10]) / 2, abs=1e-6)
    assert by_length(scored.metrics) == scored.exact_by_length
    assert by_length(scored.metrics, "val_tf") == scored.tf_exact_by_length


@torch.inference_mode()
def _greedy_exact(model: Seq2Seq, sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A plain greedy decoder written from the model's contract (its named modules), for unpadded sources of one
    length: is each output, up to and including <eos>, the target."""
    encoder, decoder = model.encoder, model.decoder
    _, state = encoder.lstm(encoder.embedding(sources))
    token = torch.full((len(sources), 1), SOS_ID)
    outputs = []
    for _ in range(targets.shape[1]):
        step, state = decoder.lstm(decoder.embedding(token), state)
        token = decoder.fc_out(step).argmax(-1)
        outputs.append(token)
    return (torch.cat(outputs, 1) == targets).all(1)


def test_exact_by_length_beyond_training_agrees_with_an_independent_greedy_decoder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--task", "reverse", "--min-len", "3", "--max-len", "8", "--test-max-len", "12",
                     "--steps", "300", "--eval-every", "300", "--hidden", "64", "--runs-dir", str(tmp_path),
                     "--quiet", "--json"]) == 0
    summary = last_json(capsys.readouterr().out)
    reported = {int(size): value for size, value in summary["exact_by_length"].items()}
    assert sorted(reported) == list(range(3, 13))
    assert summary["beyond_exact"] == pytest.approx(sum(reported[size] for size in range(9, 13)) / 4)
    assert by_length(read_metrics(Path(summary["run_dir"]))[-1]) == pytest.approx(reported)
    loaded = load_checkpoint(Path(summary["run_dir"]) / CHECKPOINT_FILE)
    model, vocab = loaded.models[0].model.eval(), loaded.src_vocab
    rng, fresh = random.Random(12345), 400
    assert reported[9] > 0.05 and reported[12] < 0.95  # a spread the comparison can tell apart
    for size in range(9, 13):
        sources = [[rng.choice("abcdefghij") for _ in range(size)] for _ in range(fresh)]
        src = torch.tensor([vocab.encode(tokens) for tokens in sources])
        tgt = torch.tensor([[*loaded.tgt_vocab.encode(tokens[::-1]), EOS_ID] for tokens in sources])
        measured = _greedy_exact(model, src, tgt).float().mean().item()
        noise = math.sqrt(max(measured * (1 - measured), 0.02) * (1 / 50 + 1 / fresh))  # 500 rows over 10 lengths
        assert abs(reported[size] - measured) <= 3 * noise, (size, reported[size], measured)
