"""The model family against an independent plain-torch implementation of its equations (README, "The model").

The reference below reads the weights by their state_dict names and runs one example at a time with Python lists:
the LSTM and GRU equations as torch.nn documents them, Luong attention over the real source positions, the source
read last to first with its left padding kept. Every path of the model (fused, unrolled, `Decoder.step`, the
K-model engine, the CLI's train and decode) is held to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import torch

from bench.steps import Plan, family_cases, family_ratios, measure
from playground import cli
from playground.core.config import ConfigError, TrainConfig
from playground.core.tasks import EOS_ID, PAD_ID, SOS_ID
from playground.course.glossary import TERMS
from playground.course.lessons import (
    LESSONS,
    Why,
    attention_contrast,
    cell_contrast,
    read_attention_cure,
    read_gru_or_lstm,
    read_reversal,
)
from playground.experiments.comparison import CompareSnapshot
from playground.experiments.study_grid import StudyConfig
from playground.inspection.states import capture_arrays, capture_csv
from playground.model.seq2seq import Seq2Seq, sequence_loss
from playground.runs.registry import registry
from playground.runs.train_engine import TrainingEngine
from playground.training.checkpoints import load_checkpoint
from playground.training.cost import estimate
from playground.training.metrics import Metric
from playground.training.stacked import StackedTrainer
from playground.training.trainer import Trainer, build_task
from tests.conftest import new_app

VOCAB, EMB, HIDDEN = 9, 5, 6
VARIANTS = [("lstm", "dot", False), ("lstm", "general", True), ("lstm", "additive", False), ("gru", "none", False),
            ("gru", "additive", True), ("lstm", "none", True)]


def _cell_step(weights: dict[str, torch.Tensor], cell: str, x: torch.Tensor,
               state: list[torch.Tensor]) -> list[torch.Tensor]:
    """One layer, one step, for x (D,): torch.nn.LSTM's or torch.nn.GRU's equations, written out."""
    h = state[0]
    hidden = h.shape[0]
    x_part = weights["weight_ih"] @ x + weights["bias_ih"]
    h_part = weights["weight_hh"] @ h + weights["bias_hh"]
    if cell == "lstm":
        total = x_part + h_part
        i, f = torch.sigmoid(total[:hidden]), torch.sigmoid(total[hidden:2 * hidden])
        g, o = torch.tanh(total[2 * hidden:3 * hidden]), torch.sigmoid(total[3 * hidden:])
        c = f * state[1] + i * g
        return [o * torch.tanh(c), c]
    r = torch.sigmoid(x_part[:hidden] + h_part[:hidden])
    z = torch.sigmoid(x_part[hidden:2 * hidden] + h_part[hidden:2 * hidden])
    n = torch.tanh(x_part[2 * hidden:] + r * h_part[2 * hidden:])
    return [(1 - z) * n + z * h]


def _layers_step(weights: dict[str, torch.Tensor], side: str, cell: str, layers: int, x: torch.Tensor,
                 states: list[list[torch.Tensor]]) -> torch.Tensor:
    prefix = f"{side}.{cell}."
    for k in range(layers):
        layer = {name: weights[f"{prefix}{name}_l{k}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        states[k] = _cell_step(layer, cell, x, states[k])
        x = states[k][0]
    return x


def _attend(weights: dict[str, torch.Tensor], kind: str, h: torch.Tensor, memory: list[torch.Tensor]) -> torch.Tensor:
    """h̃_t = tanh(W_c [c_t; h_t]) over the real source positions' encoder outputs."""
    if kind == "none":
        return h
    prefix = "decoder.attention."
    scores = []
    for h_bar in memory:
        if kind == "dot":
            scores.append(h @ h_bar)
        elif kind == "general":
            scores.append(h @ (weights[f"{prefix}w_a.weight"] @ h_bar))
        else:
            mixed = torch.tanh(weights[f"{prefix}w_a.weight"] @ h + weights[f"{prefix}u_a.weight"] @ h_bar)
            scores.append((weights[f"{prefix}v_a.weight"] @ mixed)[0])
    alpha = torch.softmax(torch.stack(scores), dim=0)
    context = sum(a * h_bar for a, h_bar in zip(alpha, memory, strict=True))
    return torch.tanh(weights[f"{prefix}w_c.weight"] @ torch.cat([context, h]))


