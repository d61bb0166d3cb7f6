"""Headless CLI: lists tasks, trains and writes a run folder, and reports bad flags without a traceback."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from playground import cli
from playground.core.tasks import TASKS
from playground.course import LESSONS
from playground.course.notebook import saved_prediction
from playground.training.checkpoints import load_checkpoint
from playground.training.metrics import DivergedError
from playground.training.run_folder import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    RUN_FILE,
    read_config,
    read_metrics,
)
from playground.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = {"status", "message", "id", "task", "steps", "total_steps", "seconds", "steps_per_second", "device",
                "free_running_exact_match", "teacher_forced_exact_match", "teacher_forced_loss",
                "free_running_loss", "run_dir"}
TINY = ["--hidden", "16", "--emb", "8", "--val-size", "32", "--batch-size", "16", "--max-len", "5"]


def last_json(out: str):
    """The last line of stdout as strict JSON: NaN and Infinity are refused."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(out.splitlines()[-1], parse_constant=refuse)


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """metrics.csv as written, without the wall-clock column."""
    with (run_dir / METRICS_FILE).open() as file:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(file)]


def test_tasks_lists_every_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(TASKS)
    assert all(TASKS[line.split()[0]].description in line for line in lines)


@pytest.mark.slow
def test_train_writes_a_run_folder_and_one_json_line(tmp_path: Path) -> None:
    """The one subprocess test: `python -m playground` end to end."""
    result = subprocess.run(
        [sys.executable, "-m", "playground", "--threads", "1", "train", "--task", "reverse", "--steps", "30",
         "--hidden", "16", "--val-size", "32", "--runs-dir", str(tmp_path), "--json", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # --quiet: no progress bar
    summary = last_json(result.stdout)
    assert set(summary) >= SUMMARY_KEYS
    assert (summary["steps"], summary["total_steps"], summary["status"]) == (30, 30, "finished")
    assert summary["seconds"] > 0 and summary["message"] == ""
    assert 0 <= summary["free_running_exact_match"] <= 1 and 0 <= summary["teacher_forced_exact_match"] <= 1
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == tmp_path and run_dir.name == summary["id"] and "-reverse-cli-" in run_dir.name
    assert {CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, RUN_FILE} <= {p.name for p in run_dir.iterdir()}
    config = read_config(run_dir)
    assert (config.task, config.steps, config.hidden_dim) == ("reverse", 30, 16)
    rows = read_metrics(run_dir)
    assert [row["step"] for row in rows] == list(range(31))  # step 0 is the starting evaluation
    assert rows[-1]["val_fr_exact"] == summary["free_running_exact_match"]
    assert rows[-1]["val_tf_loss"] == summary["teacher_forced_loss"]
    assert load_checkpoint(run_dir / CHECKPOINT_FILE).step == 30
    assert json.loads((run_dir / RUN_FILE).read_text())["status"] == "finished"


def test_progress_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--steps", "5", "--hidden", "8", "--val-size", "16", "--runs-dir", str(tmp_path)]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "5/5 steps" in captured.err and "[####" in captured.err
    assert captured.out.startswith("finished: reverse, 5 of 5 steps") and "steps/s" in captured.out
    assert "{" not in captured.out and "/5 steps" not in captured.out


@pytest.mark.parametrize(("argv", "message"), [
    (["--hidden", "abc"], "error: hidden_dim = 'abc' is not allowed: it must be a whole number"),
    (["--ratio", "1.5"], "error: teacher_forcing_ratio = 1.5 is not allowed: it must be between 0 and 1"),
    (["--lr", "nan"], "error: lr = nan is not allowed"),
    (["--task", "custom"], "error: task needs a CSV file of source,target pairs: none is loaded"),
    (["--task", "custom", "--custom-csv", "no/such.csv"], "error: cannot read the CSV file 'no/such.csv'"),
    (["--min-len", "9", "--max-len", "4"], "error: min_len = 9 is not allowed: it must be at most max_len (4)"),
])
def test_bad_values_exit_2_with_a_message(argv: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--runs-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written for a refused config


@pytest.mark.parametrize(("argv", "message"), [
    (["--threads", "-1", "train"], "argument --threads: '-1' is not allowed"),
    (["train", "--threads", "1"], "unrecognized arguments: --threads 1"),  # a top-level option, before the command
    (["train", "--hiden", "8"], "unrecognized arguments: --hiden 8"),
])
def test_bad_flags_exit_2_from_argparse(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_threads_is_set_before_the_command_runs(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    threads: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    assert cli.main(["--threads", "3", "tasks"]) == 0
    assert cli.main(["tasks"]) == 0  # 0, the default: torch's own choice is left alone
    assert threads == [3]


def test_custom_csv_trains_and_its_pairs_go_into_the_run(tmp_path: Path) -> None:
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("source,target\n" + "".join(f"{w},{w[::-1]}\n" for w in
                                                   ["ab", "bc", "cd", "de", "ef", "fa", "ace", "bdf", "ca", "eb"]))
    assert cli.main(["train", "--task", "custom", "--custom-csv", str(csv_path), *TINY, "--steps", "4",
                     "--quiet", "--runs-dir", str(tmp_path / "runs")]) == 0
    csv_path.unlink()  # the run no longer needs the file
    (run_dir,) = (tmp_path / "runs").iterdir()
    config = read_config(run_dir)
    assert config.task == "custom" and len(config.custom_data) == 16
    assert "custom_pairs.json" in {p.name for p in run_dir.iterdir()}
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
    assert checkpoint.custom is not None and checkpoint.custom.fingerprint == config.custom_data
    assert cli.main(["train", "--resume", str(run_dir), "--steps", "6", "--quiet"]) == 0
    assert load_checkpoint(run_dir / CHECKPOINT_FILE).step == 6


def test_unwritable_runs_dir_is_an_error_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["train", "--steps", "1", "--hidden", "8", "--val-size", "16", "--quiet",
                     "--runs-dir", str(blocker)]) == 4
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1


def test_diverged_run_still_writes_its_folder(tmp_path: Path, forked: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    real_step = Trainer.train_step

    def step_until_4(self: Trainer):
        if self.step == 4:
            raise DivergedError("the training loss became nan at step 5")
        return real_step(self)

    forked.setattr(Trainer, "train_step", step_until_4)
    assert cli.main(["train", "--steps", "10", "--hidden", "8", "--val-size", "16", "--quiet", "--json",
                     "--runs-dir", str(tmp_path)]) == 3
    captured = capsys.readouterr()
    summary = last_json(captured.out)
    assert (summary["status"], summary["steps"]) == ("diverged", 4)
    assert "became nan at step 5" in summary["message"] and "became nan at step 5" in captured.out
    run_dir = Path(summary["run_dir"])
    assert [row["step"] for row in read_metrics(run_dir)] == [0, 1, 2, 3, 4]
    assert load_checkpoint(run_dir / CHECKPOINT_FILE).step == 4
    assert json.loads((run_dir / RUN_FILE).read_text())["status"] == "diverged"


def test_a_diverged_run_exits_3_with_strict_json(tmp_path: Path, forked: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Weights blown to infinity after step 3: its evaluation is NaN, and step 4's loss really diverges."""
    real_step = Trainer.train_step

    def blow_up_at_3(self: Trainer):
        result = real_step(self)
        if self.step == 3:
            with torch.no_grad():
                for parameter in self.model.parameters():
                    parameter.fill_(float("inf"))
        return result

    forked.setattr(Trainer, "train_step", blow_up_at_3)
    assert cli.main(["train", *TINY, "--steps", "10", "--eval-every", "3", "--quiet", "--json",
                     "--runs-dir", str(tmp_path)]) == 3
    out = capsys.readouterr().out
    line = out.splitlines()[-1]
    assert "NaN" not in line and "Infinity" not in line
    summary = last_json(out)
    assert (summary["status"], summary["steps"]) == ("diverged", 3)
    assert summary["message"] == "the training loss became nan at step 4"
    assert summary["teacher_forced_loss"] is None and summary["free_running_loss"] is None  # NaN became null
    rows = read_metrics(Path(summary["run_dir"]))
    assert rows[-1]["step"] == 3 and rows[-1]["val_tf_loss"] != rows[-1]["val_tf_loss"]  # the file keeps the NaN


def test_runs_lists_train_and_compare_runs_of_one_folder(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    runs_dir = str(tmp_path / "runs")
    assert cli.main(["train", *TINY, "--steps", "3", "--quiet", "--json", "--name", "one model",
                     "--runs-dir", runs_dir]) == 0
    trained = last_json(capsys.readouterr().out)
    assert cli.main(["compare", *TINY, "--ratios", "0,1", "--steps", "2", "--quiet", "--json",
                     "--runs-dir", runs_dir]) == 0
    compared = last_json(capsys.readouterr().out)
    assert cli.main(["runs", "--runs-dir", runs_dir, "--json"]) == 0
    out = capsys.readouterr().out
    listed = last_json(out)
    seed_model = {"cell": "lstm", "attention": "none", "reverse_source": "off", "architecture": "rnn",
                  "positions": "sinusoidal", "eos": "predict", "heads": 1}
    sizes = {"smallest": 3, "trained": 5, "tested": 5}
    assert sorted(listed, key=lambda run: run["kind"]) == [
        {"id": compared["id"], "name": "reverse-compare", "kind": "compare", "status": "finished", "step": 2,
         "total_steps": 2, "model": seed_model, "sizes": sizes},
        {"id": trained["id"], "name": "one model", "kind": "train", "status": "finished", "step": 3,
         "total_steps": 3, "model": seed_model, "sizes": sizes}]
    assert [run["id"] for run in listed] == sorted((trained["id"], compared["id"]), reverse=True)  # newest first
    assert trained["id"] in out.splitlines()[0] + out.splitlines()[1]


def test_runs_of_an_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["runs", "--runs-dir", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"no runs in {tmp_path}" and last_json(out[-1]) == []


@pytest.mark.slow
def test_resume_ends_exactly_where_an_uninterrupted_run_ends(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    common = [*TINY, "--eval-every", "20", "--seed", "3", "--quiet", "--json"]
    assert cli.main(["train", *common, "--steps", "40", "--runs-dir", str(tmp_path / "stopped")]) == 0
    stopped = last_json(capsys.readouterr().out)
    assert cli.main(["train", "--resume", stopped["run_dir"], "--steps", "80", "--quiet", "--json"]) == 0
    resumed = last_json(capsys.readouterr().out)
    assert (resumed["id"], resumed["steps"], resumed["total_steps"], resumed["status"]) == (
        stopped["id"], 80, 80, "finished")
    assert cli.main(["train", *common, "--steps", "80", "--runs-dir", str(tmp_path / "fresh")]) == 0
    fresh = last_json(capsys.readouterr().out)
    resumed_dir, fresh_dir = Path(resumed["run_dir"]), Path(fresh["run_dir"])
    resumed_rows, fresh_rows = metric_rows(resumed_dir), metric_rows(fresh_dir)
    assert resumed_rows[-1]["step"] == "80" and resumed_rows[-1]["val_fr_exact"] != ""
    assert resumed_rows[-1] == fresh_rows[-1]  # the final row, every metric column but the wall clock
    assert resumed_rows == fresh_rows  # and every row before it
    assert read_config(resumed_dir) == read_config(fresh_dir)
    resumed_weights = load_checkpoint(resumed_dir / CHECKPOINT_FILE).model.state_dict()
    fresh_weights = load_checkpoint(fresh_dir / CHECKPOINT_FILE).model.state_dict()
    assert resumed_weights.keys() == fresh_weights.keys()
    assert all(torch.equal(resumed_weights[name], fresh_weights[name]) for name in fresh_weights)


def test_resume_refuses_what_it_cannot_continue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs_dir = tmp_path / "runs"
    assert cli.main(["train", *TINY, "--steps", "2", "--quiet", "--json", "--runs-dir", str(runs_dir)]) == 0
    trained = last_json(capsys.readouterr().out)
    assert cli.main(["compare", *TINY, "--ratios", "0,1", "--steps", "2", "--quiet", "--json",
                     "--runs-dir", str(runs_dir)]) == 0
    compared = last_json(capsys.readouterr().out)
    for argv, message in [
        (["--resume", trained["run_dir"]], "give --steps N with N above 2"),
        (["--resume", trained["run_dir"], "--steps", "2"], "give --steps N with N above 2"),
        (["--resume", compared["run_dir"], "--steps", "5"],
         "holds a compare run: continue it with `python -m playground compare --resume"),
        (["--resume", trained["run_dir"], "--steps", "zero"], "steps"),
        (["--resume", str(runs_dir / "nope"), "--steps", "5"], "is not a run folder"),
    ]:
        assert cli.main(["train", *argv, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err
    assert load_checkpoint(Path(trained["run_dir"]) / CHECKPOINT_FILE).step == 2  # untouched


@pytest.mark.slow
def test_compare_resume_ends_exactly_where_an_uninterrupted_comparison_ends(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = [*TINY, "--ratios", "0,1", "--schedules", "linear", "--decay-steps", "30", "--eval-every", "10",
              "--seed", "5", "--quiet", "--json"]
    assert cli.main(["compare", *common, "--steps", "20", "--runs-dir", str(tmp_path / "stopped")]) == 0
    stopped = last_json(capsys.readouterr().out)
    assert cli.main(["compare", "--resume", stopped["run_dir"], "--steps", "40", "--quiet", "--json"]) == 0
    resumed = last_json(capsys.readouterr().out)
    assert (resumed["id"], resumed["steps"], resumed["total_steps"], resumed["status"]) == (
        stopped["id"], 40, 40, "finished")
    assert cli.main(["compare", *common, "--steps", "40", "--runs-dir", str(tmp_path / "fresh")]) == 0
    fresh = last_json(capsys.readouterr().out)
    without_time = [{name: value for name, value in row.items() if name != "wall_seconds"} for row in fresh["rows"]]
    assert [{name: value for name, value in row.items() if name != "wall_seconds"} for row in resumed["rows"]] == (
        without_time)
    resumed_dir, fresh_dir = Path(resumed["run_dir"]), Path(fresh["run_dir"])
    assert metric_rows(resumed_dir) == metric_rows(fresh_dir)
    resumed_models = load_checkpoint(resumed_dir / CHECKPOINT_FILE).models
    fresh_models = load_checkpoint(fresh_dir / CHECKPOINT_FILE).models
    assert len(resumed_models) == len(fresh_models) == 3
    for mine, theirs in zip(resumed_models, fresh_models, strict=True):
        weights = theirs.model.state_dict()
        assert all(torch.equal(value, weights[name]) for name, value in mine.model.state_dict().items())


def test_compare_resume_refuses_other_kinds_and_damaged_folders(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    runs_dir = tmp_path / "runs"
    assert cli.main(["train", *TINY, "--steps", "2", "--quiet", "--json", "--runs-dir", str(runs_dir)]) == 0
    trained = last_json(capsys.readouterr().out)
    assert cli.main(["compare", *TINY, "--ratios", "0,1", "--steps", "2", "--quiet", "--json",
                     "--runs-dir", str(runs_dir)]) == 0
    compared = Path(last_json(capsys.readouterr().out)["run_dir"])
    study = runs_dir / "a-study"
    study.mkdir()
    (study / RUN_FILE).write_text(json.dumps({"name": "study", "kind": "study", "status": "stopped", "step": 0,
                                              "total_steps": 4}))
    damaged = runs_dir / "damaged"
    shutil.copytree(compared, damaged)
    (damaged / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    mismatched = runs_dir / "mismatched"  # its settings say hidden 32, its weights are hidden 16
    shutil.copytree(compared, mismatched)
    saved = json.loads((mismatched / "compare.json").read_text())
    (mismatched / "compare.json").write_text(json.dumps(saved | {"base": saved["base"] | {"hidden_dim": 32}}))
    for folder, message in [
        (compared, "give --steps N with N above 2"),
        (Path(trained["run_dir"]), "holds a train run: continue it with `python -m playground train --resume"),
        (study, "holds a study run: continue it with `python -m playground study --resume a-study"),
        (damaged, "is not a run folder that can be resumed"),
        (mismatched, "is not a run folder that can be resumed"),
        (runs_dir / "nope", "is not a run folder that can be resumed"),
    ]:
        assert cli.main(["compare", "--resume", str(folder), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert load_checkpoint(compared / CHECKPOINT_FILE).step == 2  # untouched


def test_the_cli_uses_the_apps_runs_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    served = tmp_path / "served"
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(served))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *TINY, "--steps", "2", "--test-max-len", "7", "--quiet", "--json"]) == 0
    trained = Path(last_json(capsys.readouterr().out)["run_dir"])
    assert trained.parent == served and not (tmp_path / "runs").exists()
    assert cli.main(["runs", "--json"]) == 0
    (listed,) = last_json(capsys.readouterr().out)
    assert listed["id"] == trained.name and listed["sizes"] == {"smallest": 3, "trained": 5, "tested": 7}
    assert cli.main(["runs", "--runs-dir", str(tmp_path / "elsewhere"), "--json"]) == 0
    assert last_json(capsys.readouterr().out) == []


def test_a_lesson_runs_headless_to_the_reading_and_answers_the_page_shows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lesson"]) == 0
    listed = capsys.readouterr().out
    assert all(key in listed for key in LESSONS)
    for wrong in (["lesson", "nonsense"], ["lesson", "beyond", "--prediction", "3"], ["lesson", "beyond", "--steps",
                                                                                          "-1"]):
        assert cli.main(wrong) == 2
    runs_dir = str(tmp_path / "runs")
    assert cli.main(["lesson", "beyond", "--steps", "4", "--prediction", "1", "--quiet", "--json",
                     "--runs-dir", runs_dir]) == 0
    done = last_json(capsys.readouterr().out)
    assert (done["status"], done["lesson"], done["steps"]) == ("finished", "beyond", 4)
    assert set(done["reading"]) == {"appeared", "why", "text"} and done["reading"]["text"].startswith("After 4 steps")
    assert [answer["question"] for answer in done["answers"]] == list(LESSONS["beyond"].questions)
    assert done["prediction"]["chosen"] == 1 and saved_prediction(Path(done["run_dir"]), 3) == 1  # as the page keeps it
    assert len(done["rows"]) == 4  # γ 0.5 and 1, +EOS and −EOS
    assert cli.main(["runs", "--runs-dir", runs_dir, "--json"]) == 0
    assert [run["id"] for run in last_json(capsys.readouterr().out)] == [done["id"]]
