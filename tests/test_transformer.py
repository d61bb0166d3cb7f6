"""The Transformer against torch's own layers, its cache against the uncached loop, and the CLI's decoding against
an independent numpy decoder that reads the checkpoint by its state_dict names (README, "The Transformer")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from playground import cli
from playground.core.config import ConfigError, TrainConfig
from playground.core.tasks import EOS_ID, PAD_ID, SOS_ID
from playground.course.answers import PREDICTIONS, answered, answers
from playground.course.architecture_lesson import beyond_training, read_lstm_or_transformer, steps_to_ninety
from playground.course.lessons import LESSONS
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.inspection.states import capture_states
from playground.model.seq2seq import Seq2Seq
from playground.model.transformer import sinusoids
from playground.training.checkpoints import load_checkpoint
from playground.training.cost import estimate, parameter_count
from playground.training.metrics import Metric
from playground.training.stacked import StackedTrainer
from playground.training.trainer import Trainer, build_task

VOCAB, WIDTH = 11, 8


def _model(positions: str = "sinusoidal", heads: int = 2, layers: int = 2, seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(VOCAB, VOCAB, 4, WIDTH, layers, architecture="transformer", heads=heads, positions=positions).eval()


def _batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(4, VOCAB, (4, 6), generator=generator)
    src[0, :2] = PAD_ID  # left padding
    src[2, :4] = PAD_ID
    tgt = torch.randint(4, VOCAB, (4, 7), generator=generator)
    tgt[1, 5:] = PAD_ID
    return src, tgt


@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "none"])
def test_the_layers_compute_torchs_own_forward(positions: str) -> None:
    model = _model(positions)
    src, tgt = _batch()
    real = src != PAD_ID
    x = model.encoder.embed(src, (real.cumsum(1) - 1).clamp(min=0))
    expected_memory = model.encoder.transformer(x, src_key_padding_mask=~real)
    state, memory = model.encode(src)
    torch.testing.assert_close(memory.outputs[real], expected_memory[real], atol=1e-5, rtol=1e-5)
    inputs = torch.cat([torch.full_like(tgt[:, :1], SOS_ID), tgt[:, :-1]], dim=1)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(inputs.shape[1])
    y = model.decoder.transformer(model.decoder.embed(inputs, torch.arange(inputs.shape[1])), memory.outputs,
                                  tgt_mask=causal, memory_key_padding_mask=~real)
    logits, _ = model.decoder(inputs, state, memory)
    torch.testing.assert_close(logits, model.decoder.fc_out(y), atol=1e-5, rtol=1e-5)


def test_the_state_dict_keeps_torchs_names() -> None:
    names = set(_model("learned").state_dict())
    assert {"encoder.embedding.weight", "decoder.embedding.weight", "decoder.fc_out.weight",
            "encoder.positions.weight", "decoder.positions.weight",
            "encoder.transformer.layers.0.self_attn.in_proj_weight", "encoder.transformer.layers.1.linear1.weight",
            "encoder.transformer.layers.0.norm2.bias", "encoder.transformer.norm.weight",
            "decoder.transformer.layers.1.multihead_attn.in_proj_weight", "decoder.transformer.layers.0.norm3.weight",
            "decoder.transformer.norm.weight"} <= names
    model = _model()
    first, second = model.encoder.transformer.layers
    assert not torch.equal(first.linear1.weight, second.linear1.weight)  # layers are not copies of one


def test_sinusoids_follow_the_formula() -> None:
    table = sinusoids(torch.arange(5), 6).numpy()
    for p in range(5):
        for i in range(3):
            angle = p / 10000 ** (2 * i / 6)
            assert table[p, 2 * i] == pytest.approx(np.sin(angle), abs=1e-6)
            assert table[p, 2 * i + 1] == pytest.approx(np.cos(angle), abs=1e-6)


def _uncached(model: Seq2Seq, src: torch.Tensor, inputs: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The decoding without a cache: at every step one causal pass over every input read so far."""
    state, memory = model.encode(src)
    read = inputs[:, :1]
    logits = []
    for t in range(inputs.shape[1]):
        if t > 0:
            own = logits[-1].argmax(-1)
            read = torch.cat([read, torch.where(teacher[:, t], inputs[:, t], own)[:, None]], dim=1)
        logits.append(model.decoder(read, state, memory)[0][:, -1])
    return torch.stack(logits, dim=1)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "none"])
