"""Export: a run's standalone PyTorch script trains the same models (run in a subprocess, figures compared), and
TensorBoard event files read back with TensorBoard's own reader."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import playground.export
from playground import cli
from playground.core.config import TrainConfig
from playground.core.tasks import CustomPairs
from playground.experiments.study_grid import StudyConfig
from playground.export.experiment import Experiment, read_experiment
from playground.export.model_source import MODEL_MODULES
from playground.export.script import pytorch_script
from playground.training.metrics import EVALUATED
from playground.training.run_folder import RUN_FILE, read_metrics

FIGURES = ("val_tf_loss", "val_fr_loss", "val_tf_token_acc", "val_fr_token_acc", "val_tf_exact", "val_fr_exact")
MODEL_CODE = ("nn.Module", "nn.LSTM", "nn.GRU", "nn.Linear", "class Seq2Seq", "class Encoder", "class Attention")
SMALL = ["--hidden", "24", "--emb", "8", "--val-size", "48", "--batch-size", "16", "--eval-every", "10"]


def trained(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert cli.main([*argv, "--runs-dir", str(tmp_path / "runs"), "--quiet", "--json"]) == 0
    return Path(json.loads(capsys.readouterr().out.splitlines()[-1])["run_dir"])


def final_figures(run_dir: Path) -> list[dict[str, float]]:
    """Each model's last evaluated row of metrics.csv, in model order."""
    last: dict[int, dict[str, float]] = {}
    for row in read_metrics(run_dir):
        if EVALUATED in row:
            last[int(row.get("model", 0))] = row
    return [last[k] for k in sorted(last)]


def run_script(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, float]]:
    """Export through the CLI, then run the file with nothing of this project importable."""
    script = tmp_path / "experiment.py"
    assert cli.main(["export", str(run_dir), "--script", str(script)]) == 0
    capsys.readouterr()
    result = subprocess.run([sys.executable, "-I", str(script)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])["models"]


def assert_same_figures(recorded: list[dict[str, float]], printed: list[dict[str, float]],
                        tolerance: float = 1e-6) -> None:
    """The stated tolerance: a run of one model to 1e-6 (the same code in the same order), a comparison's models,
    which the playground trains side by side, within 1e-4."""
    assert len(printed) == len(recorded)
    for row, figures in zip(recorded, printed, strict=True):
        assert figures["step"] == row["step"]
        assert {name: figures[name] for name in FIGURES} == pytest.approx({name: row[name] for name in FIGURES},
                                                                          abs=tolerance, rel=0)


def script_literal(script: str, name: str) -> object:
    """The value a top-level `NAME = literal` of the script holds."""
    for node in ast.parse(script).body:
        if isinstance(node, ast.Assign) and [target.id for target in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"the script has no {name}")


