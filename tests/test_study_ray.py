"""Studies on a real Ray cluster on this machine (`ray start`, token authentication, started once for this module,
stopped by PID): CLI end to end, reopen, resume, stop, the Study page, two nodes and a node killed; plus a local
Ray that a driver starts and takes down with it.

Every study runs in its own driver process (playground/runs/ray_driver.py); this test process is the "server".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.ray_cluster import LocalCluster, free_port
from playground import cli
from playground.core.config import TrainConfig
from playground.experiments.comparison import CompareConfig
from playground.experiments.study_grid import StudyConfig
from playground.reports.study_table import study_reading
from playground.runs import registry as runs
from playground.runs.protocol import RunPlan
from playground.runs.registry import RunRegistry
from playground.runs.study_engine import ADDRESS_ENV, StudyEngine
from playground.training.run_folder import STUDY_FILE, read_json, write_json
from tests.processes import command_line, descendants
from tests.test_study import study_page

pytestmark = pytest.mark.ray  # starts Ray: runs apart from the parallel tests (make test)

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--tasks", "reverse", "--max-len", "4", "--hidden", "8,12", "--ratios", "0,1", "--seeds", "2",
        "--steps", "20", "--eval-every", "10", "--val-size", "32", "--batch-size", "16", "--quiet"]
MARK = "PLAYGROUND_TEST_MARK"  # an environment variable every process a test starts inherits: how it counts them


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A head node of 1 CPU with token authentication; studies of this module run on it (PLAYGROUND_RAY_ADDRESS
    and the token in the environment, as the README says for a server)."""
    nodes = LocalCluster()
    saved = {name: os.environ.get(name) for name in (*nodes.env, ADDRESS_ENV)}
    try:
        os.environ.update(nodes.env | {ADDRESS_ENV: nodes.start_head(num_cpus=1)})
        yield nodes
    finally:
        nodes.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    assert not nodes.processes()


