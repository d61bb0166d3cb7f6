"""Hostile inputs: a checkpoint or run folder never names a file to read, reads are bounded, exits are honest.

Each test is one probe from the security issue, through the library and the CLI (the browser half is in
tests/browser/test_security_browser.py).
"""

from __future__ import annotations

import builtins
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from playground.cli import main
from playground.core.config import TrainConfig
from playground.core.tasks import MAX_CUSTOM_BYTES, MAX_CUSTOM_VOCAB, TaskError, load_custom_csv, parse_custom_csv
from playground.runs.registry import RunRegistry
from playground.training.storage import CHECKPOINT_FILE, CheckpointError, load_checkpoint, save_checkpoint
from playground.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
TINY = TrainConfig(hidden_dim=8, emb_dim=4, steps=2, val_size=16, batch_size=4, device="cpu")


@pytest.fixture
def never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CSV-shaped server file; opening it in any way fails the test."""
    secret = tmp_path / "secret.csv"
    secret.write_text("source,target\nroot,hunter2\n")
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if Path(str(file)).resolve() == secret.resolve():
            pytest.fail(f"the library opened {secret}")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    return secret


def crafted_checkpoint(config_values: dict) -> bytes:
    """A checkpoint of plain data (weights_only accepts it) whose config says what an attacker wants."""
    trainer = Trainer(TINY)
    payload = {"format": "seq2seq-playground/1", "config": config_values, "step": 0,
               "src_vocab": trainer.task.src_vocab.itos, "tgt_vocab": trainer.task.tgt_vocab.itos,
               "src_separator": "", "tgt_separator": "", "state_dict": trainer.model.state_dict()}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def test_a_checkpoint_naming_a_server_file_is_refused_without_opening_it(never_read: Path) -> None:
    data = crafted_checkpoint(TINY.as_dict() | {"task": "custom", "custom_csv": str(never_read)})
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(data)
    assert "hunter2" not in str(refused.value) and str(never_read) not in str(refused.value)
    assert "needs a CSV file" in str(refused.value)


def test_a_run_folder_naming_a_server_file_is_refused_without_opening_it(never_read: Path, tmp_path: Path) -> None:
    registry = RunRegistry(tmp_path / "runs")
    run_dir = tmp_path / "runs" / "crafted"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"name": "x", "kind": "train", "status": "stopped"}))
    (run_dir / "config.json").write_text(json.dumps(TINY.as_dict() | {"task": "custom",
                                                                        "custom_csv": str(never_read)}))
    (run_dir / CHECKPOINT_FILE).write_bytes(crafted_checkpoint(TINY.as_dict()))
    with pytest.raises(ValueError) as refused:
        registry.get("crafted")
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("values", [
    TINY.as_dict() | {"surprise": 1},
    TINY.as_dict() | {"hidden_dim": "eight"},
    TINY.as_dict() | {"custom_data": "../../etc/passwd"},
], ids=["unknown key", "wrong type", "path as fingerprint"])
def test_a_checkpoint_config_with_unknown_keys_or_wrong_types_is_refused(values: dict) -> None:
    with pytest.raises(CheckpointError, match="config is invalid"):
        load_checkpoint(crafted_checkpoint(values))


def test_custom_pairs_travel_inside_the_checkpoint(tmp_path: Path) -> None:
    pairs = parse_custom_csv(b"source,target\nab,ba\nabc,cba\nbca,acb\ncab,bac\n" * 10)
    config = TINY.replace(task="custom", custom_data=pairs.fingerprint)
    trainer = Trainer(config, pairs)
    path = tmp_path / CHECKPOINT_FILE
    save_checkpoint(path, [("", config, trainer.model.state_dict())], trainer.task, 0, pairs, trainer.resume_state())
    loaded = load_checkpoint(path)
    assert loaded.custom == pairs and loaded.config.custom_data == pairs.fingerprint


def test_dev_zero_is_refused_without_reading_it() -> None:
    with pytest.raises(TaskError, match="the CSV file is not a regular file"):
        load_custom_csv("/dev/zero")


def test_a_csv_over_its_size_limit_is_refused_at_the_limit(tmp_path: Path) -> None:
    large = tmp_path / "large.csv"
    with open(large, "wb") as file:
        file.truncate(MAX_CUSTOM_BYTES + 1)  # sparse: nothing written
    with pytest.raises(TaskError, match="larger than 10,485,760 bytes"):
        load_custom_csv(large)


def test_a_giant_vocabulary_is_refused_with_its_limit() -> None:
    rows = "\n".join(" ".join(f"w{row}x{column}" for column in range(50)) + ",a"
                     for row in range(MAX_CUSTOM_VOCAB // 50 + 1))
    with pytest.raises(TaskError, match="more than 5,000 different tokens"):
        parse_custom_csv(f"source,target\n{rows}\n".encode(), "space")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "playground", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("make_csv", [
    lambda folder: "/dev/zero",
    lambda folder: write(folder / "giant.csv", "source,target\n" + "\n".join(
        f"{' '.join(f'w{i}x{j}' for j in range(40))},a" for i in range(200))),
], ids=["dev zero", "giant vocabulary"])
def test_the_cli_refuses_bad_csvs_in_one_line_with_code_2_and_no_folder(make_csv, tmp_path: Path) -> None:
    result = run_cli("train", "--task", "custom", "--custom-tokenization", "space", "--custom-csv",
                     make_csv(tmp_path), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_an_unexpected_error_is_one_line_and_non_zero(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr("playground.runs.engines.Trainer", explode)
    code = main(["train", "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert code == 1
    assert capsys.readouterr().err == "error: RuntimeError: out of memory\n"
    assert not (tmp_path / "runs").exists()