@pytest.mark.slow
def test_script_of_a_default_run_prints_the_runs_figures(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = trained(["train", "--steps", "20", "--eval-every", "10", "--val-size", "128"], tmp_path, capsys)
    recorded = final_figures(run_dir)
    assert recorded[0]["step"] == 20
    assert_same_figures(recorded, run_script(run_dir, tmp_path, capsys))


@pytest.mark.slow
@pytest.mark.parametrize("variant", [[], ["--attention", "dot"]])
def test_the_default_runs_script_prints_its_figures_exactly(variant: list[str], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The default settings for 200 steps (the app's default run is 2,000): the app and the script run the same code
    in the same order, so every figure is the same float, not a near one."""
    run_dir = trained(["train", "--steps", "200", *variant], tmp_path, capsys)
    recorded, printed = final_figures(run_dir), run_script(run_dir, tmp_path, capsys)
    assert recorded[0]["step"] == printed[0]["step"] == 200
    assert {name: printed[0][name] for name in FIGURES} == {name: recorded[0][name] for name in FIGURES}


def test_script_of_a_comparison_prints_every_models_figures(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Arms with free-running steps, per-token coins, a schedule and two seeds: every model of the run."""
    run_dir = trained(["compare", "--task", "number_words", "--max-digits", "2", "--coin", "token",
                       "--ratios", "0,0.5", "--schedules", "linear", "--decay-steps", "20", "--seeds", "2",
                       "--steps", "30", *SMALL], tmp_path, capsys)
    recorded = final_figures(run_dir)
    printed = run_script(run_dir, tmp_path, capsys)
    assert [model["label"] for model in printed] == ["γ = 0, seed 0", "γ = 0, seed 1", "γ = 0.5, seed 0",
                                                     "γ = 0.5, seed 1", "linear 1→0, seed 0", "linear 1→0, seed 1"]
    assert_same_figures(recorded, printed, 1e-4)
    assert len({model["val_fr_loss"] for model in printed}) == 6  # six different models, not one printed six times


@pytest.mark.slow
def test_script_of_a_gru_reading_the_source_reversed_prints_the_runs_figures(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The model's own source, every module of it, with the variant as settings; two layers, free-running steps."""
    run_dir = trained(["train", "--cell", "gru", "--reverse-source", "--layers", "2", "--steps", "20", *SMALL],
                      tmp_path, capsys)
    script = pytorch_script(read_experiment(run_dir))
    for module in MODEL_MODULES:
        body = inspect.getsource(module).split("\n\n\n", 1)[1]  # what follows the docstring and the imports
        assert body.strip() in script, module.__name__
    settings = script_literal(script, "SETTINGS")
    assert (settings["cell"], settings["reverse_source"], settings["num_layers"]) == ("gru", "on", 2)
    assert "import playground" not in script and "from playground" not in script
    assert_same_figures(final_figures(run_dir), run_script(run_dir, tmp_path, capsys))


def test_a_script_defines_each_name_once() -> None:
    """The modules share one namespace in the script: a name defined twice would silently replace the first."""
    script = pytorch_script(Experiment.of_run("one", TrainConfig(task="count", steps=1)))
    names: list[str] = []
    for node in ast.parse(script).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)]
    assert sorted(name for name in set(names) if names.count(name) > 1) == []


def test_no_model_code_is_held_in_a_string() -> None:
    """The export builds the script from the model's source; its own strings hold the data and training loop."""
    for path in Path(playground.export.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not any(code in node.value for code in MODEL_CODE), path


@pytest.mark.slow
def test_script_of_an_attention_run_prints_the_runs_figures(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Additive attention: the library's own attention, chosen by the setting."""
    run_dir = trained(["train", "--attention", "additive", "--steps", "20", *SMALL], tmp_path, capsys)
    assert script_literal(pytorch_script(read_experiment(run_dir)), "SETTINGS")["attention"] == "additive"
    assert_same_figures(final_figures(run_dir), run_script(run_dir, tmp_path, capsys))


@pytest.mark.slow
def test_script_of_a_comparison_whose_arms_differ_by_attention(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Every score, and none, side by side on one data stream: each model built with its own arm's variant."""
    run_dir = trained(["compare", "--attention", "none,dot,general,additive", "--ratios", "0.5", "--steps", "20",
                       *SMALL], tmp_path, capsys)
    printed = run_script(run_dir, tmp_path, capsys)
    assert [model["label"] for model in printed] == ["γ = 0.5, no attention", "γ = 0.5, dot attention",
                                                     "γ = 0.5, general attention", "γ = 0.5, additive attention"]
    assert_same_figures(final_figures(run_dir), printed, 1e-4)
    assert len({model["val_tf_loss"] for model in printed}) == 4
    script = (tmp_path / "experiment.py").read_text()
    assert [model["attention"] for model in script_literal(script, "MODELS")] == ["none", "dot", "general", "additive"]
    assert max(map(len, script.splitlines())) <= 120  # readable: every line within the project's width


@pytest.mark.slow
def test_script_of_a_custom_task_carries_its_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("source,target\n" + "".join(f"{n},{n * 2}\n" for n in range(60)))
    run_dir = trained(["train", "--task", "custom", "--custom-csv", str(pairs), "--steps", "10", *SMALL],
                      tmp_path, capsys)
    script = pytorch_script(read_experiment(run_dir))
    assert str(pairs) not in script and "['5', '9'], ['1', '1', '8']" in script  # the pairs, never the path
    assert_same_figures(final_figures(run_dir), run_script(run_dir, tmp_path, capsys))


def test_a_study_condition_exports_as_its_comparison(tmp_path: Path) -> None:
    base = TrainConfig(steps=20, eval_every=10, val_size=32, hidden_dim=16)
    study = StudyConfig.build(base, ["reverse", "addition"], [4], [2], [16], [0, 1], [], 2)
    run_dir = tmp_path / "study"
    run_dir.mkdir()
    (run_dir / RUN_FILE).write_text(json.dumps({"name": "grid", "kind": "study", "status": "finished"}))
    (run_dir / "study.json").write_text(json.dumps({"config": study.as_dict(), "results": {}}))
    condition = study.conditions()[1]
    experiment = read_experiment(run_dir, 1)
    assert experiment.configs == tuple(condition.compare.configs())
    assert experiment.labels == ("γ = 0, seed 0", "γ = 0, seed 1", "γ = 1, seed 0", "γ = 1, seed 1")
    assert experiment.name == "grid: addition, 2 digits, hidden 16"
    assert "def random_number(rng)" in pytorch_script(experiment)
    assert cli.main(["export", str(run_dir), "--script", str(tmp_path / "x.py")]) == 2  # which condition?
    assert not (tmp_path / "x.py").exists()


def test_a_study_condition_whose_arms_differ_by_model_exports_each_arms_model(tmp_path: Path) -> None:
    base = TrainConfig(steps=20, eval_every=10, val_size=32, hidden_dim=16)
    study = StudyConfig.build(base, ["reverse"], [8], [2], [16], [1], [], 2, ((), ("none", "dot"), ("off", "on")))
    run_dir = tmp_path / "study"
    run_dir.mkdir()
    (run_dir / RUN_FILE).write_text(json.dumps({"name": "grid", "kind": "study", "status": "finished"}))
    (run_dir / "study.json").write_text(json.dumps({"config": study.as_dict(), "results": {}}))
    script = pytorch_script(read_experiment(run_dir, 0))
    models = script_literal(script, "MODELS")
    assert sorted({(model["attention"], model["reverse_source"]) for model in models}) == [
        ("dot", "off"), ("dot", "on"), ("none", "off"), ("none", "on")]
    assert "cell" not in models[0] and script_literal(script, "SETTINGS")["cell"] == "lstm"  # shared, so in SETTINGS


def test_tensorboard_holds_every_arms_scalars_and_settings(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir = trained(["compare", "--ratios", "0,1", "--steps", "20", *SMALL], tmp_path, capsys)
    log_dir = tmp_path / "tb"
    assert cli.main(["export", str(run_dir), "--tensorboard", str(log_dir), "--json"]) == 0
    folders = [Path(folder) for folder in json.loads(capsys.readouterr().out.splitlines()[-1])["tensorboard"]]
    assert [folder.name for folder in folders] == ["00-gamma=0", "01-gamma=1"]
    recorded = {0: [], 1: []}
    for row in read_metrics(run_dir):
        recorded[int(row["model"])].append(row)
    for k, folder in enumerate(folders):
        events = EventAccumulator(str(folder)).Reload()
        assert {"train_loss", "val_fr_exact", "val_tf_loss", "teacher_forcing_ratio"} <= set(events.Tags()["scalars"])
        evaluated = [row for row in recorded[k] if EVALUATED in row]
        scalars = events.Scalars("val_fr_loss")
        assert [s.step for s in scalars] == [row["step"] for row in evaluated] == [0, 10, 20]
        assert [s.value for s in scalars] == pytest.approx([row["val_fr_loss"] for row in evaluated], rel=1e-6)
        assert {s.value for s in events.Scalars("teacher_forcing_ratio")} == {float(k)}
        content = events.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        settings = start.session_start_info.hparams
        assert settings["teacher_forcing_ratio"].number_value == float(k)
        assert settings["model"].string_value == f"γ = {k}" and settings["hidden_dim"].number_value == 24
        experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
        assert "val_fr_exact" in {metric.name.tag for metric in experiment.metric_infos}


def test_training_logs_to_tensorboard_as_it_goes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = tmp_path / "tb"
    for _ in range(2):  # the same name twice: two folders, not one mixed
        run_dir = trained(["train", "--steps", "12", *SMALL, "--name", "live", "--tensorboard", str(log_dir)],
                          tmp_path, capsys)
    assert sorted(folder.name for folder in log_dir.iterdir()) == ["live", "live-2"]
    events = EventAccumulator(str(log_dir / "live-2" / "00-live")).Reload()
    rows = read_metrics(run_dir)
    assert [s.step for s in events.Scalars("train_loss")] == [row["step"] for row in rows if "train_loss" in row]
    assert [s.value for s in events.Scalars("val_tf_exact")] == pytest.approx(
        [row["val_tf_exact"] for row in rows if EVALUATED in row], rel=1e-6)
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


@pytest.mark.parametrize(("argv", "message"), [
    ([], "nothing to export"),
    (["--script", "x.py", "--condition", "0"], "not a study"),
    (["--tensorboard", "tb", "--cell", "0"], "a study's condition goes to --script"),  # the flag's former name
])
def test_bad_export_requests_exit_2(argv: list[str], message: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = trained(["train", "--steps", "1", *SMALL], tmp_path, capsys)
    assert cli.main(["export", str(run_dir), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_folder_that_is_no_run_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export", str(tmp_path), "--script", str(tmp_path / "x.py")]) == 2
    assert "is not a run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_script_of_a_transformer_run_prints_the_runs_figures(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The Transformer's own source, chosen by the settings; free-running steps through its cache."""
    run_dir = trained(["train", "--architecture", "transformer", "--heads", "2", "--layers", "2", "--positions",
                       "learned", "--steps", "20", *SMALL], tmp_path, capsys)
    settings = script_literal(pytorch_script(read_experiment(run_dir)), "SETTINGS")
    assert (settings["architecture"], settings["heads"], settings["positions"]) == ("transformer", 2, "learned")
    assert_same_figures(final_figures(run_dir), run_script(run_dir, tmp_path, capsys))


@pytest.mark.slow
def test_script_of_a_comparison_whose_arms_differ_by_architecture(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = trained(["compare", "--architecture", "rnn,transformer", "--heads", "2", "--ratios", "0.5", "--steps",
                       "20", *SMALL], tmp_path, capsys)
    printed = run_script(run_dir, tmp_path, capsys)
    assert [model["label"] for model in printed] == ["γ = 0.5, RNN", "γ = 0.5, Transformer"]
    assert_same_figures(final_figures(run_dir), printed, 1e-4)


def test_script_of_an_oracle_tested_beyond_its_lengths_prints_the_runs_figures(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """eos = oracle (no <eos> in the loss or the scores) and validation to longer sources: the script scores the
    training lengths as the run's headline figures do."""
    run_dir = trained(["train", "--eos", "oracle", "--max-len", "6", "--test-max-len", "9", "--steps", "20", *SMALL],
                      tmp_path, capsys)
    script = pytorch_script(read_experiment(run_dir))
    assert "def scored_target(tgt" in script and "TRAINED_SIZES, TESTED_SIZES = 4, 7" in script
    assert_same_figures(final_figures(run_dir), run_script(run_dir, tmp_path, capsys))


@pytest.mark.slow
def test_script_of_a_comparison_whose_arms_differ_by_the_eos_decision(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """+EOS against -EOS (Newman et al.) as two arms of one run: each model scores and decodes as its own eos says."""
    run_dir = trained(["compare", "--eos", "predict,oracle", "--max-len", "6", "--test-max-len", "9", "--ratios", "1",
                       "--steps", "20", *SMALL], tmp_path, capsys)
    printed = run_script(run_dir, tmp_path, capsys)
    assert [model["label"] for model in printed] == ["γ = 1, +EOS", "γ = 1, −EOS"]
    assert_same_figures(final_figures(run_dir), printed, 1e-4)


HOSTILE_TEXTS = ['x"""if __import__("os").system("touch PWNED")else"""', "x'''+open('f')+'''", "back\\slash\"",
                 "new\nline = 1", "line\u2028separator", "next\x85line", "\u202egnp.exe"]


class _Strings(ast.NodeTransformer):
    """Every text literal made the same, so two scripts compare by their statements alone."""

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.Constant("text") if isinstance(node.value, str) else node


def statements(script: str) -> str:
    return ast.dump(_Strings().visit(ast.parse(script)))


def assigned(script: str, name: str) -> object:
    (value,) = [node.value for node in ast.parse(script).body if isinstance(node, ast.Assign)
                and [getattr(target, "id", None) for target in node.targets] == [name]]
    return ast.literal_eval(value)


@pytest.mark.parametrize("hostile", HOSTILE_TEXTS)
def test_names_and_tokens_become_literals_in_the_script(hostile: str) -> None:
    """A run's name (also its model's label) and a custom task's tokens and pairs holding quotes, backslashes and
    line breaks of every kind: the script has the statements a plainly named run's has, and holds them as data."""
    def experiment(name: str, tokens: list[str]) -> Experiment:
        pairs = CustomPairs(((tokens[:2], tokens[1:]), (["p"], ["q"])), "space")
        config = TrainConfig(task="custom", custom_data=pairs.fingerprint, custom_tokenization="space",
                             steps=5, device="cpu")
        return Experiment.of_run(name, config, pairs)

    plain_script = pytorch_script(experiment("plain", ["a", "b", "c"]))
    hostile_script = pytorch_script(experiment(hostile, [hostile, hostile + "2", hostile + "3"]))
    assert statements(hostile_script) == statements(plain_script)
    assert assigned(hostile_script, "NAME") == hostile
    assert assigned(hostile_script, "MODELS")[0]["label"] == hostile
    assert [hostile, hostile + "2"] in [pair[0] for pair in assigned(hostile_script, "PAIRS")]
    assert hostile + "3" in assigned(hostile_script, "TARGET_VOCABULARY")
