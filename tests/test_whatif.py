"""What-if decoding: output tokens fed first, then greedy decoding and beam search continue; checked against a plain
torch decoder built from the checkpoint's weights alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from playground import cli
from playground.core.config import TrainConfig
from playground.inspection.decoding import FED_CHOSEN, FED_OWN, FED_START, beam_search, greedy, step_through
from playground.runs.protocol import RunPlan
from playground.runs.registry import RunRegistry

CONFIG = TrainConfig(hidden_dim=16, emb_dim=8, steps=80, eval_every=40, val_size=40, max_len=6, num_layers=2)
SOS, EOS = 1, 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = RunRegistry(tmp_path_factory.mktemp("runs")).launch("what-if", RunPlan.train(CONFIG))
    run.join(300)
    return run.run_dir


class PlainDecoder:
    """The specification's LSTM encoder-decoder in plain torch modules, loaded from a checkpoint's state_dict."""

    def __init__(self, checkpoint: Path) -> None:
        payload = torch.load(checkpoint, weights_only=True)
        weights, config = payload["models"][0]["state_dict"], payload["models"][0]["config"]
        self.src_stoi = {token: i for i, token in enumerate(payload["src_vocab"])}
        self.tgt_itos = payload["tgt_vocab"]
        self.tgt_stoi = {token: i for i, token in enumerate(self.tgt_itos)}

        def part(module: nn.Module, prefix: str) -> nn.Module:
            module.load_state_dict({name.removeprefix(prefix): value for name, value in weights.items()
                                    if name.startswith(prefix)})
            return module.eval()

        size, hidden, layers = len(payload["src_vocab"]), config["hidden_dim"], config["num_layers"]
        self.src_embedding = part(nn.Embedding(size, config["emb_dim"]), "encoder.embedding.")
        self.encoder = part(nn.LSTM(config["emb_dim"], hidden, layers, batch_first=True), "encoder.lstm.")
        self.tgt_embedding = part(nn.Embedding(len(self.tgt_itos), config["emb_dim"]), "decoder.embedding.")
        self.decoder = part(nn.LSTM(config["emb_dim"], hidden, layers, batch_first=True), "decoder.lstm.")
        self.fc_out = part(nn.Linear(hidden, len(self.tgt_itos)), "decoder.fc_out.")

    @torch.inference_mode()
    def decode(self, source: str, prefix: str, limit: int) -> tuple[list[str], float]:
        """The prefix fed first, then the argmax until <eos> or `limit` tokens; the sum of every token's log p."""
        src = torch.tensor([[self.src_stoi[symbol] for symbol in source]])
        _, state = self.encoder(self.src_embedding(src))
        token, output, logprob = SOS, [], 0.0
        while len(output) < limit:
            out, state = self.decoder(self.tgt_embedding(torch.tensor([[token]])), state)
            log_probs = torch.log_softmax(self.fc_out(out[0, 0]), -1)
            token = self.tgt_stoi[prefix[len(output)]] if len(output) < len(prefix) else int(log_probs.argmax())
            output.append(self.tgt_itos[token])
            logprob += float(log_probs[token])
            if token == EOS and len(output) > len(prefix):
                break
        return output, logprob


@pytest.mark.parametrize(("source", "prefix"), [("abcde", "fa"), ("abcde", "e"), ("hgf", "aaaa"), ("cab", "")])
def test_decode_prefix_equals_a_plain_decoder_fed_the_same_prefix(
        run_dir: Path, capsys: pytest.CaptureFixture[str], source: str, prefix: str) -> None:
    assert cli.main(["decode", str(run_dir), "--source", source, "--prefix", prefix, "--beam", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["prefix"] == list(prefix)
    tokens, logprob = PlainDecoder(run_dir / "checkpoint.pt").decode(source, prefix, 7)  # the decoding limit
    assert result["greedy"]["tokens"] == tokens and result["greedy"]["tokens"][: len(prefix)] == list(prefix)
    assert result["greedy"]["logprob"] == pytest.approx(logprob, abs=1e-3)
    for beam in result["beams"]:
        assert beam["tokens"][: len(prefix)] == list(prefix)
    assert result["beams"][0]["logprob"] >= result["greedy"]["logprob"] - 1e-5


def test_decode_refuses_a_prefix_it_cannot_feed(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["decode", str(run_dir), "--source", "abc", "--prefix", "a?"]) == 2
    assert "'?'" in capsys.readouterr().err
    assert cli.main(["decode", str(run_dir), "--source", "abc", "--prefix", "abcdefg"]) == 2  # the limit is 7
    assert "at most 6" in capsys.readouterr().err


def test_a_step_through_overruled_by_a_prefix(run_dir: Path) -> None:
    """The prefix's tokens are fed first and marked as chosen where the model would have said another; then the
    model continues on its own, as greedy decoding from the prefix does."""
    trained = RunRegistry(run_dir.parent).get(run_dir.name).models()[0]
    vocabs = (trained.task.src_vocab, trained.task.tgt_vocab)
    src = list("abcde")
    own = greedy(trained.model, *vocabs, src, 7).tokens
    overruled = "a" if own[0] != "a" else "b"
    walk = step_through(trained.model, *vocabs, src, 7, prefix=[own[0], overruled])
    after = greedy(trained.model, *vocabs, src, 7, [own[0], overruled])
    assert [step.fed for step in walk.steps[1:]] == after.tokens[:-1]
    assert [step.fed_from for step in walk.steps[:3]] == [FED_START, FED_OWN, FED_CHOSEN]
    assert {step.fed_from for step in walk.steps[3:]} <= {FED_OWN}
    assert walk.steps[1].chosen == own[0] and walk.steps[1].chosen != overruled
    assert walk.steps[-1].running_logprob == pytest.approx(after.logprob, abs=1e-4)
    search = beam_search(trained.model, *vocabs, src, 7, 1, prefix=[own[0], overruled])
    assert search.beams[0].tokens == after.tokens and len(search.history[0]) == 1