def test_the_cache_gives_the_uncached_loop(positions: str) -> None:
    model = _model(positions)
    src, tgt = _batch()
    inputs = torch.cat([torch.full_like(tgt[:, :1], SOS_ID), tgt[:, :-1]], dim=1)
    teacher = torch.rand(tgt.shape, generator=torch.Generator().manual_seed(3)) < 0.5
    expected = _uncached(model, src, inputs, teacher.clone().index_fill_(1, torch.tensor([0]), True))
    state, memory = model.encode(src)
    with torch.no_grad():  # the cached steps alone
        cached = model.decoder.decode(inputs, state, teacher, memory)
    torch.testing.assert_close(cached, expected, atol=1e-5, rtol=1e-5)
    with_gradient = model.decoder.decode(inputs, state, teacher, memory)  # the steps choose, one pass computes
    torch.testing.assert_close(with_gradient, expected, atol=1e-5, rtol=1e-5)
    assert with_gradient.requires_grad


def test_full_forcing_is_one_pass_equal_to_the_step_loop() -> None:
    model = _model()
    src, tgt = _batch()
    logits = model(src, tgt, 1.0)
    state, memory = model.encode(src)
    inputs = torch.cat([torch.full_like(tgt[:, :1], SOS_ID), tgt[:, :-1]], dim=1)
    stepped = []
    for t in range(inputs.shape[1]):
        step_logits, state, extras = model.decoder.step(inputs[:, t], state, memory)
        stepped.append(step_logits)
    torch.testing.assert_close(logits, torch.stack(stepped, dim=1), atol=1e-5, rtol=1e-5)
    assert extras.heads["self"].shape == (4, 2, 2, inputs.shape[1])  # (B, layers, heads, positions so far)
    assert extras.heads["cross"].shape == (4, 2, 2, src.shape[1])
    torch.testing.assert_close(extras.heads["cross"].sum(-1), torch.ones(4, 2, 2))
    assert float(extras.heads["cross"][0, :, :, :2].detach().abs().max()) == 0.0  # padding is masked as keys


def test_the_capture_shows_every_layer_and_head() -> None:
    task = build_task(TrainConfig())
    torch.manual_seed(0)
    model = Seq2Seq(len(task.src_vocab), len(task.tgt_vocab), 4, 8, 2, architecture="transformer", heads=2)
    capture = capture_states(model, task.src_vocab, task.tgt_vocab, list("abc"), list("cba"), 1.0)
    assert len(capture.encoder) == len(capture.decoder) == 2
    assert capture.decoder[0].h.shape == (4, 8)  # the residual stream after layer 0 at every step
    assert capture.attention is not None and capture.attention.shape == (4, 3)


