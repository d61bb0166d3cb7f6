"""One recurrence, three paths: the fused model, the K-model engine (K = 1) and state capture agree.

Same weights, same coins; tolerance 1e-5 (float32, different summation orders).
"""

import numpy as np
import pytest
import torch

from playground.analysis.states import capture_states
from playground.core.config import TrainConfig
from playground.core.recurrence import layers_of
from playground.core.tasks import EOS_ID
from playground.training.batched import BatchedTrainer
from playground.training.trainer import Trainer

CONFIG = TrainConfig(hidden_dim=12, emb_dim=6, num_layers=2, val_size=32, batch_size=8, max_len=6)
TOLERANCE = 1e-5


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0])
def test_model_and_k_model_engine_give_the_same_logits(ratio: float) -> None:
    trainer = Trainer(CONFIG)
    engine = BatchedTrainer([CONFIG])
    engine.restore([trainer.model.state_dict()], 0, None)
    batch = next(trainer.batches)
    draws = torch.rand(batch.tgt.shape[1], generator=torch.Generator().manual_seed(3))
    trainer.model.eval()
    with torch.no_grad():
        fused = trainer.model(batch.src, batch.tgt, ratio, "step", draws)
        teacher = (draws < ratio)[None]
        teacher[:, 0] = True
        stacked = engine.forward(batch.src, batch.tgt, teacher, training=False)[0]
    torch.testing.assert_close(stacked, fused, atol=TOLERANCE, rtol=TOLERANCE)


def test_state_capture_gives_the_model_s_states_and_probabilities() -> None:
    trainer = Trainer(CONFIG)
    model, task = trainer.model.eval(), trainer.task
    source, target = trainer.data.val_pairs[0]
    capture = capture_states(model, task.src_vocab, task.tgt_vocab, source, target, teacher_forcing_ratio=1.0)
    src = torch.tensor([task.src_vocab.encode(source)])
    tgt = torch.tensor([[*task.tgt_vocab.encode(target), EOS_ID]])
    with torch.no_grad():
        outputs, (h, c) = model.encoder(src)
        probs = torch.softmax(model(src, tgt, 1.0), -1)[0]
    np.testing.assert_allclose(capture.encoder[-1].h, outputs[0].numpy(), atol=TOLERANCE)
    np.testing.assert_allclose(capture.context, h[:, 0].reshape(-1).numpy(), atol=TOLERANCE)
    np.testing.assert_allclose(capture.encoder[-1].c[-1], c[-1, 0].numpy(), atol=TOLERANCE)
    np.testing.assert_allclose(capture.probs, probs.numpy(), atol=TOLERANCE)


def test_the_typed_weight_view_reads_nn_lstm_weights() -> None:
    lstm = torch.nn.LSTM(5, 7, num_layers=2)
    layers = layers_of(lstm)
    assert [tuple(layer.w_ih.shape) for layer in layers] == [(5, 28), (7, 28)]
    torch.testing.assert_close(layers[1].bias, lstm.bias_ih_l1 + lstm.bias_hh_l1)
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    step = layers[0].step(layers[0].project(x), h, c)
    _, (h_ref, c_ref) = lstm(x[None], (torch.stack([h, h]), torch.stack([c, c])))
    torch.testing.assert_close(step.h, h_ref[0], atol=TOLERANCE, rtol=TOLERANCE)
    torch.testing.assert_close(step.c, c_ref[0], atol=TOLERANCE, rtol=TOLERANCE)
