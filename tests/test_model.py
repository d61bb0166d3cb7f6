"""The model against the specification's equations, recomputed step by step from its own weights."""

import pytest
import torch

from playground.core.tasks import PAD_ID, SOS_ID
from playground.model.seq2seq import Seq2Seq, sequence_loss

SRC_VOCAB, TGT_VOCAB, EMB, HIDDEN = 13, 11, 6, 8
MIXED_DRAWS = torch.tensor([0.9, 0.1, 0.7, 0.2, 0.3, 0.8])


def lstm_cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, lstm: torch.nn.LSTM, layer: int):
    """i, f, g, o = sigma(W_i [x, h] + b), ...; c' = f c + i g; h' = o tanh(c')."""
    gates = (x @ getattr(lstm, f"weight_ih_l{layer}").T + getattr(lstm, f"bias_ih_l{layer}")
             + h @ getattr(lstm, f"weight_hh_l{layer}").T + getattr(lstm, f"bias_hh_l{layer}"))
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def stack_step(x, state, lstm):
    h, c = state
    new_h, new_c = [], []
    for layer in range(lstm.num_layers):
        x, cell = lstm_cell(x, h[layer], c[layer], lstm, layer)
        new_h.append(x)
        new_c.append(cell)
    return x, (new_h, new_c)


def reference_logits(model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor, teacher: list[bool]) -> torch.Tensor:
    """The specification, one step at a time; teacher[t] says whether step t sees y_{t-1}."""
    batch, layers = src.shape[0], model.encoder.lstm.num_layers
    state = ([torch.zeros(batch, HIDDEN)] * layers, [torch.zeros(batch, HIDDEN)] * layers)
    for t in range(src.shape[1]):
        _, state = stack_step(model.encoder.embedding.weight[src[:, t]], state, model.encoder.lstm)
    token = torch.full((batch,), model.sos_id)
    outputs = []
    for t in range(tgt.shape[1]):
        if t > 0:
            token = tgt[:, t - 1] if teacher[t] else outputs[-1].argmax(-1)
        top, state = stack_step(model.decoder.embedding.weight[token], state, model.decoder.lstm)
        outputs.append(top @ model.decoder.fc_out.weight.T + model.decoder.fc_out.bias)
    return torch.stack(outputs, dim=1)


def make_model(num_layers: int) -> Seq2Seq:
    torch.manual_seed(num_layers)
    model = Seq2Seq(src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB, emb_dim=EMB, hidden_dim=HIDDEN,
                    num_layers=num_layers, dropout=0.0)
    return model.eval()


def batch(seed: int, batch_size: int = 5, src_len: int = 7, tgt_len: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(4, SRC_VOCAB, (batch_size, src_len), generator=generator)
    tgt = torch.randint(4, TGT_VOCAB, (batch_size, tgt_len), generator=generator)
    return src, tgt


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("ratio", [1.0, 0.0, 0.5])
def test_logits_equal_the_equations(num_layers: int, ratio: float) -> None:
    model = make_model(num_layers)
    src, tgt = batch(seed=num_layers)
    draws = MIXED_DRAWS  # at 0.5: steps 1, 3, 4 teacher-forced, steps 2, 5 free-running
    logits = model(src, tgt, ratio, coin="step", coin_draws=draws)
    expected = reference_logits(model, src, tgt, (draws < ratio).tolist())
    assert logits.shape == (5, 6, TGT_VOCAB)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_per_token_coins_equal_the_equations_row_by_row(num_layers: int) -> None:
    model = make_model(num_layers)
    src, tgt = batch(seed=7)
    draws = torch.rand(tgt.shape, generator=torch.Generator().manual_seed(4))
    logits = model(src, tgt, 0.5, coin="token", coin_draws=draws)
    for row in range(src.shape[0]):
        expected = reference_logits(model, src[row:row + 1], tgt[row:row + 1], (draws[row] < 0.5).tolist())
        torch.testing.assert_close(logits[row:row + 1], expected, rtol=1e-5, atol=1e-5)


def test_fused_path_equals_the_step_loop() -> None:
    model = make_model(2)
    src, tgt = batch(seed=2)
    fused = model(src, tgt, 1.0)
    per_token_all_teacher = model(src, tgt, 1.0 - 1e-9, coin="token", coin_draws=torch.zeros(tgt.shape))
    torch.testing.assert_close(fused, per_token_all_teacher, rtol=1e-5, atol=1e-6)


def test_loss_averages_over_non_pad_tokens_only() -> None:
    model = make_model(1)
    src, tgt = batch(seed=6)
    tgt[0, 3:] = PAD_ID
    tgt[2, 5:] = PAD_ID
    logits = model(src, tgt, 1.0)
    mask = tgt != PAD_ID
    log_probs = logits.log_softmax(-1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    expected = -(log_probs * mask).sum() / mask.sum()
    torch.testing.assert_close(sequence_loss(logits, tgt), expected)
    scrambled = logits.clone()
    scrambled[~mask] = torch.randn_like(scrambled[~mask]) * 100
    torch.testing.assert_close(sequence_loss(scrambled, tgt), expected)


def test_unpadded_loss_is_the_mean_over_batch_and_length() -> None:
    model = make_model(1)
    src, tgt = batch(seed=8)
    logits = model(src, tgt, 1.0)
    manual = -logits.log_softmax(-1).gather(-1, tgt.unsqueeze(-1)).sum() / tgt.numel()
    torch.testing.assert_close(sequence_loss(logits, tgt), manual)


def test_contract_names_and_keyword_construction() -> None:
    model = Seq2Seq(src_vocab_size=9, tgt_vocab_size=7, emb_dim=4, hidden_dim=5, num_layers=2, dropout=0.1)
    assert model.encoder.embedding.num_embeddings == 9 and model.decoder.embedding.num_embeddings == 7
    assert model.encoder.lstm.hidden_size == 5 and model.decoder.lstm.num_layers == 2
    assert model.decoder.fc_out.out_features == 7 and model.decoder.fc_out.in_features == 5
    assert model.sos_id == SOS_ID


def test_greedy_decode_matches_free_running_forward_until_eos() -> None:
    model = make_model(2)
    src, tgt = batch(seed=9, tgt_len=10)
    free_running = model(src, tgt, 0.0).argmax(-1)
    decoded = model.greedy_decode(src, max_len=10)
    for row in range(src.shape[0]):
        predicted = free_running[row].tolist()
        length = predicted.index(2) + 1 if 2 in predicted else len(predicted)
        assert decoded[row, :length].tolist() == predicted[:length]
        assert all(token == PAD_ID for token in decoded[row, length:].tolist())
