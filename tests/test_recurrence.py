"""One recurrence, three paths: the fused model, the K-model engine (K = 1) and state capture agree.

Same weights, same coins; tolerance 1e-5 (float32, different summation orders).
"""

import numpy as np
import pytest
import torch

from playground.core.config import TrainConfig
from playground.core.tasks import EOS_ID
from playground.inspection.states import capture_states
from playground.model.cells import LayerWeights, layers_of
from playground.model.fused_lstm import unroll
from playground.training.stacked import StackedTrainer
from playground.training.trainer import Trainer

CONFIG = TrainConfig(hidden_dim=12, emb_dim=6, num_layers=2, val_size=32, batch_size=8, max_len=6)
TOLERANCE = 1e-5


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0])
def test_model_and_k_model_engine_give_the_same_logits(ratio: float) -> None:
    trainer = Trainer(CONFIG)
    engine = StackedTrainer([CONFIG])
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


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_the_hand_written_backward_matches_finite_differences(stacked: bool, dropout: float) -> None:
    """Every gradient of `unroll` (embedding, state, each layer's weights), in float64, with free-running steps, two
    layers and (re-seeded, so the same) dropout masks: along random directions u, sum(grad * u) equals the central
    difference of the loss. (torch's gradcheck backpropagates the same graph many times; this backward runs once.)"""
    lead = (2,) if stacked else ()
    generator = torch.Generator().manual_seed(0)

    def tensor(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64) * 0.5

    vocab, emb, hidden, batch, length = 7, 3, 4, 3, 5
    inputs = [tensor(*lead, vocab, emb), tensor(2, *lead, batch, hidden), tensor(2, *lead, batch, hidden)]
    for width in (emb, hidden):
        inputs += [tensor(*lead, width, 4 * hidden), tensor(*lead, hidden, 4 * hidden), tensor(*lead, 4 * hidden)]
    readout = (tensor(*lead, vocab, hidden), tensor(*lead, vocab))
    ids = torch.randint(1, vocab, (batch, length), generator=generator)
    teacher = torch.tensor([True, False, True, False, False])
    weights_out = [tensor(*lead, batch, length, hidden), tensor(2, *lead, batch, hidden),
                   tensor(2, *lead, batch, hidden)]

    def loss(values: list[torch.Tensor]) -> torch.Tensor:
        torch.manual_seed(5)
        layers = [LayerWeights(*values[k:k + 3]) for k in (3, 6)]
        outputs, (h, c) = unroll(values[0], layers, ids, (values[1], values[2]), teacher, readout, dropout)
        return sum((w * x).sum() for w, x in zip(weights_out, (outputs, h, c), strict=True))

    leaves = [x.clone().requires_grad_() for x in inputs]
    loss(leaves).backward()
    for _ in range(3):
        direction = [tensor(*x.shape) for x in inputs]
        with torch.no_grad():
            ahead = loss([x + 1e-6 * u for x, u in zip(inputs, direction, strict=True)])
            behind = loss([x - 1e-6 * u for x, u in zip(inputs, direction, strict=True)])
        numeric = (ahead - behind) / 2e-6
        analytic = sum((leaf.grad * u).sum() for leaf, u in zip(leaves, direction, strict=True))
        assert float(analytic) == pytest.approx(float(numeric), rel=1e-6, abs=1e-8)


def test_the_backward_runs_once() -> None:
    lstm = torch.nn.LSTM(3, 4)
    embedding = torch.randn(5, 3, requires_grad=True)
    state = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))
    outputs, _ = unroll(embedding, layers_of(lstm), torch.tensor([[1, 2, 3], [4, 1, 2]]), state)
    outputs.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="runs once"):
        outputs.sum().backward()
