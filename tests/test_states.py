"""The step-by-step capture equals nn.LSTM and the model's logits; the analysis helpers do what they say."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch

from playground.core.tasks import EOS, EOS_ID, SOS_ID, Vocab
from playground.inspection.states import (
    capture_csv,
    capture_npz,
    capture_states,
    context_vectors,
    decoder_path,
    divergence_step,
    example_property,
    fit_projection,
    position_correlation,
    unit_order,
)
from playground.model.seq2seq import Seq2Seq
from playground.plots.state_figures import state_heatmap

SRC = list("abcdab")
TGT = list("badcba")


def setup(num_layers: int) -> tuple[Seq2Seq, Vocab, Vocab]:
    torch.manual_seed(num_layers)
    src_vocab, tgt_vocab = Vocab(list("abcd")), Vocab(list("abcd"))
    model = Seq2Seq(src_vocab_size=len(src_vocab), tgt_vocab_size=len(tgt_vocab), emb_dim=6, hidden_dim=10,
                    num_layers=num_layers, dropout=0.0).eval()
    return model, src_vocab, tgt_vocab


@pytest.mark.parametrize("num_layers", [1, 2])
def test_teacher_forced_capture_equals_nn_lstm_and_the_logits(num_layers: int) -> None:
    model, src_vocab, tgt_vocab = setup(num_layers)
    capture = capture_states(model, src_vocab, tgt_vocab, SRC, TGT, teacher_forcing_ratio=1.0)
    src = torch.tensor([src_vocab.encode(SRC)])
    with torch.no_grad():
        outputs, (h_n, c_n) = model.encoder(src)
        targets = [*tgt_vocab.encode(TGT), EOS_ID]
        inputs = torch.tensor([[SOS_ID, *targets[:-1]]])
        logits, (dec_h, dec_c) = model.decoder(inputs, (h_n, c_n))
        dec_outputs, _ = model.decoder.lstm(model.decoder.embedding(inputs), (h_n, c_n))
        forward_logits = model(src, torch.tensor([targets]), teacher_forcing_ratio=1.0)
    np.testing.assert_allclose(capture.encoder[-1].h, outputs[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(capture.decoder[-1].h, dec_outputs[0].numpy(), atol=1e-6)
    for layer in range(num_layers):
        np.testing.assert_allclose(capture.encoder[layer].h[-1], h_n[layer, 0].numpy(), atol=1e-6)
        np.testing.assert_allclose(capture.encoder[layer].c[-1], c_n[layer, 0].numpy(), atol=1e-6)
        np.testing.assert_allclose(capture.decoder[layer].h[-1], dec_h[layer, 0].numpy(), atol=1e-6)
        np.testing.assert_allclose(capture.decoder[layer].c[-1], dec_c[layer, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(capture.probs, torch.softmax(logits[0], -1).numpy(), atol=1e-6)
    np.testing.assert_allclose(capture.probs, torch.softmax(forward_logits[0], -1).numpy(), atol=1e-6)
    assert capture.decoder_inputs == ["<sos>", *TGT]
    assert capture.teacher_used == [False] + [True] * len(TGT)
    assert len(capture.predicted) == len(TGT) + 1
    assert capture.encoder[0].h.shape == (len(SRC), 10)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_gates_recombine_into_c_and_h(num_layers: int) -> None:
    model, src_vocab, tgt_vocab = setup(num_layers)
    capture = capture_states(model, src_vocab, tgt_vocab, SRC, TGT, teacher_forcing_ratio=0.5)
    for part in (capture.encoder, capture.decoder):
        for index, layer in enumerate(part):
            g = layer.gates
            if part is capture.encoder:
                previous = np.vstack([np.zeros((1, layer.c.shape[1])), layer.c[:-1]])
            else:
                previous = np.vstack([capture.encoder[index].c[-1:], layer.c[:-1]])
            np.testing.assert_allclose(layer.c, g["f"] * previous + g["i"] * g["g"], atol=1e-6, rtol=0)
            np.testing.assert_allclose(layer.h, g["o"] * np.tanh(layer.c), atol=1e-6, rtol=0)
            assert ((g["i"] > 0) & (g["i"] < 1)).all() and (np.abs(g["g"]) < 1).all()


def test_free_running_probs_match_the_models_greedy_logits() -> None:
    model, src_vocab, tgt_vocab = setup(2)
    capture = capture_states(model, src_vocab, tgt_vocab, SRC, max_len=7)
    steps = len(capture.predicted)
    assert steps == 7 or capture.predicted[-1] == EOS
    with torch.no_grad():
        logits = model(torch.tensor([src_vocab.encode(SRC)]), torch.full((1, steps), 4), teacher_forcing_ratio=0.0)
    np.testing.assert_allclose(capture.probs, torch.softmax(logits[0], -1).numpy(), atol=1e-6)
    assert capture.decoder_inputs[1:] == capture.predicted[:-1] and not any(capture.teacher_used)


def test_mixed_ratio_uses_coins_and_feeds_what_it_says() -> None:
    model, src_vocab, tgt_vocab = setup(1)
    long_tgt = TGT * 5
    capture = capture_states(model, src_vocab, tgt_vocab, SRC, long_tgt, teacher_forcing_ratio=0.5, seed=3)
    used = capture.teacher_used[1:]
    assert 0 < sum(used) < len(used)
    for t, teacher in enumerate(capture.teacher_used[1:], start=1):
        expected = long_tgt[t - 1] if teacher else capture.predicted[t - 1]
        assert capture.decoder_inputs[t] == expected


def test_empty_source_is_refused() -> None:
    model, src_vocab, tgt_vocab = setup(1)
    with pytest.raises(ValueError, match="empty"):
        capture_states(model, src_vocab, tgt_vocab, [])


def test_context_vectors_equal_each_captures_context() -> None:
    model, src_vocab, tgt_vocab = setup(2)
    sources = [list("ab"), list("abcd"), list("dc"), list("c")]
    contexts = context_vectors(model, src_vocab, sources)
    for row, source in zip(contexts, sources, strict=True):
        np.testing.assert_allclose(row, capture_states(model, src_vocab, tgt_vocab, source).context, atol=1e-6)
    capture = capture_states(model, src_vocab, tgt_vocab, SRC, max_len=4)
    path = decoder_path(capture)
    assert path.shape == (len(capture.predicted) + 1, 20)
    np.testing.assert_array_equal(path[0], capture.context)


def test_unit_orders() -> None:
    steps = np.arange(6.0)
    values = np.stack([np.ones(6), -steps, 3 * np.sin(steps), steps / 10], axis=1)
    assert unit_order(values, "as is").tolist() == [0, 1, 2, 3]
    assert unit_order(values, "by variance").tolist()[:2] == [2, 1]
    order = unit_order(values, "by correlation with position").tolist()
    assert order[0] == 3 and order[-1] == 1
    np.testing.assert_allclose(position_correlation(values)[[0, 1, 3]], [0.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="unknown unit order"):
        unit_order(values, "alphabetical")


def test_divergence_step() -> None:
    assert divergence_step(list("abc"), list("abc")) is None
    assert divergence_step(list("abc"), list("axc")) == 1
    assert divergence_step(list("ab"), list("abc")) == 2


def test_projection_finds_the_main_direction() -> None:
    rng = np.random.default_rng(0)
    line = rng.normal(size=(50, 1))
    points = np.hstack([line * 5, line * -5, rng.normal(scale=0.01, size=(50, 1))]) + 7
    projection = fit_projection(points)
    assert projection.explained[0] > 0.99
    coords = projection.apply(points)
    assert abs(np.corrcoef(coords[:, 0], line[:, 0])[0, 1]) > 0.999
    np.testing.assert_allclose(coords.mean(axis=0), 0, atol=1e-9)
    with pytest.raises(ValueError):
        fit_projection(points[:1])


def test_example_property() -> None:
    assert example_property("addition", list("37+5"), list("42")) == ("sum", 42.0)
    assert example_property("sort", list("cab"), list("abc")) == ("first token", "c")
    assert example_property("reverse", list("abcd"), list("dcba")) == ("source length", 4.0)


def test_exports_round_trip() -> None:
    model, src_vocab, tgt_vocab = setup(2)
    capture = capture_states(model, src_vocab, tgt_vocab, SRC, TGT, teacher_forcing_ratio=1.0)
    arrays = np.load(io.BytesIO(capture_npz(capture)))
    np.testing.assert_array_equal(arrays["decoder_l1_c"], capture.decoder[1].c)
    np.testing.assert_array_equal(arrays["encoder_l0_gate_f"], capture.encoder[0].gates["f"])
    np.testing.assert_array_equal(arrays["probs"], capture.probs)
    assert arrays["predicted"].tolist() == capture.predicted
    lines = capture_csv(capture).splitlines()
    assert lines[0] == "part,layer,quantity,step,token,unit,value"
    per_layer = 6 * 10 * (len(SRC) + len(TGT) + 1)
    assert len(lines) == 1 + 2 * per_layer
    assert f"encoder,1,h,5,b,3,{capture.encoder[1].h[5, 3]:.6g}" in lines


def test_exported_tokens_cannot_start_a_formula_and_numbers_stay_numbers() -> None:
    tokens = ["=HYPERLINK(\"http://x\")", "+1", "-", "@SUM(A1)", "\tx", "a"]
    torch.manual_seed(0)
    src_vocab, tgt_vocab = Vocab(tokens), Vocab(list("ab"))
    model = Seq2Seq(src_vocab_size=len(src_vocab), tgt_vocab_size=len(tgt_vocab), emb_dim=4, hidden_dim=3).eval()
    capture = capture_states(model, src_vocab, tgt_vocab, tokens, list("ab"), teacher_forcing_ratio=1.0)
    rows = list(csv.reader(io.StringIO(capture_csv(capture))))[1:]
    encoder_tokens = list(dict.fromkeys(row[4] for row in rows if row[0] == "encoder"))
    assert encoder_tokens == ["'=HYPERLINK(\"http://x\")", "'+1", "'-", "'@SUM(A1)", "'\tx", "a"]
    assert any(row[6].startswith("-") for row in rows)  # a negative value is a number, never quoted
    assert not [row for row in rows if row[6].startswith("'")]


def test_state_heatmap_is_centred_and_hovers_unit_step_token() -> None:
    values = np.array([[0.5, -2.0, 0.1], [1.0, 0.0, -0.3]])
    figure = state_heatmap(values, ["a", "b"], "h", unit_order(values, "by variance"), value_name="h")
    trace = figure.data[0]
    assert trace.zmid == 0 and trace.zmin == -2.0 and trace.zmax == 2.0
    assert trace.z.shape == (3, 2) and trace.customdata[0, 1].tolist() == [1, 1, "b"]
    assert "unit %{customdata[0]}" in trace.hovertemplate and "token %{customdata[2]}" in trace.hovertemplate
    assert figure.layout.xaxis.ticktext == ("a", "b") and figure.layout.yaxis.autorange == "reversed"