def study_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "playground", "--threads", "1", "study", *args], cwd=ROOT,
                            env=os.environ | (env or {}), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def marked_processes(mark: str) -> list[int]:
    """Live processes whose environment holds MARK=mark: a study's CLI, its driver, Ray's processes it started."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"{MARK}={mark}".encode() in (entry / "environ").read_bytes().split(b"\0") \
                    and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def study_run(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    runs_dir = tmp_path_factory.mktemp("runs")
    process = study_cli(*TINY, "--runs-dir", str(runs_dir), "--json")
    out, err = process.communicate(timeout=180)
    return {"code": process.returncode, "runs_dir": runs_dir, "result": json.loads(out.splitlines()[-1]),
            "err": err}


def test_cli_study_on_the_cluster_ends_with_strict_json(study_run: dict[str, object], cluster: LocalCluster,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert study_run["code"] == 0, study_run["err"]
    result = study_run["result"]
    assert isinstance(result, dict)
    assert (result["status"], result["conditions_done"], result["conditions_total"]) == ("finished", 2, 2)
    assert result["address"].endswith(cluster.address.rsplit(":", 1)[1])  # the head's GCS port: where it ran
    condition = result["conditions"][0]
    assert [arm["arm"] for arm in condition["arms"]] == ["γ = 0", "γ = 1"] and condition["step"] == 20
    assert len(condition["arms"][0]["val_fr_exact"]["ci"]) == 2 and len(condition["node"]) == 56  # a Ray node id
    assert {"a", "b", "p", "within_seed_noise"} <= condition["tests"][0].keys()
    runs_dir = Path(str(study_run["runs_dir"]))
    (run_dir,) = runs_dir.iterdir()
    saved = read_json(run_dir / STUDY_FILE)
    assert saved["address"] == result["address"]
    assert sorted(saved["results"]) == ["0", "1"] and all(r["done"] and r["node"] for r in saved["results"].values())
    assert cli.main(["runs", "--runs-dir", str(runs_dir), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (listed["kind"], listed["status"], listed["step"], listed["total_steps"]) == ("study", "finished", 40, 40)


def test_bad_grid_and_bad_address_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["study", "--tasks", "reverse,nope", "--seeds", "1", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "task 'nope' is not allowed" in err and "at least two seeds" in err
    assert cli.main(["study", *TINY, "--address", "x" * 5000, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not allowed: give HOST:PORT" in err and len(err.splitlines()) == 1 and not list(tmp_path.iterdir())
    assert cli.main(["study", *TINY, "--address", "ray://10.0.0.5:10001", "--runs-dir", str(tmp_path)]) == 2
    assert "Ray Client (ray://) cannot stream" in capsys.readouterr().err


def test_reopened_unfinished_study_trains_only_conditions_not_done(study_run: dict[str, object]) -> None:
    runs_dir = Path(str(study_run["runs_dir"]))
    (run_dir,) = runs_dir.iterdir()
    saved = read_json(run_dir / STUDY_FILE)
    kept = saved["results"]["0"]
    del saved["results"]["1"]  # as if the study had been stopped before condition 1 finished
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


@pytest.mark.usefixtures("fresh_app", "cluster")
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
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()  # the server is no Ray driver
    study_chart, by_length, by_gamma = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert [trace["name"] for trace in study_chart["data"]] == ["γ = 0", "γ = 1"]
    assert {trace["name"] for trace in by_length["data"]} >= {"γ = 0", "γ = 1"}  # the shown condition's arms by length
    assert by_gamma["data"]  # the condition's final gap and exact match against γ
    assert study_reading(study.snapshot().summaries) in [markdown.value for markdown in at.markdown]
    assert any("Ray cluster: " in caption.value for caption in at.caption)


@pytest.mark.usefixtures("fresh_app")
def test_a_shared_server_offers_no_address_box(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_SHARED", "1")
    runs.reset_registry()
    at = study_page()
    assert not at.error and not [box for box in at.text_input if box.key == "study_address"]
    monkeypatch.delenv("PLAYGROUND_SHARED")
    runs.reset_registry()
    assert [box.key for box in study_page().text_input] == ["study_address"]  # what the shared page leaves out


def test_a_killed_study_resumes_with_its_done_conditions_reused_and_ends_as_if_never_killed(
        cluster: LocalCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL of a real `study` process once a save shows the quick condition done and the slow one not; `--resume`
    trains only the slow condition, and the final table equals an uninterrupted run's."""
    grid = ["--tasks", "reverse", "--max-len", "4", "--hidden", "8,96", "--ratios", "0,1", "--seeds", "2",
            "--steps", "120", "--eval-every", "40", "--val-size", "32", "--batch-size", "16", "--quiet"]
    killed_dir, whole_dir = tmp_path / "killed", tmp_path / "whole"
    process = study_cli(*grid, "--runs-dir", str(killed_dir))
    deadline, saved = time.monotonic() + 120, {}
    while time.monotonic() < deadline and process.poll() is None:
        files = list(killed_dir.glob(f"*/{STUDY_FILE}"))
        saved = read_json(files[0])["results"] if files else {}
        if sum(result["done"] for result in saved.values()) == 1:
            break
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert sum(result["done"] for result in saved.values()) == 1, f"no save caught one condition done: {saved}"
    (run_dir,) = killed_dir.iterdir()
    assert RunRegistry(killed_dir).get(run_dir.name).status == "stopped"  # listed, resumable
    assert cli.main(["study", "--resume", run_dir.name, "--runs-dir", str(killed_dir), "--quiet", "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (resumed["groups_total"], resumed["groups_reused"], resumed["groups_run"]) == (2, 1, 1)
    assert cli.main(["study", *grid, "--runs-dir", str(whole_dir), "--json"]) == 0
    whole = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (whole["groups_reused"], whole["groups_run"]) == (0, 2)
    strip = [{key: value for key, value in row.items() if key != "node"} for row in whole["conditions"]]
    assert [{key: value for key, value in row.items() if key != "node"} for row in resumed["conditions"]] == strip


def test_stop_cancels_the_conditions_and_keeps_what_was_reported(cluster: LocalCluster, tmp_path: Path) -> None:
    config = StudyConfig.build(TrainConfig(steps=100_000, eval_every=10, val_size=32, batch_size=16), ["reverse"],
                               [4], [2], [8], [0, 1], [], 2)
    study = RunRegistry(tmp_path).launch("long", RunPlan.study(config))
    for _ in range(1200):
        if study.step > 0:
            break
        study.join(0.1)
    processes = len(cluster.processes())
    study.stop()
    study.join(30)
    assert study.status == "stopped" and 0 < study.step < study.total_steps
    assert not study_drivers()  # halted: its driver cancelled the condition and ended
    saved = read_json(study.run_dir / STUDY_FILE)["results"]["0"]
    assert not saved["done"] and saved["step"] >= 10
    assert len(cluster.processes()) <= processes  # the cluster's worker is idle again or gone, none was added
    study.train_on(study.total_steps)  # Resume, as the page's button: a new driver trains the condition again
    for reported in (lambda: study_drivers() and study.step == 0, lambda: study.step > 0):  # the condition starts
        for _ in range(1200):  # from 0, then the new driver reports
            if reported():
                break
            study.join(0.1)
    study.stop()
    study.join(30)
    assert study.status == "stopped" and study.step > 0 and not study_drivers()


def study_drivers() -> list[int]:
    """The study drivers this test process started (through a run's worker)."""
    return [pid for pid in descendants(os.getpid()) if "playground.runs.ray_driver" in command_line(pid)]


@pytest.mark.usefixtures("cluster")
def test_an_unreachable_cluster_fails_its_study_and_holds_up_no_other(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_RAY_CONNECT_SECONDS", "8")
    config = StudyConfig.build(TrainConfig(steps=20, eval_every=10, val_size=32, batch_size=16), ["reverse"],
                               [4], [2], [8], [0, 1], [], 2)
    registry = RunRegistry(tmp_path)
    nowhere = f"127.0.0.1:{free_port()}"
    lost = registry.launch("lost", RunPlan.study(config, nowhere))
    other = registry.launch("other", RunPlan.study(config))  # on the module's cluster, meanwhile
    other.join(120)
    lost.join(60)
    assert lost.status == "failed" and f"could not reach the Ray cluster at {nowhere} within 8 s" in lost.message
    assert other.status == "finished"  # no lock held it up
    assert read_json(lost.run_dir / STUDY_FILE)["address"] == ""  # it ran nowhere


def test_budget_counts_a_local_studys_conditions_not_a_clusters(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    big = StudyConfig.build(TrainConfig(steps=100), ["reverse"], [40], [3], [512, 256], [0, 0.5, 1], [], 30)
    assert StudyEngine(big, num_cpus=1).size < StudyEngine(big, num_cpus=2).size  # the largest conditions, one a worker
    assert StudyEngine(big, address="10.0.0.5:6379").size == 0
    monkeypatch.setenv("PLAYGROUND_MEMORY_BUDGET_GB", "1")
    with pytest.raises(runs.RunError, match="memory"):
        RunRegistry(tmp_path).launch("big", RunPlan.study(big, workers=2))
    assert not list(tmp_path.iterdir())


def test_two_nodes_share_the_conditions_and_a_killed_node_loses_nothing(cluster: LocalCluster, tmp_path: Path) -> None:
    """The second node joins with the token; a study's conditions land on both; killing that node in the middle of a
    second study retries its conditions on the head, and every condition finishes."""
    second = cluster.add_node(num_cpus=1)
    grid = ["--tasks", "reverse", "--max-len", "4", "--hidden", "8,12,16", "--ratios", "0,1", "--seeds", "2",
            "--eval-every", "10", "--val-size", "32", "--batch-size", "16", "--quiet", "--json"]
    first = study_cli(*grid, "--steps", "20", "--runs-dir", str(tmp_path / "first"))
    out, err = first.communicate(timeout=180)
    result = json.loads(out.splitlines()[-1])
    assert first.returncode == 0, err
    conditions = result["conditions"]
    assert all(condition["done"] for condition in conditions) and len({row["node"] for row in conditions}) >= 2

    faulted = study_cli(*grid, "--steps", "400", "--runs-dir", str(tmp_path / "second"))
    deadline, nodes = time.monotonic() + 120, set()
    while time.monotonic() < deadline and len(nodes) < 2 and faulted.poll() is None:
        files = list((tmp_path / "second").glob(f"*/{STUDY_FILE}"))
        saved = read_json(files[0])["results"] if files else {}
        nodes = {r["node"] for r in saved.values() if r["node"] and not r["done"]}  # conditions training on both
        time.sleep(0.2)
    assert len(nodes) == 2, f"no save showed conditions training on both nodes: {nodes}"
    cluster.kill_node(second)
    out, err = faulted.communicate(timeout=240)
    result = json.loads(out.splitlines()[-1])
    assert faulted.returncode == 0, err
    assert result["status"] == "finished" and result["groups_failed"] == 0
    conditions = result["conditions"]
    assert [row["step"] for row in conditions] == [400, 400, 400] and all(row["done"] for row in conditions)
    assert not [pid for pid in cluster.processes() if pid in (second,)]


def test_a_local_ray_ends_with_the_process_that_started_its_study(tmp_path: Path) -> None:
    """Without an address the driver starts Ray on this machine; when the process that started the study is killed
    mid-study (kill -9: nothing of it runs again), no process it started (driver, Ray) is left."""
    env = {ADDRESS_ENV: ""}
    killed = uuid.uuid4().hex
    interrupted = study_cli(*TINY, "--steps", "100000", "--hidden", "8", "--runs-dir", str(tmp_path / "b"),
                            env=env | {MARK: killed})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not list((tmp_path / "b").glob(f"*/{STUDY_FILE}")):
        time.sleep(0.2)
    while time.monotonic() < deadline and not any(
            result["step"] for result in read_json(next((tmp_path / "b").glob(f"*/{STUDY_FILE}")))["results"].values()):
        time.sleep(0.2)  # a condition reported: Ray and its worker are up
    assert len(marked_processes(killed)) > 3  # the CLI, its driver and Ray's processes
    os.killpg(interrupted.pid, signal.SIGKILL)
    interrupted.wait()
    deadline = time.monotonic() + 60
    while marked_processes(killed) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = marked_processes(killed)
    for pid in left:  # never leave them behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left


def test_a_clusters_pickle_runs_nothing_in_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster whose workers return, in every result, an object whose `__reduce__` runs code: the code runs in
    the study's driver process, never in this one (the server), and the study is failed, every condition with why."""
    mark = tmp_path / "unpickled_in"
    hostile = LocalCluster(node_env={"PYTHONPATH": str(ROOT / "tests" / "hostile_cluster"),
                                     "HOSTILE_MARK": str(mark)})
    try:
        address = hostile.start_head(num_cpus=1)
        for name, value in hostile.env.items():
            monkeypatch.setenv(name, value)
        config = StudyConfig.build(TrainConfig(steps=20, eval_every=10, val_size=32, batch_size=16), ["reverse"],
                                   [4], [2], [8], [0, 1], [], 2)
        study = RunRegistry(tmp_path / "runs").launch("hostile", RunPlan.study(config, address))
        study.join(120)
    finally:
        hostile.stop()
    pids = {int(line) for line in mark.read_text().split()}  # the payload arrived and ran: this test can fail
    assert pids and os.getpid() not in pids
    assert study.status == "failed" and "every condition failed" in study.message
    assert "is not a result" in read_json(study.run_dir / STUDY_FILE)["results"]["0"]["failed"]
    assert not hostile.processes()


@pytest.fixture
def this_process_drives(cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For the driver's own logic: this process joins the cluster as the driver process would (from an empty
    working directory, which Ray adds to its workers' import path)."""
    import ray
    from ray._raylet import AuthenticationTokenLoader, Config

    from playground.runs.ray_driver import RUNTIME_ENV

    monkeypatch.chdir(tmp_path)
    Config.initialize("")  # Ray read RAY_AUTH_MODE when this process imported it, before the token was set
    AuthenticationTokenLoader.instance().reset_cache()
    ray.init(address=cluster.address, runtime_env=RUNTIME_ENV, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.usefixtures("this_process_drives")
def test_workers_receive_and_import_the_whole_package() -> None:
    """The package reaches a cluster's worker whole (playground/runs/ included, which a `runs` exclude dropped),
    and the worker imports the shipped copy, not this checkout."""
    import ray

    def shipped() -> tuple[str, list[str], str]:
        import playground
        import playground.runs.compare_engine as engines

        package = Path(playground.__file__).parent
        return (str(package), sorted(str(path.relative_to(package)) for path in package.rglob("*.py")),
                engines.__file__)

    package, files, imported = ray.get(ray.remote(num_cpus=1)(shipped).remote(), timeout=120)
    here = ROOT / "playground"
    assert sorted(str(path.relative_to(here)) for path in here.rglob("*.py")) == files
    shipped_modules = {"runs/ray_driver.py", "runs/study_engine.py", "runs/compare_engine.py",
                       "experiments/study_grid.py"}
    assert shipped_modules <= set(files)
    assert not package.startswith(str(ROOT)) and imported.startswith(package)


@pytest.mark.usefixtures("this_process_drives")
def test_a_failing_condition_is_tried_twice_then_recorded_and_the_rest_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                                              tmp_path: Path) -> None:
    import ray

    from playground.runs import ray_driver as ray_study

    tries = tmp_path / "tries"

    def fails_at_hidden_12(compare: CompareConfig) -> Iterator[dict[str, object]]:
        """A condition task that dies (as a lost worker or an exception would) for hidden size 12, trains otherwise;
        each try leaves a line with its hidden size (the task runs in Ray's worker processes)."""
        with tries.open("a") as log:
            log.write(f"{compare.base.hidden_dim}\n")
        if compare.base.hidden_dim == 12:
            raise RuntimeError("simulated failure of the worker")
        yield from ray_study.condition_reports(compare)

    monkeypatch.setattr(ray_study, "train_condition",
                        ray.remote(num_cpus=1, num_returns="streaming", max_retries=0)(fails_at_hidden_12))
    config = StudyConfig.build(TrainConfig(steps=20, eval_every=10, val_size=32, batch_size=16), ["reverse"], [4],
                               [2], [8, 12], [0, 1], [], 2)
    conditions = ray_study.StudyConditions(config, {})
    conditions.submit_pending()
    deadline = time.monotonic() + 120
    while not conditions.finished and time.monotonic() < deadline:
        conditions.poll()
    assert sorted(tries.read_text().split()) == ["12", "12", "8"]  # the failing condition tried twice, the other once
    assert conditions.results[0].done and conditions.results[0].node
    assert "simulated failure" in conditions.results[1].failed and not conditions.results[1].finals
