"""Step-through, greedy and beam search, error rates by position, the decode command and the Decode page."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from playground import cli
from playground.core.config import TrainConfig
from playground.core.tasks import PAD_ID
from playground.experiments.comparison import CompareConfig
from playground.inspection.decoding import (
    FED_OWN,
    FED_START,
    FED_TRUE,
    beam_search,
    check_source,
    greedy,
    position_errors,
    position_errors_from,
    sequence_logprob,
    step_through,
)
from playground.runs import registry as runs
from playground.runs.protocol import RunPlan
from playground.runs.registry import RunRegistry
from playground.training.trainer import Trainer
from tests.conftest import new_app

CONFIG = TrainConfig(hidden_dim=16, emb_dim=8, steps=60, eval_every=30, val_size=60, max_len=6)
SOURCES = [list("abc"), list("hgfedc"), list("jjab"), list("abcdef"), list("e")]


@pytest.fixture(scope="module")
def trainer() -> Trainer:
    torch.manual_seed(0)
    trained = Trainer(CONFIG)
    for _ in range(CONFIG.steps):
        trained.train_step()
    trained.model.eval()
    return trained


def decode_args(trainer: Trainer, src: list[str]) -> tuple:
    return trainer.model, trainer.task.src_vocab, trainer.task.tgt_vocab, src, trainer.task.decode_limit(len(src))


@pytest.mark.slow
def test_beam_of_one_is_greedy_and_the_trainers_samples(trainer: Trainer) -> None:
    """sample_predictions decodes a left-padded batch, and padding changes a shorter source's encoding: compare the
    rows as long as the batch's longest (no padding), and every row against greedy_decode itself."""
    pairs = trainer.data.val_pairs
    samples = trainer.sample_predictions(len(pairs))
    longest = max(len(src) for src, _ in pairs)
    compared = 0
    for (src, _), sample in zip(pairs, samples, strict=True):
        found = greedy(*decode_args(trainer, src))
        beam = beam_search(*decode_args(trainer, src), width=1).beams
        assert len(beam) == 1 and beam[0].tokens == found.tokens
        assert beam[0].logprob == pytest.approx(found.logprob, abs=1e-4)
        emitted = found.tokens[:-1] if found.finished else found.tokens
        if len(src) == longest:
            assert trainer.task.tgt_vocab.join(emitted) == sample["prediction"]
            compared += 1
    assert compared
    walk = step_through(*decode_args(trainer, SOURCES[0]))
    assert walk.emitted == greedy(*decode_args(trainer, SOURCES[0])).tokens


@pytest.mark.parametrize("length_norm", [False, True])
def test_beams_are_sorted_scored_teacher_forced_and_at_least_greedy(trainer: Trainer, length_norm: bool) -> None:
    vocab = trainer.task.tgt_vocab
    for src in SOURCES:
        search = beam_search(*decode_args(trainer, src), width=5, length_norm=length_norm)
        scores = [beam.score(length_norm) for beam in search.beams]
        assert scores == sorted(scores, reverse=True) and len(search.beams) == 5
        source = torch.tensor([trainer.task.src_vocab.encode(src)])
        for beam in search.beams:
            assert beam.logprob == pytest.approx(sequence_logprob(trainer.model, source, vocab.encode(beam.tokens)),
                                                 abs=1e-4)
            assert beam.finished == (beam.tokens[-1] == "<eos>")
        if not length_norm:
            assert search.beams[0].logprob >= greedy(*decode_args(trainer, src)).logprob - 1e-5
        assert len(search.history[0]) == 5


def test_a_beam_logprob_is_the_sum_of_its_tokens_logprobs(trainer: Trainer) -> None:
    """Independently of sequence_logprob: the model's forward pass, teacher-forced, token by token."""
    src = SOURCES[1]
    beam = beam_search(*decode_args(trainer, src), width=3).beams[1]
    tgt = torch.tensor([trainer.task.tgt_vocab.encode(beam.tokens)])
    with torch.inference_mode():
        log_probs = torch.log_softmax(trainer.model(torch.tensor([trainer.task.src_vocab.encode(src)]), tgt, 1.0), -1)
    assert beam.logprob == pytest.approx(sum(float(log_probs[0, t, i]) for t, i in enumerate(tgt[0])), abs=1e-4)


