"""The fast paths of playground/model.py against the straightforward computation through the same modules."""

import json

import pytest
import torch

from playground import cli
from playground.core.tasks import EOS_ID, PAD_ID, SOS_ID
from playground.model.seq2seq import Seq2Seq, sequence_loss

SRC_VOCAB, TGT_VOCAB, EMB, HIDDEN = 13, 11, 6, 8
CASES = [(0.0, "step"), (0.3, "step"), (0.5, "step"), (1.0, "step"), (0.0, "token"), (0.3, "token"), (0.5, "token")]


def plain_logits(model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The tutorial loop: nn.LSTM over the source, then one decoder module call per step.

    teacher is (B, L): whether row b at step t reads tgt[b, t - 1] instead of its own argmax.
    """
    _, state = model.encoder.lstm(model.encoder.embedding(src))
    token = torch.full((src.shape[0], 1), SOS_ID)
    steps = []
    for t in range(tgt.shape[1]):
        if t > 0:
            token = torch.where(teacher[:, t:t + 1], tgt[:, t - 1:t], steps[-1].argmax(-1))
        logits, state = model.decoder(token, state)
        steps.append(logits)
    return torch.cat(steps, dim=1)


def make_model(num_layers: int, dropout: float = 0.0) -> Seq2Seq:
    torch.manual_seed(10 + num_layers)
    return Seq2Seq(src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB, emb_dim=EMB, hidden_dim=HIDDEN,
                   num_layers=num_layers, dropout=dropout)


def padded_batch(seed: int, batch_size: int = 6, length: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded sources, right-padded targets ending with <eos>, as the tasks make them."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(4, SRC_VOCAB, (batch_size, length - 1), generator=generator)
    tgt = torch.randint(4, TGT_VOCAB, (batch_size, length), generator=generator)
    for row in range(batch_size):
        size = 3 + row % (length - 3)
        src[row, : length - 1 - size] = PAD_ID
        tgt[row, size] = EOS_ID
        tgt[row, size + 1:] = PAD_ID
    return src, tgt


def gradients(model: Seq2Seq, logits: torch.Tensor, tgt: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    sequence_loss(logits, tgt).backward()
    return {name: parameter.grad.clone() for name, parameter in model.named_parameters()}


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize(("ratio", "coin"), CASES)
def test_fast_forward_and_gradients_equal_the_plain_loop(num_layers: int, ratio: float, coin: str) -> None:
    model = make_model(num_layers)
    src, tgt = padded_batch(seed=num_layers)
    shape = (tgt.shape[1],) if coin == "step" else tuple(tgt.shape)
    draws = torch.rand(shape, generator=torch.Generator().manual_seed(3))
    teacher = (draws < ratio).expand(tgt.shape)
    fast = model(src, tgt, ratio, coin, draws)
    fast_grads = gradients(model, fast, tgt)
    plain = plain_logits(model, src, tgt, teacher)
    plain_grads = gradients(model, plain, tgt)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert not fast_grads["encoder.embedding.weight"][PAD_ID].any()
    assert not fast_grads["decoder.embedding.weight"][PAD_ID].any()


@pytest.mark.parametrize("free_steps", [[], [4], [1, 6], [1, 2, 3]])
def test_fused_segments_around_free_running_steps_equal_the_plain_loop(free_steps: list[int]) -> None:
    """However the steps split into fused calls, the numbers must not tell."""
    model = make_model(2)
    src, tgt = padded_batch(seed=4)
    draws = torch.zeros(tgt.shape[1])
    draws[free_steps] = 0.95
    fast = model(src, tgt, 0.9, "step", draws)
    fast_grads = gradients(model, fast, tgt)
    plain = plain_logits(model, src, tgt, (draws < 0.9).expand(tgt.shape))
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    for name, grad in gradients(model, plain, tgt).items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize(("ratio", "coin"), [(0.0, "step"), (0.5, "step"), (0.5, "token"), (1.0, "step")])
def test_inference_mode_gives_the_training_numbers(ratio: float, coin: str) -> None:
    model = make_model(2)
    src, tgt = padded_batch(seed=7)
    draws = torch.rand(tgt.shape if coin == "token" else tgt.shape[1:], generator=torch.Generator().manual_seed(2))
    with_grad = model(src, tgt, ratio, coin, draws)
    with torch.inference_mode():
        without = model(src, tgt, ratio, coin, draws)
    torch.testing.assert_close(without, with_grad.detach(), rtol=1e-6, atol=1e-6)


def test_eval_mode_with_dropout_gives_the_plain_loop_numbers() -> None:
    model = make_model(2, dropout=0.5).eval()
    src, tgt = padded_batch(seed=8)
    draws = torch.rand(tgt.shape[1], generator=torch.Generator().manual_seed(5))
    fast = model(src, tgt, 0.5, "step", draws)
    torch.testing.assert_close(fast, plain_logits(model, src, tgt, (draws < 0.5).expand(tgt.shape)))
    assert fast.grad_fn is not None


@pytest.mark.parametrize("coin", ["step", "token"])
def test_training_with_dropout_draws_dropout_masks(coin: str) -> None:
    model = make_model(2, dropout=0.5).train()
    src, tgt = padded_batch(seed=9)
    draws = torch.rand(tgt.shape if coin == "token" else tgt.shape[1:], generator=torch.Generator().manual_seed(6))
    first, second = model(src, tgt, 0.5, coin, draws), model(src, tgt, 0.5, coin, draws)
    assert first.shape == (src.shape[0], tgt.shape[1], TGT_VOCAB)
    assert not torch.allclose(first, second)
    sequence_loss(first, tgt).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_greedy_decode_equals_free_running_forward_up_to_eos(num_layers: int) -> None:
    model = make_model(num_layers).eval()
    src, _ = padded_batch(seed=11, batch_size=16)
    length = 12
    free_running = model(src, torch.full((16, length), 4), 0.0).argmax(-1)
    decoded = model.greedy_decode(src, max_len=length)
    for row in range(src.shape[0]):
        predicted = free_running[row].tolist()
        end = predicted.index(EOS_ID) + 1 if EOS_ID in predicted else length
        assert decoded[row, :end].tolist() == predicted[:end]
        assert all(token == PAD_ID for token in decoded[row, end:].tolist())
    ends = [row.index(EOS_ID) + 1 if EOS_ID in row else length for row in free_running.tolist()]
    assert decoded.shape[1] == max(ends)


def test_greedy_decode_stops_once_every_row_has_ended() -> None:
    model = make_model(1).eval()
    src, _ = padded_batch(seed=12)
    with torch.no_grad():
        model.decoder.fc_out.bias[EOS_ID] = 100.0
    assert model.greedy_decode(src, max_len=20).tolist() == [[EOS_ID]] * src.shape[0]
    with torch.no_grad():
        model.decoder.fc_out.bias[EOS_ID] = -100.0
    decoded = model.greedy_decode(src, max_len=7)
    assert decoded.shape == (src.shape[0], 7) and not (decoded == EOS_ID).any()


@pytest.mark.slow
def test_bench_quick_prints_the_ratio_keys_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"speedup_vs_naive", "partial_vs_fused", "steps_per_second", "scaling", "default_size"} <= result.keys()
    assert {"naive", "project_gamma_0", "project_gamma_0.5", "project_gamma_1"} <= result["steps_per_second"][
        "default"].keys()
    assert result["default_size"]["hidden_dim"] == 128 and result["default_size"]["batch_size"] == 64
    assert all(value > 0 for value in result["steps_per_second"]["default"].values())
    assert result["contracts"] == {"gamma_1_is_one_fused_decoder_call": True}  # the fast path's contract holds
