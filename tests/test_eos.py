"""eos = oracle: <eos> is neither taught nor scored, and free-running runs the target's own length."""

from __future__ import annotations

import pytest
import torch

from playground.core.config import ConfigError, TrainConfig
from playground.core.tasks import EOS_ID, PAD_ID
from playground.inspection.decoding import beam_search, greedy, position_errors, step_through
from playground.inspection.oracle import decoding_model, decoding_steps
from playground.model.seq2seq import sequence_loss
from playground.training.metrics import Metric, evaluation, scored_target
from playground.training.stacked import StackedTrainer
from playground.training.trainer import Trainer

SMALL = TrainConfig(emb_dim=8, hidden_dim=16, batch_size=16, val_size=48, max_len=6, eos="oracle")


def test_eos_is_predict_or_oracle() -> None:
    assert TrainConfig().eos == "predict"
    with pytest.raises(ConfigError, match="eos"):
        TrainConfig.from_dict({"eos": "guess"})


def test_an_oracle_scores_every_token_but_eos() -> None:
    tgt = torch.tensor([[5, 6, EOS_ID, PAD_ID], [7, 5, 6, EOS_ID]])
    right = torch.nn.functional.one_hot(tgt, 12).float() * 10
    wrong_stop = right.clone()
    wrong_stop[0, 2] = torch.nn.functional.one_hot(torch.tensor(8), 12) * 10  # says "8" where <eos> belongs
    sizes = torch.tensor([2, 3])
    for eos, exact in (("predict", 0.5), ("oracle", 1.0)):
        scored = evaluation({"val_tf": wrong_stop, "val_fr": wrong_stop}, scored_target(tgt, eos), sizes, 3)
        assert scored.metrics[Metric.FR_EXACT] == exact
    oracle = scored_target(tgt, "oracle")
    assert oracle.tolist() == [[5, 6, PAD_ID, PAD_ID], [7, 5, 6, PAD_ID]]
    assert sequence_loss(wrong_stop, oracle) == pytest.approx(sequence_loss(right, oracle).item())
    assert sequence_loss(wrong_stop, tgt) > sequence_loss(right, tgt)


@pytest.mark.parametrize("changes", [{}, {"cell": "gru"}, {"attention": "dot"}, {"reverse_source": "on"}])
def test_an_oracle_trains_the_family_and_the_k_model_engine_alike(changes: dict) -> None:
    configs = [SMALL.replace(teacher_forcing_ratio=ratio, **changes) for ratio in (0.0, 1.0)]
    batched, singles = StackedTrainer(configs), [Trainer(config) for config in configs]
    for _ in range(3):
        for loss, trainer in zip(batched.train_step().losses, singles, strict=True):
            assert loss == pytest.approx(trainer.train_step().loss, abs=1e-5)
    for scored, trainer in zip(batched.evaluate(), singles, strict=True):
        expected = trainer.evaluate().metrics
        assert scored.metrics == pytest.approx(expected, abs=1e-4)


def test_an_oracle_never_learns_to_stop_and_its_predictions_run_the_targets_length() -> None:
    trainer, predicting = Trainer(SMALL.replace(hidden_dim=32)), Trainer(SMALL.replace(hidden_dim=32, eos="predict"))
    for _ in range(80):
        trainer.train_step()
        predicting.train_step()
    src, tgt = trainer.validation
    with torch.inference_mode():
        eos_share = {name: (run.model(src, tgt, 1.0).argmax(-1)[tgt == EOS_ID] == EOS_ID).float().mean().item()
                     for name, run in (("oracle", trainer), ("predict", predicting))}
    assert eos_share["oracle"] == 0.0 and eos_share["predict"] > 0.9
    for row in trainer.sample_predictions(8):
        assert len(row["prediction"]) == len(row["target"])


@pytest.mark.parametrize("changes", [{}, {"cell": "gru", "attention": "general"}])
def test_the_views_of_an_oracle_decode_the_targets_length(changes: dict) -> None:
    trainer = Trainer(SMALL.replace(**changes))
    for _ in range(5):
        trainer.train_step()
    source, target = trainer.data.val_pairs[0]
    vocab = trainer.task.tgt_vocab
    steps = decoding_steps(trainer.config, target, trainer.task.decode_limit(len(source)))
    assert steps == len(target)
    told = decoding_model(trainer.model, trainer.config)
    assert told is not trainer.model and decoding_model(trainer.model, SMALL.replace(eos="predict")) is trainer.model
    best = greedy(told, trainer.task.src_vocab, vocab, source, steps)
    beams = beam_search(told, trainer.task.src_vocab, vocab, source, steps, width=3).beams
    walk = step_through(told, trainer.task.src_vocab, vocab, source, steps)
    for tokens in (best.tokens, beams[0].tokens, walk.emitted):
        assert len(tokens) == len(target) and "<eos>" not in tokens
    with torch.inference_mode():  # the copy decides every other token as the model does
        src, tgt = (tensor[:8] for tensor in trainer.validation)
        kept = tgt != EOS_ID
        assert torch.equal(told(src, tgt, 1.0).argmax(-1)[kept], trainer.model(src, tgt, 1.0).argmax(-1)[kept])


def test_an_oracles_errors_by_position_leave_eos_out() -> None:
    trainer = Trainer(SMALL)
    pairs = trainer.data.val_pairs
    told = position_errors(trainer.model, trainer.task, pairs, "oracle")
    assert told.count.sum() == sum(len(target) for _, target in pairs)  # every token but <eos>
    assert position_errors(trainer.model, trainer.task, pairs).count.sum() == told.count.sum() + len(pairs)