def test_step_through_marks_true_and_own_inputs_and_keeps_a_running_logprob(trainer: Trainer) -> None:
    src, tgt = trainer.data.val_pairs[0]
    forced = step_through(*decode_args(trainer, src), tgt, 1.0, top_k=3)
    assert [s.fed_from for s in forced.steps] == [FED_START] + [FED_TRUE] * len(tgt)
    assert [s.fed for s in forced.steps[1:]] == tgt
    free = step_through(*decode_args(trainer, src), tgt, 0.0)
    assert {s.fed_from for s in free.steps[1:]} == {FED_OWN}
    half = step_through(*decode_args(trainer, src), tgt, 0.5, seed=3)
    assert half.steps == step_through(*decode_args(trainer, src), tgt, 0.5, seed=3).steps
    running = 0.0
    for step in forced.steps:
        running += step.logprob
        assert step.running_logprob == pytest.approx(running)
        assert len(step.top) == 3 and step.top[0][0] == step.chosen
        assert [p for _, p in step.top] == sorted((p for _, p in step.top), reverse=True)
    assert forced.capture.decoder[0].h.shape == (len(forced.steps), CONFIG.hidden_dim)


def test_position_errors_on_a_constructed_case() -> None:
    tgt = torch.tensor([[5, 6, 7, 2], [5, 6, 2, PAD_ID], [5, 2, PAD_ID, PAD_ID]])
    tf = torch.tensor([[5, 9, 7, 2], [5, 6, 2, 0], [5, 2, 0, 0]])  # one slip at position 1
    fr = torch.tensor([[5, 9, 9, 9], [9, 6, 2, 0], [5, 2, 0, 0]])  # the slip compounds; row 1 recovers
    errors = position_errors_from(tf, fr, tgt)
    assert errors.count.tolist() == [3, 3, 2, 1]
    assert errors.tf_error.tolist() == pytest.approx([0, 1 / 3, 0, 0])
    assert errors.fr_error.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 2, 1])
    assert errors.at_risk.tolist() == [3, 2, 0, 0]
    assert errors.first_error[:2].tolist() == pytest.approx([1 / 3, 1 / 2])
    assert all(math.isnan(value) for value in errors.first_error[2:])


def test_position_errors_of_a_trained_model_are_rates(trainer: Trainer) -> None:
    errors = position_errors(trainer.model, trainer.task, trainer.data.val_pairs)
    for rates in (errors.tf_error, errors.fr_error):
        assert ((rates >= 0) & (rates <= 1)).all()
    assert errors.count[0] == len(trainer.data.val_pairs)
    assert (errors.at_risk <= errors.count).all()


def test_check_source_names_unknown_symbols_and_notes_long_sources(trainer: Trainer) -> None:
    vocab = trainer.task.src_vocab
    with pytest.raises(ValueError, match=r"'\?', 'z'.*allowed: a b c"):
        check_source(trainer.task, vocab, list("ab?z"))
    assert check_source(trainer.task, vocab, list("abc")) == []
    notes = check_source(trainer.task, vocab, list("abcdefghij"))
    assert notes and f"{trainer.task.decode_limit(10)} steps" in notes[0]
    with pytest.raises(ValueError, match="at most 24"):
        check_source(trainer.task, vocab, list("abcdef" * 5))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs_dir = tmp_path_factory.mktemp("runs")
    run = RunRegistry(runs_dir).launch("tiny", RunPlan.train(CONFIG.replace(steps=4)))
    run.join(120)
    return run.run_dir