def reference_logits(model: Seq2Seq, cell: str, attention: str, reverse: bool, layers: int, src: torch.Tensor,
                     tgt: torch.Tensor, teacher: list[bool]) -> torch.Tensor:
    """Logits (B, L, V), one row at a time; teacher[t] says whether step t reads y_{t-1} (else its own argmax)."""
    weights = dict(model.named_parameters())
    hidden = weights["decoder.fc_out.weight"].shape[1]
    rows = []
    for row_src, row_tgt in zip(src.tolist(), tgt.tolist(), strict=True):
        real = [t for t in row_src if t != PAD_ID]
        pads = [PAD_ID] * (len(row_src) - len(real))  # sources are left-padded
        read = pads + (real[::-1] if reverse else real)
        zero = weights["decoder.fc_out.bias"].new_zeros(hidden)
        states = [[zero] * (2 if cell == "lstm" else 1) for _ in range(layers)]
        table = weights["encoder.embedding.weight"]  # the <pad> row is all zeros and never trained (padding_idx)
        outputs = [_layers_step(weights, "encoder", cell, layers,
                                table[token].detach() if token == PAD_ID else table[token], states) for token in read]
        real_outputs = outputs[len(pads):]
        memory = real_outputs[::-1] if reverse else real_outputs  # in source order
        token, logits = SOS_ID, []
        for t in range(len(row_tgt)):
            if t > 0:
                token = row_tgt[t - 1] if teacher[t] else int(logits[-1].argmax())
            x = weights["decoder.embedding.weight"][token]
            top = _layers_step(weights, "decoder", cell, layers, x.detach() if token == PAD_ID else x, states)
            logits.append(weights["decoder.fc_out.weight"] @ _attend(weights, attention, top, memory)
                          + weights["decoder.fc_out.bias"])
        rows.append(torch.stack(logits))
    return torch.stack(rows)


