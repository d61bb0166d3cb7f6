"""The recovery probe and the state drift: against crafted models whose answers are known, and against a plain
example-by-example decoder on trained and variant models."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from playground import cli
from playground.core.config import TrainConfig
from playground.core.tasks import EOS_ID, PAD_ID, SPECIALS, Pair, Task, make_task
from playground.inspection import probe
from playground.inspection.drift import state_drift
from playground.inspection.exposure import Exposure, by_arm
from playground.inspection.probe import Recovery, recovery_probe
from playground.model.attention import Memory
from playground.model.seq2seq import Seq2Seq, StepExtras
from playground.plots.common import arm_colour
from playground.plots.probe_figures import recovery_figure
from playground.reports.probe_reading import recovery_headline
from playground.runs.protocol import RunPlan
from playground.runs.registry import RunRegistry
from playground.training.trainer import Trainer

SHARP = 60.0  # logits this far apart make a softmax one-hot to float precision


class CraftedDecoder(nn.Module):
    """A decoder with a rule for its logits; its state counts the steps, its h is the one-hot of what it emits."""

    def __init__(self, vocab_size: int, rule: str) -> None:
        super().__init__()
        self.vocab_size, self.rule = vocab_size, rule

    def step(self, token: torch.Tensor, state: tuple[torch.Tensor, ...], memory: Memory) -> tuple[
            torch.Tensor, tuple[torch.Tensor, ...], StepExtras]:
        (position,) = state
        if self.rule == "copy input":  # emits the token it is fed: one wrong token, and every later one is wrong
            emitted = token
        else:  # "read source": emits the copy task's answer from the source, whatever it is fed
            source = memory.outputs[..., 0].long()
            real = memory.real.sum(1)
            step = position[0, :, 0].long()
            index = (source.shape[1] - real + step).clamp(max=source.shape[1] - 1)
            emitted = torch.where(step < real, source.gather(1, index[:, None])[:, 0], EOS_ID)
        logits = nn.functional.one_hot(emitted, self.vocab_size).float() * SHARP
        return logits, (position + 1,), StepExtras([{"h": logits / SHARP}], None)


class Crafted(nn.Module):
    """Just what the probe reads of a model: `encode`, `decoder.step` and `sos_id`."""

    def __init__(self, vocab_size: int, rule: str) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # the device the probe puts its tensors on
        self.decoder = CraftedDecoder(vocab_size, rule)
        self.sos_id = SPECIALS.index("<sos>")

    def encode(self, src: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], Memory]:
        return (torch.zeros(1, src.shape[0], 1),), Memory(src[..., None].float(), src != PAD_ID)


@pytest.fixture(scope="module")
def copy_task() -> tuple[Task, list[Pair]]:
    task = make_task("copy", 2, 7, alphabet_size=5)
    rng = random.Random(3)
    return task, [task.sample(rng) for _ in range(80)]


def test_a_model_that_copies_its_input_never_recovers(copy_task: tuple[Task, list[Pair]]) -> None:
    task, pairs = copy_task
    result = recovery_probe(Crafted(len(task.tgt_vocab), "copy input"), task, pairs)
    injected = result.injected > 0
    assert injected.sum() == max(len(t) for _, t in pairs)  # every position before the longest <eos>
    assert np.all(result.recovery[injected] == 0.0) and result.overall == 0.0
    assert np.allclose(result.total_variation[injected], 1.0)  # it emits the wrong token it was fed
    assert np.all(result.true_prefix_error[result.count > 0] > 0)


def test_a_model_that_ignores_its_input_always_recovers(copy_task: tuple[Task, list[Pair]]) -> None:
    task, pairs = copy_task
    result = recovery_probe(Crafted(len(task.tgt_vocab), "read source"), task, pairs)
    injected = result.injected > 0
    assert np.all(result.recovery[injected] == 1.0) and result.overall == 1.0
    assert np.allclose(result.total_variation[injected], 0.0)
    assert np.all(result.true_prefix_error == 0.0) and np.all(result.own_prefix_error == 0.0)
    assert list(result.count) == [sum(len(t) + 1 > k for _, t in pairs) for k in range(result.count.size)]


def test_states_of_a_model_that_ignores_its_input_never_drift(copy_task: tuple[Task, list[Pair]]) -> None:
    task, pairs = copy_task
    drift = state_drift(Crafted(len(task.tgt_vocab), "read source"), task, pairs)
    assert np.all(drift.distance == 0.0) and np.all(drift.apart == 0.0)
    copying = state_drift(Crafted(len(task.tgt_vocab), "copy input"), task, pairs)
    # free running feeds <sos> back forever, teacher forcing the target: apart from step 1 on, one-hot vectors
    # sqrt(2) apart
    assert copying.distance[0] == 0.0 and np.allclose(copying.distance[1:], np.sqrt(2.0))
    assert copying.plane.shape == (2 * copying.count.sum(), 2)
    assert copying.free_running.sum() == copying.count.sum()


def plain_decode(model: Seq2Seq, task: Task, src: list[str], fed: list[int], steps: int, width: int) -> tuple[
        list[int], list[torch.Tensor]]:
    """Up to `steps` output tokens of one source (left-padded to `width`, as in a validation batch), `fed` first and
    then its own argmax, ending at an <eos> of its own; and the next-token distribution at each step."""
    padded = [PAD_ID] * (width - len(src)) + task.src_vocab.encode(src)
    state, memory = model.encode(torch.tensor([padded]))
    token, out, distributions = model.sos_id, [], []
    for t in range(steps):
        logits, state, _ = model.decoder.step(torch.tensor([token]), state, memory)
        distributions.append(torch.softmax(logits[0].float(), -1))
        out.append(fed[t] if t < len(fed) else int(logits.argmax()))
        if t >= len(fed) and out[-1] == EOS_ID:
            break
        token = out[-1]
    return out, distributions


def plain_probe(model: Seq2Seq, task: Task, pairs: list[Pair]) -> dict[str, np.ndarray]:
    """The probe's definitions, one example and one position at a time, through `Decoder.step` alone."""
    longest = max(len(t) for _, t in pairs) + 1
    wrong_true, wrong_own, remaining = np.zeros(longest), np.zeros(longest), np.zeros(longest)
    recovered, injected, distance = np.zeros(longest), np.zeros(longest), np.zeros(longest)

    def run(src: list[str], fed: list[int], steps: int) -> tuple[list[int], list[torch.Tensor]]:
        return plain_decode(model, task, src, fed, steps, max(len(s) for s, _ in pairs))

    def wrong_from(out: list[int], truth: list[int], k: int) -> int:
        return sum(1 for t in range(k, len(truth)) if t >= len(out) or out[t] != truth[t])

    with torch.inference_mode():
        for src, tgt in pairs:
            truth = [*task.tgt_vocab.encode(tgt), EOS_ID]
            own, _ = run(src, [], len(truth))
            _, forced = run(src, truth, len(truth))
            for k in range(len(truth)):
                after, _ = run(src, truth[:k], len(truth))
                wrong_true[k] += wrong_from(after, truth, k)
                wrong_own[k] += wrong_from(own, truth, k)
                remaining[k] += len(truth) - k
                if k == len(truth) - 1:
                    continue
                alphabet = forced[k].clone()
                alphabet[: len(SPECIALS)] = -1.0
                alphabet[truth[k]] = -1.0
                wrong = int(alphabet.argmax())
                out, dists = run(src, [*truth[:k], wrong], len(truth))
                injected[k] += 1
                recovered[k] += wrong_from(out, truth, k + 1) == 0
                distance[k] += 0.5 * float((dists[k + 1] - forced[k + 1]).abs().sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"true_prefix_error": wrong_true / remaining, "own_prefix_error": wrong_own / remaining,
                "recovery": recovered / injected, "total_variation": distance / injected}