def _numpy_greedy(weights: dict[str, np.ndarray], config: TrainConfig, src: list[int],
                  limit: int) -> tuple[list[int], float]:
    """Greedy decoding of one source from the checkpoint's arrays by their names: pre-norm layers, ReLU
    feed-forward, √d-scaled embeddings, the positions of the setting."""
    d, heads = config.hidden_dim, config.heads

    def norm(x: np.ndarray, name: str) -> np.ndarray:
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * weights[f"{name}.weight"] + weights[f"{name}.bias"]

    def attention(name: str, queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
        w, b = weights[f"{name}.in_proj_weight"], weights[f"{name}.in_proj_bias"]
        q, k, v = queries @ w[:d].T + b[:d], keys @ w[d:2 * d].T + b[d:2 * d], keys @ w[2 * d:].T + b[2 * d:]
        size = d // heads
        outputs = []
        for h in range(heads):
            part = slice(h * size, (h + 1) * size)
            scores = q[:, part] @ k[:, part].T / np.sqrt(size)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            outputs.append(scores / scores.sum(-1, keepdims=True) @ v[:, part])
        return np.concatenate(outputs, -1) @ weights[f"{name}.out_proj.weight"].T + weights[f"{name}.out_proj.bias"]

    def feed_forward(prefix: str, x: np.ndarray) -> np.ndarray:
        hidden = np.maximum(x @ weights[f"{prefix}.linear1.weight"].T + weights[f"{prefix}.linear1.bias"], 0)
        return hidden @ weights[f"{prefix}.linear2.weight"].T + weights[f"{prefix}.linear2.bias"]

    def embed(side: str, tokens: list[int]) -> np.ndarray:
        x = weights[f"{side}.embedding.weight"][tokens] * np.sqrt(d)
        positions = np.arange(len(tokens))
        if config.positions == "sinusoidal":
            table = np.zeros((len(tokens), d))
            for i in range(0, d, 2):
                angle = positions / 10000 ** (i / d)
                table[:, i] = np.sin(angle)
                if i + 1 < d:
                    table[:, i + 1] = np.cos(angle)
            x = x + table
        elif config.positions == "learned":
            x = x + weights[f"{side}.positions.weight"][positions]
        return x

    x = embed("encoder", src)
    for k in range(config.num_layers):
        prefix = f"encoder.transformer.layers.{k}"
        z = norm(x, f"{prefix}.norm1")
        x = x + attention(f"{prefix}.self_attn", z, z)
        x = x + feed_forward(prefix, norm(x, f"{prefix}.norm2"))
    memory = norm(x, "encoder.transformer.norm")
    tokens, logprob = [SOS_ID], 0.0
    for _ in range(limit):
        y = embed("decoder", tokens)
        for k in range(config.num_layers):
            prefix = f"decoder.transformer.layers.{k}"
            z = norm(y, f"{prefix}.norm1")
            causal = np.stack([attention(f"{prefix}.self_attn", z[: t + 1], z[: t + 1])[-1]
                               for t in range(len(tokens))])
            y = y + causal
            y = y + attention(f"{prefix}.multihead_attn", norm(y, f"{prefix}.norm2"), memory)
            y = y + feed_forward(prefix, norm(y, f"{prefix}.norm3"))
        logits = norm(y[-1], "decoder.transformer.norm") @ weights["decoder.fc_out.weight"].T
        logits = logits + weights["decoder.fc_out.bias"]
        shifted = logits - logits.max()
        log_probs = shifted - np.log(np.exp(shifted).sum())
        token = int(log_probs.argmax())
        logprob += float(log_probs[token])
        tokens.append(token)
        if token == EOS_ID:
            break
    return tokens[1:], logprob


@pytest.mark.slow
@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "none"])
def test_decode_agrees_with_an_independent_numpy_decoder(positions: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--architecture", "transformer", "--heads", "2", "--layers", "2", "--hidden", "16",
                     "--positions", positions, "--runs-dir", str(tmp_path), "--steps", "40", "--batch-size", "16",
                     "--val-size", "16", "--eval-every", "40", "--max-len", "5", "--json"]) == 0
    run_dir = Path(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_dir"])
    assert cli.main(["decode", str(run_dir), "--source", "cabd", "--beam", "1", "--json"]) == 0
    decoded = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    loaded = load_checkpoint(run_dir / "checkpoint.pt")
    assert (loaded.config.architecture, loaded.config.positions) == ("transformer", positions)
    weights = {name: value.double().numpy() for name, value in loaded.model.state_dict().items()}
    tokens, logprob = _numpy_greedy(weights, loaded.config, loaded.src_vocab.encode(list("cabd")),
                                    len(decoded["greedy"]["tokens"]))
    assert decoded["greedy"]["tokens"] == [loaded.tgt_vocab.itos[i] for i in tokens]
    assert decoded["greedy"]["logprob"] == pytest.approx(logprob, abs=1e-3)
    assert decoded["beams"][0]["tokens"] == decoded["greedy"]["tokens"]


def test_heads_must_divide_the_width() -> None:
    with pytest.raises(ConfigError) as error:
        TrainConfig(architecture="transformer", hidden_dim=30, heads=4).validate()
    assert [problem.fields for problem in error.value.details] == [("hidden_dim", "heads")]
    TrainConfig(architecture="rnn", hidden_dim=30, heads=4).validate()  # heads do not apply to an RNN


def test_arms_that_differ_by_architecture_train_as_if_alone() -> None:
    base = TrainConfig(hidden_dim=8, heads=2, emb_dim=4, batch_size=8, val_size=16, max_len=5, steps=3,
                       eval_every=3, device="cpu", teacher_forcing_ratio=0.5)
    compare = CompareConfig.build(base, [0.5], variants=[["lstm", "gru"], [], [], ["rnn", "transformer"]])
    configs = compare.configs()
    assert [(config.architecture, config.cell) for config in configs] == [
        ("rnn", "lstm"), ("transformer", "lstm"), ("rnn", "gru")]  # a Transformer has no cell: listed once
    batched = StackedTrainer(configs, workers=1)
    singles = [Trainer(config) for config in configs]
    for _ in range(3):
        for trainer, loss in zip(singles, batched.train_step().losses, strict=True):
            assert loss == pytest.approx(trainer.train_step().loss, abs=1e-5)


def _lesson_snapshot(exact: list[list[float]], beyond: float = 0.0) -> CompareSnapshot:
    """A finished "LSTM or Transformer?" run: `exact[arm][seed]` its final free-running exact match, and every
    model's exact match beyond the training lengths."""
    config = LESSONS["lstm_or_transformer"].config
    rows = [[{Metric.STEP: 400.0, Metric.TRAIN_LOSS: 0.5, Metric.TF_LOSS: 0.3, Metric.FR_LOSS: 0.4,
              Metric.BEYOND_EXACT: beyond, Metric.FR_EXACT: value, Metric.TF_TOKEN_ACC: 0.9,
              Metric.FR_TOKEN_ACC: 0.8}] for values in exact for value in values]
    return CompareSnapshot([arm.label for arm in config.arms()], config.seeds, rows, [{} for _ in rows], 400, 400,
                           60.0, config)


def test_the_lesson_compares_equal_budgets_and_reads_honestly() -> None:
    config = LESSONS["lstm_or_transformer"].config
    assert [(arm.settings()["architecture"], arm.settings()["positions"]) for arm in config.arms()] == [
        ("rnn", "sinusoidal"), ("transformer", "sinusoidal"), ("transformer", "learned")]
    task = build_task(config.base)
    sizes = [parameter_count(model, len(task.src_vocab), len(task.tgt_vocab)) for model in config.configs()[::3]]
    assert max(sizes) < 1.5 * min(sizes)  # roughly equal parameters
    outcome = PREDICTIONS["lstm_or_transformer"].outcome
    ahead = _lesson_snapshot([[0.5, 0.52, 0.55], [0.9, 0.92, 0.95], [0.9, 0.91, 0.93]])
    assert read_lstm_or_transformer(ahead).appeared is True and outcome(ahead) == 0
    assert steps_to_ninety(ahead) == {arm.label: step for arm, step in zip(config.arms(), (None, 400, 400),
                                                                           strict=True)}
    tie = _lesson_snapshot([[0.8, 0.6, 0.7], [0.7, 0.72, 0.66], [0.7, 0.68, 0.72]])
    assert read_lstm_or_transformer(tie).appeared is False and outcome(tie) == 2
    unlearned = _lesson_snapshot([[0.1, 0.12, 0.1], [0.2, 0.1, 0.3], [0.1, 0.15, 0.12]])
    assert read_lstm_or_transformer(unlearned).appeared is False
    assert len(answers("lstm_or_transformer", ahead)) == len(LESSONS["lstm_or_transformer"].questions)
    assert config.base.size_range().beyond  # validation holds sources longer than any in training
    assert set(beyond_training(ahead).values()) == {0.0}
    assert answered("lstm_or_transformer", ahead)[2].facts["beyond_training"] == beyond_training(ahead)


def test_estimate_counts_a_transformers_parameters_and_work() -> None:
    one = TrainConfig(architecture="transformer", heads=2, hidden_dim=32, num_layers=1)
    two = one.replace(num_layers=2)
    task = build_task(one)
    model = Seq2Seq(len(task.src_vocab), len(task.tgt_vocab), 4, 32, 2, architecture="transformer", heads=2)
    assert estimate(two, task).parameters == sum(p.numel() for p in model.parameters())
    assert estimate(two, task).flops_per_step > estimate(one, task).flops_per_step
    assert estimate(two.replace(positions="learned"), task).parameters > estimate(two, task).parameters