def test_decode_command_prints_one_json_line(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["decode", str(run_dir), "--source", "abcd", "--beam", "4", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert set(result) == {"source", "prefix", "greedy", "beams"} and result["source"] == "abcd"
    assert set(result["greedy"]) == {"tokens", "logprob"} and len(result["beams"]) == 4
    assert all(set(beam) == {"tokens", "logprob"} for beam in result["beams"])
    logprobs = [beam["logprob"] for beam in result["beams"]]
    assert logprobs == sorted(logprobs, reverse=True)
    assert cli.main(["decode", str(run_dir / "checkpoint.pt"), "--source", "abcd", "--beam", "1", "--json"]) == 0
    one = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert one["beams"][0]["tokens"] == one["greedy"]["tokens"] == result["greedy"]["tokens"]


def test_decode_command_refuses_unknown_symbols(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["decode", str(run_dir), "--source", "ab?z"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "'?'" in error and "allowed: a b c" in error
    assert cli.main(["decode", str(run_dir), "--source", "abc", "--model", "3"]) == 2


@pytest.mark.usefixtures("fresh_app")
@pytest.mark.slow
def test_decode_page_steps_and_shows_beams() -> None:
    config = CONFIG.replace(steps=4)
    runs.registry().launch("tiny", RunPlan.train(config)).join(60)
    at = new_app().run()
    at.switch_page("app_pages/decode.py")
    at.run()
    assert not at.exception and not at.error
    assert any("**Step 0 of" in m.value for m in at.markdown)
    at.button(key="dc_next").click().run()
    assert any("**Step 1 of" in m.value and "model's own" in m.value for m in at.markdown)
    assert {"dc_top_k_chart", "dc_h_0", "dc_positions"} <= {chart.key for chart in at.get("plotly_chart")}
    beams, steps = at.dataframe  # the final beams, then the beams at each step
    assert len(beams.value) == 3 and list(steps.value.columns) == ["step", "rank", "prefix", "log-prob"]
    at.slider(key="dc_width").set_value(6).run()
    assert not at.exception and len(at.dataframe[0].value) == 6
    at.button(key="dc_prev").click().run()
    assert any("**Step 0 of" in m.value for m in at.markdown)


@pytest.mark.usefixtures("fresh_app")
@pytest.mark.slow
def test_decode_page_shows_every_arm_of_a_comparison() -> None:
    config = CONFIG.replace(steps=4, eval_every=2)
    runs.registry().launch("arms", RunPlan.compare(CompareConfig.build(config, [0.0, 1.0], seeds=1))).join(60)
    at = new_app().run()
    at.switch_page("app_pages/decode.py")
    at.run()
    assert not at.exception and not at.error
    at.toggle(key="dc_all_arms").set_value(True).run()
    assert not at.exception and not at.error
    chart = next(chart for chart in at.get("plotly_chart") if chart.key == "dc_positions")
    lines = [trace for trace in json.loads(chart.proto.spec)["data"] if trace.get("legendgroup") != "key"]
    assert len(lines) == 6  # three lines for each of the two models, one colour each



@pytest.mark.slow
@pytest.mark.usefixtures("fresh_app")
def test_decode_page_shows_a_transformers_cross_attention_per_head() -> None:
    config = CONFIG.replace(steps=4, architecture="transformer", heads=2, num_layers=2)
    runs.registry().launch("tiny transformer", RunPlan.train(config)).join(60)
    at = new_app().run()
    at.switch_page("app_pages/decode.py")
    at.run()
    assert not at.exception and not at.error
    at.button(key="dc_next").click().run()
    charts = {chart.key: chart for chart in at.get("plotly_chart")}
    assert {"dc_top_k_chart", "dc_attention_row", "dc_head_rows", "dc_h_0", "dc_h_1"} <= charts.keys()
    bars = json.loads(charts["dc_head_rows"].proto.spec)["data"]
    assert [bar["name"] for bar in bars] == ["head 1", "head 2"]