def assert_same(result: Recovery, expected: dict[str, np.ndarray]) -> None:
    for name, values in expected.items():
        assert np.allclose(getattr(result, name), values, atol=1e-5, equal_nan=True), name


@pytest.fixture(scope="module")
def trained() -> Trainer:
    torch.manual_seed(0)
    trainer = Trainer(TrainConfig(hidden_dim=24, emb_dim=8, max_len=6, alphabet_size=4, steps=120, val_size=40,
                                  seed=2))
    for _ in range(120):
        trainer.train_step()
    trainer.model.eval()
    return trainer


def test_the_probe_equals_decoding_each_example_and_position_alone(trained: Trainer) -> None:
    """A model part-way through training: some positions right, mistakes, <eos> too early, recoveries."""
    result = recovery_probe(trained.model, trained.task, trained.data.val_pairs)
    assert 0.0 < result.overall < 1.0
    assert_same(result, plain_probe(trained.model, trained.task, trained.data.val_pairs))


def test_chunks_give_the_same_probe(trained: Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = recovery_probe(trained.model, trained.task, trained.data.val_pairs)
    monkeypatch.setattr(probe, "ROW_BUDGET", 30)  # chunks of 4 examples
    chunked = recovery_probe(trained.model, trained.task, trained.data.val_pairs)
    assert_same(chunked, {name: getattr(whole, name) for name in
                          ("true_prefix_error", "own_prefix_error", "recovery", "total_variation")})
    assert chunked.overall == whole.overall


@pytest.mark.parametrize("variant", [{"cell": "gru", "attention": "dot"},
                                     {"attention": "additive", "reverse_source": "on", "num_layers": 2}])
def test_the_probe_reads_every_model_of_the_family(variant: dict[str, object]) -> None:
    trainer = Trainer(TrainConfig(hidden_dim=12, emb_dim=6, max_len=5, alphabet_size=3, val_size=20, seed=1,
                                  **variant))
    for _ in range(30):
        trainer.train_step()
    trainer.model.eval()
    pairs = trainer.data.val_pairs
    assert_same(recovery_probe(trainer.model, trainer.task, pairs), plain_probe(trainer.model, trainer.task, pairs))


def test_drift_is_zero_until_the_first_mistake(trained: Trainer) -> None:
    """Teacher-forced and free-running states agree while the free-running prefix is right: the share of examples
    apart at t is the share whose free-running output was wrong somewhere before t."""
    pairs = trained.data.val_pairs
    drift = state_drift(trained.model, trained.task, pairs)
    apart, count = np.zeros(drift.count.size), np.zeros(drift.count.size)
    with torch.inference_mode():
        for src, tgt in pairs:
            truth = [*trained.task.tgt_vocab.encode(tgt), EOS_ID]
            own, _ = plain_decode(trained.model, trained.task, src, [], len(truth), max(len(s) for s, _ in pairs))
            first_mistake = next((t for t, token in enumerate(own) if token != truth[t]), len(truth))
            for t in range(len(own)):  # the free-running output's states, up to its <eos>
                count[t] += 1
                apart[t] += t > first_mistake
    assert list(drift.count) == list(count)
    assert np.allclose(drift.apart, apart / count)
    assert drift.apart.max() > 0.0 and drift.distance[0] == 0.0
    assert np.all((drift.distance > 0) == (drift.apart > 0))
    assert drift.plane.shape == (2 * count.sum(), 2) and drift.explained.sum() <= 1.0


def exposure(label: str, overall: float) -> Exposure:
    """An Exposure whose probe recovered after `overall` of the injections (the curves do not matter here)."""
    curve = np.array([overall, np.nan])
    return Exposure(label, 10, Recovery(curve, curve, curve, curve, np.array([5, 5]), np.array([5, 0]), overall),
                    None)


def test_the_headline_gives_each_arm_its_mean_over_seeds() -> None:
    models = [exposure("γ = 1, seed 0", 0.1), exposure("γ = 1, seed 1", 0.3), exposure("γ = 0.5, seed 0", 0.5),
              exposure("γ = 0.5, seed 1", 0.6)]
    assert list(by_arm(models)) == ["γ = 1", "γ = 0.5"]
    headline = recovery_headline(models)
    assert headline.index("γ = 1") < headline.index("20.0%") < headline.index("γ = 0.5") < headline.index("55.0%")
    assert "10.0%" in headline and "30.0%" in headline  # the seeds' range
    assert "40.0%" in recovery_headline([exposure("", 0.4)])


def test_recovery_figure_draws_an_arm_in_its_colour_with_a_band_over_seeds() -> None:
    arms = {"γ = 1": [exposure("", 0.1).recovery, exposure("", 0.3).recovery], "γ = 0": [exposure("", 0.5).recovery]}
    figure = recovery_figure(arms)
    lines = [trace for trace in figure.data if trace.mode == "lines+markers"]
    bands = [trace for trace in figure.data if trace.fill == "toself"]
    assert len(lines) == 4 and len(bands) == 2  # recovered and TV per arm; bands for the arm with two seeds
    assert {trace.line.color for trace in lines if trace.legendgroup == "γ = 1"} == {arm_colour("γ = 1")}
    assert np.allclose(lines[0].y[:1], [0.2])  # the mean of the seeds


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = TrainConfig(hidden_dim=16, emb_dim=8, steps=40, eval_every=20, val_size=30, max_len=5)
    run = RunRegistry(tmp_path_factory.mktemp("runs")).launch("probed", RunPlan.train(config))
    run.join(300)
    return run.run_dir


def test_probe_command_ends_with_one_json_line_for_a_run_and_its_checkpoint(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["probe", str(run_dir), "--examples", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (model,) = result["models"]
    assert result["examples"] == 20 and model["recovery"]["count"][0] == 20
    assert set(model) == {"label", "arm", "step", "recovery", "drift"} and model["step"] == 40
    assert model["drift"]["count"][0] == 20 and model["drift"]["distance"][0] == 0.0
    assert cli.main(["probe", str(run_dir / "checkpoint.pt"), "--examples", "20", "--no-drift", "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "drift" not in again["models"][0]
    assert again["models"][0]["recovery"] == model["recovery"]  # the checkpoint regenerates the same examples
    with pytest.raises(SystemExit, match="2"):
        cli.main(["probe", str(run_dir), "--examples", "0"])