def _model(cell: str, attention: str, reverse: bool, layers: int, seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(VOCAB, VOCAB, EMB, HIDDEN, layers, cell=cell, attention=attention,
                   reverse_source=reverse).double()


SRC = torch.tensor([[0, 0, 4, 5, 6], [4, 7, 5, 8, 6], [0, 5, 5, 7, 4]])
TGT = torch.tensor([[6, 5, 4, 2, 0, 0], [6, 8, 5, 7, 4, 2], [4, 7, 5, 5, 2, 0]])


@pytest.mark.parametrize(("cell", "attention", "reverse"), VARIANTS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("ratio", [1.0, 0.0, 0.5])
def test_forward_and_gradients_follow_the_equations(cell: str, attention: str, reverse: bool, layers: int,
                                                    ratio: float) -> None:
    model = _model(cell, attention, reverse, layers)
    draws = torch.rand(TGT.shape[1], generator=torch.Generator().manual_seed(3))
    teacher = [True] + [bool(d < ratio) for d in draws[1:]]
    logits = model(SRC, TGT, ratio, coin_draws=draws)
    expected = reference_logits(model, cell, attention, reverse, layers, SRC, TGT, teacher)
    torch.testing.assert_close(logits, expected, atol=1e-9, rtol=1e-7)
    params = list(model.parameters())
    got = torch.autograd.grad(sequence_loss(logits, TGT), params, allow_unused=True)
    want = torch.autograd.grad(sequence_loss(expected, TGT), params, allow_unused=True)
    for name, mine, theirs in zip(dict(model.named_parameters()), got, want, strict=True):
        if theirs is None:
            assert mine is None or not mine.any(), name
        else:
            torch.testing.assert_close(mine, theirs, atol=1e-9, rtol=1e-7, msg=name)


@pytest.mark.parametrize(("cell", "attention", "reverse"), VARIANTS[:4])
def test_the_decoder_step_is_the_fused_decoder(cell: str, attention: str, reverse: bool) -> None:
    """`Decoder.step`, looped, gives the fused teacher-forced logits; attention weights sum to 1 over real tokens."""
    model = _model(cell, attention, reverse, 2).eval()
    state, memory = model.encode(SRC)
    inputs = torch.cat([torch.full((3, 1), SOS_ID), TGT[:, :-1]], dim=1)
    fused, _ = model.decoder(inputs, state, memory)
    stepped = []
    for t in range(inputs.shape[1]):
        logits, state, extras = model.decoder.step(inputs[:, t], state, memory)
        stepped.append(logits)
        assert set(extras.layers[0]) == {*model.decoder.cell.state_names, *model.decoder.cell.gate_names}
        if attention != "none":
            torch.testing.assert_close(extras.attention.sum(-1), torch.ones(3, dtype=torch.float64))
            assert not extras.attention[SRC == PAD_ID].any()
    torch.testing.assert_close(torch.stack(stepped, 1), fused)


def test_weights_keep_the_documented_names() -> None:
    gru = Seq2Seq(VOCAB, VOCAB, EMB, HIDDEN, 2, cell="gru", attention="additive").state_dict()
    assert {"encoder.gru.weight_ih_l0", "decoder.gru.bias_hh_l1", "decoder.fc_out.weight"} <= set(gru)
    assert gru["decoder.attention.v_a.weight"].shape == (1, HIDDEN)
    assert gru["decoder.attention.w_c.weight"].shape == (HIDDEN, 2 * HIDDEN)
    assert {"decoder.attention.w_a.weight", "decoder.attention.u_a.weight"} <= set(gru)
    assert not any(name.startswith("decoder.attention.") and name.endswith("bias") for name in gru)
    general = Seq2Seq(VOCAB, VOCAB, EMB, HIDDEN, attention="general").state_dict()
    assert {name for name in general if "attention" in name} == {"decoder.attention.w_a.weight",
                                                                 "decoder.attention.w_c.weight"}
    default = Seq2Seq(VOCAB, VOCAB, EMB, HIDDEN).state_dict()
    assert not any("attention" in name or "gru" in name for name in default)


def test_k_models_of_a_variant_are_each_its_own_model() -> None:
    config = TrainConfig(cell="gru", attention="dot", reverse_source="on", hidden_dim=HIDDEN, emb_dim=EMB,
                         batch_size=4, val_size=16, max_len=5, device="cpu")
    trainer = StackedTrainer([config.replace(teacher_forcing_ratio=r) for r in (0.0, 1.0)])
    trainer.train_step()
    batch = trainer.data.validation
    src, tgt = batch.src[:3], batch.tgt[:3]
    teacher = torch.tensor([[True] + [False] * (tgt.shape[1] - 1), [True] * tgt.shape[1]])
    logits = trainer.forward(src, tgt, teacher, training=False)
    for k in range(2):
        model = Seq2Seq(len(trainer.task.src_vocab), len(trainer.task.tgt_vocab), EMB, HIDDEN, cell="gru",
                        attention="dot", reverse_source=True)
        model.load_state_dict(trainer.model_state(k))
        expected = reference_logits(model, "gru", "dot", True, 1, src, tgt, teacher[k].tolist())
        torch.testing.assert_close(logits[k], expected, atol=1e-5, rtol=1e-5)


def test_variants_are_settings_with_messages() -> None:
    assert TrainConfig().cell == "lstm" and TrainConfig().attention == "none"
    with pytest.raises(ConfigError, match="attention = 'luong' is not allowed: choose one of none, dot"):
        TrainConfig.from_dict({"attention": "luong"})
    plain, attending = TrainConfig(max_len=16, min_len=12), TrainConfig(max_len=16, min_len=12, attention="additive")
    task = build_task(plain)
    assert estimate(attending, task).flops_per_step > estimate(plain, task).flops_per_step
    # additive attention adds W_a, U_a (H x H), v_a (1 x H) and W_c (H x 2H)
    assert estimate(attending, task).parameters == estimate(plain, task).parameters + 4 * 128**2 + 128
    assert estimate(TrainConfig(cell="gru"), task).parameters < estimate(plain, task).parameters


@pytest.mark.parametrize("flags", [["--cell", "gru", "--reverse-source"], ["--attention", "general"],
                                   ["--attention", "additive", "--layers", "2"]])
@pytest.mark.slow
def test_train_then_decode_agrees_with_the_equations(flags: list[str], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", *flags, "--runs-dir", str(tmp_path), "--steps", "30", "--hidden", "16", "--emb", "8",
                     "--batch-size", "16", "--val-size", "16", "--eval-every", "30", "--max-len", "5", "--json"]) == 0
    run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run_dir = Path(run["run_dir"])
    assert cli.main(["runs", "--runs-dir", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])[0]["model"]
    assert listed == {"cell": "gru" if "gru" in flags else "lstm", "reverse_source": "on" if "--reverse-source" in flags
                      else "off", "attention": flags[flags.index("--attention") + 1] if "--attention" in flags
                      else "none", "architecture": "rnn", "heads": 1, "positions": "sinusoidal",
                      "eos": "predict"}
    assert cli.main(["decode", str(run_dir), "--source", "cabd", "--beam", "1", "--json"]) == 0
    decoded = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    loaded = load_checkpoint(run_dir / "checkpoint.pt")
    config, model = loaded.config, loaded.model
    src = torch.tensor([loaded.src_vocab.encode(list("cabd"))])
    limit = len(decoded["greedy"]["tokens"])
    with torch.no_grad():
        logits = reference_logits(model, config.cell, config.attention, config.reverse_source == "on",
                                  config.num_layers, src, torch.zeros(1, limit, dtype=torch.long),
                                  [True] + [False] * (limit - 1))
    ids = logits[0].argmax(-1).tolist()
    ids = ids[: ids.index(EOS_ID) + 1] if EOS_ID in ids else ids
    assert decoded["greedy"]["tokens"] == [loaded.tgt_vocab.itos[i] for i in ids]
    assert decoded["beams"][0]["tokens"] == decoded["greedy"]["tokens"]
    assert decoded["beams"][0]["logprob"] == pytest.approx(decoded["greedy"]["logprob"], abs=1e-5)


def test_arms_that_differ_by_model_train_as_if_alone() -> None:
    """Models of different shapes train in groups of their own, on the same batches and coins as single runs."""
    base = TrainConfig(emb_dim=8, hidden_dim=12, batch_size=8, val_size=16, max_len=5, steps=3, eval_every=3,
                       device="cpu")
    configs = [base.replace(teacher_forcing_ratio=0.5), base.replace(attention="dot", teacher_forcing_ratio=0.5),
               base.replace(cell="gru", reverse_source="on", teacher_forcing_ratio=0.0)]
    batched = StackedTrainer(configs, workers=1)
    assert [len(group.members) for group in batched.groups] == [1, 1, 1]
    singles = [Trainer(config) for config in configs]
    for _ in range(3):
        losses = batched.train_step().losses
        for trainer, loss in zip(singles, losses, strict=True):
            assert loss == pytest.approx(trainer.train_step().loss, abs=1e-5)
    for k, trainer in enumerate(singles):
        for name, value in batched.model_state(k).items():
            torch.testing.assert_close(value, trainer.model.state_dict()[name], atol=1e-5, rtol=1e-4)


def test_compare_trains_the_product_of_the_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compare", "--attention", "none,dot", "--cell", "lstm", "--ratios", "1", "--seeds", "3",
                     "--steps", "4", "--eval-every", "2", "--hidden", "8", "--emb", "4", "--val-size", "16",
                     "--batch-size", "8", "--runs-dir", str(tmp_path), "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(row["label"], row["ratio"], row["schedule"], row["cell"], row["attention"], row["reverse_source"])
            for row in result["rows"]] == [("γ = 1, no attention", 1.0, "constant", "lstm", "none", "off"),
                                          ("γ = 1, dot attention", 1.0, "constant", "lstm", "dot", "off")]
    dot = result["rows"][1]
    assert dot["fr_exact_ci_low"] <= dot["val_fr_exact"] <= dot["fr_exact_ci_high"]
    assert cli.main(["compare", "--attention", "none,luong", "--runs-dir", str(tmp_path), "--quiet"]) == 2
    assert "attention 'luong' is not allowed" in capsys.readouterr().err


