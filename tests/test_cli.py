"""Headless CLI: lists tasks, trains and writes a run folder, and reports bad flags without a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from playground import cli
from playground.core.tasks import TASKS
from playground.training.storage import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    load_checkpoint,
    read_config,
    read_metrics,
)
from playground.training.trainer import DivergedError, Trainer

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = {"free_running_exact_match", "teacher_forced_exact_match", "steps", "seconds", "run_dir"}


def test_tasks_lists_every_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(TASKS)
    assert all(TASKS[line.split()[0]].description in line for line in lines)


def test_train_writes_a_run_folder_and_one_json_line(tmp_path: Path) -> None:
    """The one subprocess test: `python -m playground` end to end."""
    result = subprocess.run(
        [sys.executable, "-m", "playground", "train", "--task", "reverse", "--steps", "30", "--hidden", "16",
         "--runs-dir", str(tmp_path), "--json", "--quiet", "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # --quiet: no progress bar
    summary = json.loads(result.stdout.splitlines()[-1])
    assert set(summary) >= SUMMARY_KEYS
    assert summary["steps"] == 30 and summary["status"] == "finished" and summary["seconds"] > 0
    assert 0 <= summary["free_running_exact_match"] <= 1 and 0 <= summary["teacher_forced_exact_match"] <= 1
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == tmp_path
    assert {CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE} <= {p.name for p in run_dir.iterdir()}
    config = read_config(run_dir)
    assert (config.task, config.steps, config.hidden_dim) == ("reverse", 30, 16)
    rows = read_metrics(run_dir)
    assert [row["step"] for row in rows] == list(range(1, 31))
    assert rows[-1]["val_fr_exact"] == summary["free_running_exact_match"]
    assert load_checkpoint(run_dir / CHECKPOINT_FILE).step == 30


def test_progress_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--steps", "5", "--hidden", "8", "--val-size", "16", "--runs-dir", str(tmp_path)]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "5/5 loss" in captured.err and "steps/s" in captured.err
    assert captured.out.startswith("finished: reverse, 5 steps") and "{" not in captured.out


@pytest.mark.parametrize(("argv", "message"), [
    (["--hidden", "abc"], "error: hidden_dim = 'abc' is not allowed: it must be a whole number"),
    (["--ratio", "1.5"], "error: teacher_forcing_ratio = 1.5 is not allowed: it must be between 0 and 1"),
    (["--lr", "nan"], "error: lr = nan is not allowed"),
    (["--task", "custom"], "error: custom_csv is empty"),
    (["--task", "custom", "--custom-csv", "no/such.csv"], "error: cannot read the CSV file 'no/such.csv'"),
    (["--min-len", "9", "--max-len", "4"], "error: min_len = 9 is not allowed: it must not exceed max_len (4)"),
])
def test_bad_values_exit_2_with_a_message(argv: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--runs-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written for a refused config


@pytest.mark.parametrize(("argv", "message"), [
    (["--threads", "-1"], "argument --threads: '-1' is not allowed"),
    (["--hiden", "8"], "unrecognized arguments: --hiden 8"),
])
def test_bad_flags_exit_2_from_argparse(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["train", *argv])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_unwritable_runs_dir_is_an_error_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["train", "--steps", "1", "--hidden", "8", "--val-size", "16", "--quiet",
                     "--runs-dir", str(blocker)]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_diverged_run_still_writes_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    real_step = Trainer.train_step

    def step_until_4(self: Trainer):
        if self.step == 4:
            raise DivergedError("the training loss became nan at step 5")
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", step_until_4)
    assert cli.main(["train", "--steps", "10", "--hidden", "8", "--val-size", "16", "--quiet", "--json",
                     "--runs-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.splitlines()[-1])
    assert (summary["status"], summary["steps"]) == ("diverged", 4)
    assert "became nan at step 5" in captured.err
    assert len(read_metrics(Path(summary["run_dir"]))) == 4
