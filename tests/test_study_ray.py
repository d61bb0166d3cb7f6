"""Studies on a local Ray instance (started once for this module, 2 workers): CLI end to end, reopen, resume,
and the Study page (its defaults and messages need no Ray; a tiny study started from it does)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from playground import cli
from playground.analysis.compare import CompareConfig
from playground.runs import ray_study
from playground.runs import registry as runs
from playground.runs.ray_study import STUDY_FILE, cell_reports, connect
from playground.runs.registry import RunRegistry
from playground.training.storage import read_json, write_json
from tests.test_study import study_page

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--tasks", "reverse", "--max-len", "4", "--hidden", "8,12", "--ratios", "0,1", "--seeds", "2",
        "--steps", "20", "--eval-every", "10", "--val-size", "32", "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    connect(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def study_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    runs_dir = tmp_path_factory.mktemp("runs")
    captured = {}
    code = cli.main(["study", *TINY, "--runs-dir", str(runs_dir), "--json"])
    captured["code"], captured["runs_dir"] = code, runs_dir
    return captured


def test_cli_study_ends_with_strict_json(study_run: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    assert study_run["code"] == 0
    runs_dir = Path(str(study_run["runs_dir"]))
    (run_dir,) = runs_dir.iterdir()
    saved = read_json(run_dir / STUDY_FILE)
    assert sorted(saved["results"]) == ["0", "1"] and all(r["done"] for r in saved["results"].values())
    assert cli.main(["runs", "--runs-dir", str(runs_dir), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (listed["kind"], listed["status"], listed["step"], listed["total_steps"]) == ("study", "finished", 40, 40)


def test_cli_json_line_has_cells_means_cis_and_tests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["study", *TINY, "--hidden", "8", "--runs-dir", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (result["status"], result["cells_done"], result["cells_total"]) == ("finished", 1, 1)
    (cell,) = result["cells"]
    assert [arm["arm"] for arm in cell["arms"]] == ["γ = 0", "γ = 1"] and cell["step"] == 20
    assert len(cell["arms"][0]["val_fr_exact"]["ci"]) == 2
    assert {"a", "b", "p", "within_seed_noise"} <= cell["tests"][0].keys()


def test_bad_grid_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["study", "--tasks", "reverse,nope", "--seeds", "1", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "task 'nope' is not allowed" in err and "at least two seeds" in err


def test_reopened_unfinished_study_trains_only_cells_not_done(study_run: dict[str, object]) -> None:
    runs_dir = Path(str(study_run["runs_dir"]))
    (run_dir,) = runs_dir.iterdir()
    saved = read_json(run_dir / STUDY_FILE)
    kept = saved["results"]["0"]
    del saved["results"]["1"]  # as if the study had been stopped before cell 1 finished
    write_json(run_dir / STUDY_FILE, saved)
    write_json(run_dir / "run.json", read_json(run_dir / "run.json") | {"status": "stopped", "step": 20})
    study = RunRegistry(runs_dir).get(run_dir.name)  # a fresh registry: as after a restart
    assert (study.kind, study.status, study.step, study.total_steps) == ("study", "stopped", 20, 40)
    study.continue_to(study.total_steps)
    study.start()
    study.join(120)
    assert study.status == "finished"
    results = read_json(run_dir / STUDY_FILE)["results"]
    assert results["0"] == kept and results["1"]["done"] and results["1"]["step"] == 20


@pytest.mark.usefixtures("fresh_app")
def test_a_tiny_study_from_the_page() -> None:
    at = study_page()
    for key, value in (("study_tasks", ["reverse"]), ("study_max_lens", [4]), ("study_hiddens", [8]),
                       ("study_ratios", [0.0, 1.0]), ("study_schedules", [])):
        at.multiselect(key=key).set_value(value)
    for key, value in (("study_seeds", 2), ("study_steps", 20), ("study_eval_every", 10)):
        at.number_input(key=key).set_value(value)
    at.run()
    assert not at.error
    at.button(key="study_start").click().run()
    study = runs.registry().get(at.session_state.study_run_id)
    study.join(120)
    at.run()
    assert study.status == "finished" and not at.exception
    (chart,) = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert [trace["name"] for trace in chart["data"]] == ["γ = 0", "γ = 1"]
    assert "%" in chart["layout"]["yaxis"]["title"]["text"]
    assert any("95% confidence interval" in markdown.value for markdown in at.markdown)


def test_stop_cancels_the_cells_and_keeps_what_was_reported(tmp_path: Path) -> None:
    from playground.analysis.study import StudyConfig
    from playground.core.config import TrainConfig
    from playground.runs.ray_study import StudyEngine

    config = StudyConfig.build(TrainConfig(steps=100_000, eval_every=10, val_size=32, batch_size=16), ["reverse"],
                               [4], [2], [8], [0, 1], [], 2)
    engine = StudyEngine(config)
    study = RunRegistry(tmp_path).launch("long", engine, config.base)
    for _ in range(600):
        if study.step > 0:
            break
        study.join(0.1)
    study.stop()
    study.join(30)
    assert study.status == "stopped" and 0 < study.step < study.total_steps
    assert not engine._running  # halted: the Ray task is cancelled
    saved = read_json(study.run_dir / STUDY_FILE)["results"]["0"]
    assert not saved["done"] and saved["step"] >= 10


@ray.remote(num_cpus=1, num_returns="streaming", max_retries=0)
def fails_at_hidden_12(compare: CompareConfig) -> Iterator[dict[str, object]]:
    """A cell task that dies (as a lost worker or an exception would) for hidden size 12, trains otherwise."""
    if compare.base.hidden_dim == 12:
        raise RuntimeError("simulated failure of the worker")
    yield from cell_reports(compare)


def test_a_failing_cell_is_tried_twice_then_recorded_and_the_rest_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(ray_study, "train_cell", fails_at_hidden_12)
    submitted: list[int] = []
    submit = ray_study.StudyEngine._submit
    monkeypatch.setattr(ray_study.StudyEngine, "_submit",
                        lambda engine, cell: (submitted.append(cell.hidden), submit(engine, cell))[1])
    code = cli.main(["study", *TINY, "--runs-dir", str(tmp_path), "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 4  # finished, but not every cell
    assert sorted(submitted) == [8, 12, 12]
    assert (result["status"], result["groups_failed"], result["cells_done"]) == ("finished", 1, 1)
    failed = next(cell for cell in result["cells"] if cell["hidden"] == 12)
    assert "simulated failure" in failed["failed"] and failed["arms"] == []
    assert next(cell for cell in result["cells"] if cell["hidden"] == 8)["done"]


def test_a_killed_study_resumes_with_its_done_cells_reused_and_ends_as_if_never_killed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL of a real `study` process (and its Ray) once a save shows the quick cell done and the slow one not;
    `--resume` trains only the slow cell, and the final table equals an uninterrupted run's."""
    grid = ["--tasks", "reverse", "--max-len", "4", "--hidden", "8,96", "--ratios", "0,1", "--seeds", "2",
            "--steps", "160", "--eval-every", "40", "--val-size", "32", "--batch-size", "16", "--quiet"]
    killed_dir, whole_dir = tmp_path / "killed", tmp_path / "whole"
    process = subprocess.Popen([sys.executable, "-m", "playground", "--threads", "1", "study", *grid, "--runs-dir",
                                str(killed_dir)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # its own process group: Ray's processes die with it
    deadline, saved = time.monotonic() + 120, {}
    while time.monotonic() < deadline and process.poll() is None:
        files = list(killed_dir.glob(f"*/{STUDY_FILE}"))
        saved = read_json(files[0])["results"] if files else {}
        if sum(result["done"] for result in saved.values()) == 1:
            break
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert sum(result["done"] for result in saved.values()) == 1, f"no save caught one cell done: {saved}"
    (run_dir,) = killed_dir.iterdir()
    assert RunRegistry(killed_dir).get(run_dir.name).status == "stopped"  # listed, resumable
    assert cli.main(["study", "--resume", run_dir.name, "--runs-dir", str(killed_dir), "--quiet", "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (resumed["groups_total"], resumed["groups_reused"], resumed["groups_run"]) == (2, 1, 1)
    assert cli.main(["study", *grid, "--runs-dir", str(whole_dir), "--json"]) == 0
    whole = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (whole["groups_reused"], whole["groups_run"]) == (0, 2)
    assert resumed["cells"] == whole["cells"]


RAY_FROM_A_THREAD_THAT_ENDS = """
import threading, time, ray
from playground.runs.ray_study import connect
starter = threading.Thread(target=connect, kwargs={"num_cpus": 1})
starter.start()
starter.join()  # as a run's thread ends when its study is done
time.sleep(2)
print(ray.get(ray.remote(lambda: "still up").remote(), timeout=60))
"""


def test_ray_outlives_the_thread_that_started_it() -> None:
    """Linux sends the parent-death signal when the *thread* that started a process ends: Ray's local processes
    must not be children of a run's thread, or the app server's driver exits a minute after a study ends."""
    done = subprocess.run([sys.executable, "-c", RAY_FROM_A_THREAD_THAT_ENDS], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, start_new_session=True)
    assert done.stdout.strip().splitlines()[-1:] == ["still up"], done.stderr[-2000:]
