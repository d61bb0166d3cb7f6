"""Hostile inputs: a checkpoint or run folder never names a file to read, reads are bounded, exits are honest.

Each test is one probe from the security issue, through the library and the CLI (the browser half is in
tests/browser/test_security_browser.py).
"""

from __future__ import annotations

import builtins
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from playground.cli import main
from playground.core.config import TrainConfig
from playground.core.files import DamagedFile
from playground.core.tasks import MAX_CUSTOM_BYTES, MAX_CUSTOM_VOCAB, TaskError, load_custom_csv, parse_custom_csv
from playground.runs.protocol import RunPlan
from playground.runs.registry import RunRegistry
from playground.training.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from playground.training.run_folder import CHECKPOINT_FILE
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
@pytest.mark.slow
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

    monkeypatch.setattr("playground.runs.registry.footprint", explode)
    code = main(["train", "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert code == 1
    assert capsys.readouterr().err == "error: RuntimeError: out of memory\n"
    assert not (tmp_path / "runs").exists()


# Crafted run folders and checkpoints (issue 25): each is refused with its message, and the process that refuses
# them allocates little: the probe runs in a subprocess and reports its peak resident memory (ru_maxrss) after each
# case against its own peak once everything is imported.

PROBE = r"""
import json, resource, sys
from pathlib import Path
from playground.runs.registry import RunRegistry
from playground.training.checkpoints import load_checkpoint

def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

runs = RunRegistry(Path(sys.argv[1]))
actions = {"checkpoint": lambda arg: load_checkpoint(Path(arg)), "open": runs.get, "metrics": runs.metrics_file,
           "download": runs.checkpoint_file, "delete": runs.delete,
           "list": lambda arg: " ".join(sorted(summary.id for summary in runs.list()))}
baseline = peak()
results = []
for action, arg in json.loads(sys.argv[2]):
    try:
        message = f"returned: {actions[action](arg)}"
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
    results.append({"message": message, "growth": peak() - baseline})
print(json.dumps(results))
"""
MAX_GROWTH = 200 * 1024**2


def tiny_run(runs_dir: Path) -> Path:
    """A real two-step training run folder, made by the CLI."""
    assert main(["train", "--hidden-dim", "8", "--emb-dim", "4", "--steps", "2", "--val-size", "16", "--batch-size",
                 "4", "--device", "cpu", "--runs-dir", str(runs_dir), "--name", "tiny", "--quiet"]) == 0
    (run_dir,) = runs_dir.iterdir()
    return run_dir


def variant(run_dir: Path, name: str, change) -> str:
    """A copy of the run folder under another id, changed by `change(folder)`."""
    copy = run_dir.with_name(name)
    shutil.copytree(run_dir, copy)
    change(copy)
    return name


def resaved_payload(checkpoint: Path, change) -> bytes:
    payload = torch.load(checkpoint, weights_only=True)
    change(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def poisoned_weights(payload: dict) -> None:
    payload["models"][0]["state_dict"]["decoder.fc_out.bias"].fill_(float("nan"))


def huge_vocabulary(payload: dict) -> None:
    """100,000 more tokens on each side and the largest sizes: building this model would take about 0.8 GB (its
    pickle stays within the opcode bound, so the vocabulary's own bound refuses it)."""
    for side in ("src_vocab", "tgt_vocab"):
        payload[side] = payload[side] + [f"t{index}" for index in range(100_000)]
    payload["models"][0]["config"] |= {"hidden_dim": 1024, "emb_dim": 512}


def deflated_gigabyte(checkpoint: Path, target: Path) -> None:
    """The checkpoint with its largest tensor's storage replaced by 1 GiB of zeros, DEFLATE-compressed to a few
    megabytes (torch's zip reader inflates it when the tensor is loaded)."""
    with (zipfile.ZipFile(checkpoint) as source,
          zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive):
        largest = max((entry for entry in source.infolist() if "/data/" in entry.filename),
                      key=lambda entry: entry.file_size)
        for entry in source.infolist():
            if entry is not largest:
                archive.writestr(entry, source.read(entry))  # stored, as torch wrote it
        with archive.open(largest.filename, "w", force_zip64=True) as stream:
            chunk = bytes(16 * 1024**2)
            for _ in range(64):
                stream.write(chunk)


def symlink(link: Path, target: str | Path) -> None:
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


@pytest.mark.slow
def test_crafted_run_folders_and_checkpoints_are_refused_with_their_message_in_bounded_memory(
        tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    run_dir = tiny_run(runs_dir)
    checkpoint = run_dir / CHECKPOINT_FILE
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    (crafted / "vocabulary.pt").write_bytes(resaved_payload(checkpoint, huge_vocabulary))
    (crafted / "nan.pt").write_bytes(resaved_payload(checkpoint, poisoned_weights))
    deflated_gigabyte(checkpoint, crafted / "deflated.pt")
    assert (crafted / "deflated.pt").stat().st_size < 8 * 1024**2
    linked = variant(run_dir, "linked-files", lambda folder: (symlink(folder / "metrics.csv", "/etc/passwd"),
                                                              symlink(folder / CHECKPOINT_FILE, "/dev/zero")))
    fifo_run = variant(run_dir, "fifo-run", lambda folder: fifo(folder / "run.json"))
    mismatch = variant(run_dir, "mismatch", lambda folder: (folder / "config.json").write_text(
        (folder / "config.json").read_text().replace('"hidden_dim": 8', '"hidden_dim": 16')))
    damaged = variant(run_dir, "damaged-metrics", lambda folder: (folder / "metrics.csv").write_text(
        "step,train_loss\n1,not-a-number\n"))
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(run_dir, elsewhere)
    symlink(runs_dir / "linked-folder", elsewhere)
    cases = [
        (("checkpoint", str(crafted / "vocabulary.pt")), "refused: a vocabulary holds 100,0[0-9]+ tokens; at most"),
        (("checkpoint", str(crafted / "deflated.pt")), "holds compressed entries"),
        (("checkpoint", str(crafted / "nan.pt")), "decoder.fc_out.bias hold values that are not finite"),
        (("checkpoint", "/dev/zero"), "is not a regular file"),
        (("metrics", linked), "metrics.csv is a symbolic link"),
        (("download", linked), "checkpoint.pt is a symbolic link"),
        (("open", linked), "the checkpoint is a symbolic link"),
        (("list", ""), "returned: " + " ".join(sorted([run_dir.name, linked, fifo_run, mismatch, damaged])) + "$"),
        (("open", fifo_run), "run.json of run fifo-run is damaged"),
        (("open", "linked-folder"), "run linked-folder is not a real folder inside the runs folder"),
        (("delete", "linked-folder"), "run linked-folder is not a real folder inside the runs folder"),
        (("open", mismatch), "config.json does not match checkpoint.pt: Error"),
        (("open", damaged), "metrics.csv is damaged"),
        (("open", "x" * 300), "is not a run id"),
    ]
    probe = subprocess.run([sys.executable, "-c", PROBE, str(runs_dir), json.dumps([case for case, _ in cases])],
                           capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert probe.returncode == 0, probe.stderr
    results = json.loads(probe.stdout.splitlines()[-1])
    for ((action, argument), expected), result in zip(cases, results, strict=True):
        assert re.search(expected, result["message"]), (action, argument, result["message"])
        assert "Traceback" not in result["message"] and str(tmp_path) not in result["message"]
        assert result["growth"] < MAX_GROWTH, (action, argument, result["growth"] / 1024**2)
    assert (elsewhere / CHECKPOINT_FILE).is_file()  # Delete refused; the folder the link names is untouched


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda folder: (folder / "config.json").write_text(
        (folder / "config.json").read_text().replace('"hidden_dim": 8', '"hidden_dim": 16')),
     "config.json does not match checkpoint.pt"),
    (lambda folder: (folder / "metrics.csv").write_text("step,train_loss\n1,not-a-number\n"),
     "metrics.csv is damaged"),
], ids=["config disagrees with checkpoint", "damaged metrics"])
def test_resuming_a_damaged_run_folder_exits_2_with_one_line(damage, expected: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tiny_run(tmp_path / "runs")
    damage(run_dir)
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--steps", "4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1


def test_a_run_json_saying_running_from_a_dead_process_resumes_and_holds_no_slot(tmp_path: Path) -> None:
    run_dir = tiny_run(tmp_path / "runs")
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps(info | {"status": "running"}))
    registry = RunRegistry(tmp_path / "runs", max_active=1)
    assert [summary.status for summary in registry.list()] == ["stopped"]
    stale = registry.get(run_dir.name)
    assert stale.status == "stopped" and not stale.active
    other = registry.launch("other", RunPlan.train(TINY))  # the one slot is free
    other.join(60)
    stale.continue_to(4)
    stale.start()
    stale.join(60)
    assert (stale.status, stale.step) == ("finished", 4)


def test_a_study_file_naming_a_condition_in_superscript_digits_is_damaged_not_a_crash(tmp_path: Path) -> None:
    from playground.experiments.study_grid import StudyConfig
    from playground.runs.study_engine import StudyEngine
    from playground.training.run_folder import STUDY_FILE

    config = StudyConfig.build(TINY, ["reverse"], [6], [], [8], [0.0, 1.0], [], 2)
    (tmp_path / STUDY_FILE).write_text(json.dumps({"config": config.as_dict(), "results": {"²": {}}}))
    with pytest.raises(DamagedFile, match="names condition '²', which this study does not have"):
        StudyEngine.load(tmp_path)


def test_decode_of_a_checkpoint_with_nan_weights_exits_2_instead_of_an_empty_answer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tiny_run(tmp_path / "runs")
    poisoned = tmp_path / "nan.pt"
    poisoned.write_bytes(resaved_payload(run_dir / CHECKPOINT_FILE, poisoned_weights))
    capsys.readouterr()
    assert main(["decode", str(poisoned), "--source", "abc", "--json"]) == 2
    err = capsys.readouterr().err
    assert "not finite" in err and err.count("\n") == 1