def test_bench_times_the_family_against_the_lstm() -> None:
    plan = Plan(warmup=1, steps=1, repeats=1, scaling_lengths=(), scaling_hidden=())
    rates = measure(family_cases(TrainConfig(hidden_dim=8, emb_dim=4, batch_size=4, val_size=16, device="cpu")),
                    plan)
    ratios = family_ratios(rates)
    assert set(ratios) == {"attention_vs_none", "gru_vs_lstm", "transformer_vs_lstm", "transformer_partial_vs_full"}
    for key, name in (("attention_vs_none", "attention"), ("gru_vs_lstm", "gru"), ("transformer_vs_lstm",
                                                                                   "transformer")):
        assert ratios[key]["gamma_1"] == pytest.approx(rates[f"{name}_gamma_1"] / rates["lstm_gamma_1"], rel=1e-2)
        assert ratios[key]["gamma_0.5"] > 0


def _seeded_snapshot(lesson: str, exact: list[list[float]], by_length: list[list[dict[int, float]]] | None = None,
                     ) -> CompareSnapshot:
    """A finished lesson run: `exact[arm][seed]` its final free-running exact match (and exact match by length)."""
    config = LESSONS[lesson].config
    rows = [[{Metric.STEP: 500.0, Metric.TRAIN_LOSS: 0.5, Metric.FR_EXACT: value, Metric.TF_TOKEN_ACC: 0.9,
              Metric.FR_TOKEN_ACC: 0.8}] for values in exact for value in values]
    lengths = [d for arm in by_length for d in arm] if by_length else [{} for _ in rows]
    return CompareSnapshot([arm.label for arm in config.arms()], config.seeds, rows, lengths, 500, 500, 60.0, config)


def _lengths(short: float, long: list[float]) -> list[dict[int, float]]:
    return [{4: short, 6: short, 8: short, 12: (short + value) / 2, 16: value, 20: value} for value in long]


def test_the_cure_appears_when_attention_holds_long_outputs_beyond_seed_noise() -> None:
    run = _seeded_snapshot("attention", [[0.2, 0.25, 0.2], [0.9, 0.95, 0.92]],
                           [_lengths(0.95, [0.05, 0.1, 0.08]), _lengths(1.0, [0.9, 0.88, 0.93])])
    cured, contrast = read_attention_cure(run), attention_contrast(run)
    assert (cured.appeared, cured.why) == (True, None) and contrast.clear and contrast.ranked(0.02) == 0
    assert contrast.first == pytest.approx([0.05, 0.1, 0.08]) and contrast.second == pytest.approx([0.9, 0.88, 0.93])
    noisy = read_attention_cure(_seeded_snapshot("attention", [[0.5] * 3, [0.5] * 3],
                                                 [_lengths(0.95, [0.1, 0.6, 0.3]), _lengths(0.95, [0.5, 0.1, 0.5])]))
    assert (noisy.appeared, noisy.why) == (False, Why.NOT_LEARNED)  # long outputs about a third right
    assert read_attention_cure(CompareSnapshot(["a", "b"], 3, [[]] * 6, [{}] * 6, 0, 500, 0.0,
                                               LESSONS["attention"].config)).appeared is None


def test_reversal_and_the_cell_say_honestly_when_seeds_cannot_rank_them() -> None:
    helped = read_reversal(_seeded_snapshot("reversal", [[0.4, 0.45, 0.5], [0.8, 0.82, 0.86]]))
    assert (helped.appeared, helped.why) == (True, None)
    hurt = read_reversal(_seeded_snapshot("reversal", [[0.8, 0.82, 0.86], [0.4, 0.45, 0.5]]))
    assert (hurt.appeared, hurt.why) == (False, Why.OPPOSITE)
    tie = read_gru_or_lstm(_seeded_snapshot("gru_or_lstm", [[0.8, 0.6, 0.7], [0.7, 0.72, 0.66]]))
    assert (tie.appeared, tie.why) == (False, Why.WITHIN_NOISE)
    gru = read_gru_or_lstm(_seeded_snapshot("gru_or_lstm", [[0.5, 0.52, 0.55], [0.8, 0.83, 0.85]]))
    assert gru.appeared is True and cell_contrast(_seeded_snapshot("gru_or_lstm", [[0.5, 0.52, 0.55], [
        0.8, 0.83, 0.85]])).ranked(0.0) == 0  # the GRU, the second arm, ahead beyond seed noise


def test_the_glossary_explains_the_family() -> None:
    assert {"attention", "alignment", "context vector", "gru"} <= TERMS.keys()


def test_a_study_compares_models_in_every_condition() -> None:
    study = StudyConfig.build(TrainConfig(hidden_dim=8), ["reverse", "copy"], (6,), (3,), (8,), (1.0,), (), 2,
                              variants=[[], ["none", "dot"], ["off", "on"]])
    assert study.models_per_condition == 4 * 2
    arms = study.conditions()[0].compare.arms()
    assert [(arm.settings()["attention"], arm.settings()["reverse_source"]) for arm in arms] == [
        ("none", "off"), ("none", "on"), ("dot", "off"), ("dot", "on")]
    assert StudyConfig.from_dict(json.loads(json.dumps(study.as_dict()))) == study
    with pytest.raises(ConfigError, match="cell 'rnn' is not allowed"):
        StudyConfig.build(TrainConfig(), ["reverse"], variants=[["rnn"], [], []])


@pytest.mark.usefixtures("fresh_app")
@pytest.mark.slow
def test_the_compare_page_trains_arms_that_differ_by_model() -> None:
    at = new_app().run()
    at.switch_page("app_pages/compare.py").run()
    for key, value in (("hidden_dim", 8), ("emb_dim", 4), ("steps", 4), ("eval_every", 2),
                       ("batch_size", 8), ("val_size", 16)):
        at.number_input(key=key).set_value(value)
    at.multiselect(key="compare_ratios").set_value([1.0]).run()
    at.multiselect(key="compare_attentions").set_value(["none", "dot"]).run()
    assert not at.exception and not at.error
    shared = parse_qs(urlsplit(at.code[0].value).query)  # the Share box holds the arms that differ by model
    assert shared["compare_attentions"] == ["none", "dot"] and shared["compare_ratios"] == ["1"]
    at.button(key="compare_start").click().run()
    run = registry().get(at.session_state.compare_run_id)
    run.join(120)
    at.run()
    assert run.status == "finished" and not at.exception
    assert list(at.dataframe[0].value["arm"]) == ["γ = 1, no attention", "γ = 1, dot attention"]


def test_a_training_run_previews_its_alignment_without_disturbing_training() -> None:
    engine = TrainingEngine.create(TrainConfig(attention="general", cell="gru", dropout=0.3, hidden_dim=8, emb_dim=4,
                                               batch_size=4, val_size=16, max_len=5, device="cpu"))
    engine.trainer.model.train()
    engine.refresh_views()
    capture = engine.preview
    assert engine.trainer.model.training
    assert capture.attention.shape == (len(capture.predicted), len(capture.src_tokens))
    np.testing.assert_allclose(capture.attention.sum(1), 1.0, rtol=1e-5)
    assert set(capture.decoder[0].gates) == {"r", "z", "n"} and capture.decoder[0].c is None
    assert capture_arrays(capture)["attention"].shape == capture.attention.shape
    rows = [line for line in capture_csv(capture).splitlines() if line.startswith("attention,")]
    assert len(rows) == capture.attention.size

