"""Run folders: config, metrics and checkpoints round-trip; anything foreign or unsafe is refused clearly."""

import io
import json
import random
import re
import zipfile
from pathlib import Path

import pytest
import torch

from playground.core.config import ConfigError, TrainConfig
from playground.core.tasks import CustomPairs, TaskError, load_custom_csv, parse_custom_csv
from playground.training import checkpoints
from playground.training.checkpoints import CheckpointError, load_checkpoint, portable, save_checkpoint
from playground.training.metrics import METRIC_COLUMNS
from playground.training.run_folder import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    CUSTOM_FILE,
    METRICS_FILE,
    create_run_dir,
    read_config,
    read_custom,
    read_json,
    read_metrics,
    write_config,
    write_json,
    write_metrics,
)
from playground.training.stacked import StackedTrainer
from playground.training.trainer import Trainer

CONFIG = TrainConfig(task="number_words", max_digits=3, emb_dim=8, hidden_dim=16, batch_size=16, val_size=32,
                     steps=3, device="cpu", seed=4)


class WritesAFile:
    """Unpickling this would create a file: the proof that a checkpoint ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def trainer() -> Trainer:
    trainer = Trainer(CONFIG)
    for _ in range(3):
        trainer.train_step()
    return trainer


def save(path: Path, trainer: Trainer, label: str = "") -> None:
    """A one-model checkpoint, as a training run saves it."""
    save_checkpoint(path, [(label, trainer.config, trainer.model.state_dict())], trainer.task, trainer.step,
                    trainer.custom, trainer.resume_state())


@pytest.fixture(scope="module")
def checkpoint(trainer: Trainer, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / CHECKPOINT_FILE
    save(path, trainer)
    return path.read_bytes()


def version_1(checkpoint: bytes, **changes) -> bytes:
    """The same model in the version-1 layout: one config and one state_dict at the top, no resume state."""
    def downgrade(payload: dict) -> None:
        (model,) = payload.pop("models")
        for key in ("custom", "resume"):
            payload.pop(key)
        payload.update(format="seq2seq-playground/1", config=model["config"] | changes,
                       state_dict=model["state_dict"])
    return resaved(checkpoint, downgrade)


def first_model(change):
    """A change to the first model entry of a version-2 payload."""
    return lambda payload: change(payload["models"][0])


def resaved(checkpoint: bytes, change) -> bytes:
    payload = torch.load(io.BytesIO(checkpoint), weights_only=True)
    change(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def saved(obj, **options) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **options)
    return buffer.getvalue()


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_create_run_dir_is_unique_and_safe(tmp_path: Path) -> None:
    first = create_run_dir(tmp_path, "../my run: ratio 0.5")
    second = create_run_dir(tmp_path, "../my run: ratio 0.5")
    assert first != second and first.is_dir() and second.is_dir()
    assert first.parent == second.parent == tmp_path
    assert re.fullmatch(r"\d{8}-\d{6}-\.*-?my-run-ratio-0\.5-[0-9a-f]{16}", first.name)  # 64 random bits end an id
    assert re.fullmatch(r"\d{8}-\d{6}-run-[0-9a-f]{16}", create_run_dir(tmp_path, "///").name)


def test_config_round_trip(tmp_path: Path) -> None:
    config = CONFIG.replace(schedule="linear", lr=0.02)
    write_config(tmp_path, config)
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["lr"] == 0.02
    assert read_config(tmp_path) == config


def test_config_naming_a_missing_gpu_falls_back_to_auto(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text(json.dumps(CONFIG.as_dict() | {"device": "cuda:9"}))
    assert read_config(tmp_path).device == "auto"


@pytest.mark.parametrize(("text", "message"), [
    (None, "cannot read"),
    ("{not json", "cannot read"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"hidden_dim": 0}', "hidden_dim = 0 is not allowed"),
])
def test_bad_config_file_is_a_config_error(tmp_path: Path, text: str | None, message: str) -> None:
    if text is not None:
        (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_config(tmp_path)


def test_metrics_round_trip_with_blank_cells(tmp_path: Path) -> None:
    rows = [
        {"step": 1, "seconds": 0.5, "train_loss": 2.5, "teacher_forcing_ratio": 0.5, "lr": 0.01},
        {"step": 2, "seconds": 1.0, "train_loss": 2.25, "teacher_forcing_ratio": 0.5, "lr": 0.01,
         **{column: 0.125 for column in METRIC_COLUMNS[5:]}, "not_a_column": 7.0},
    ]
    assert read_metrics(tmp_path) == []
    write_metrics(tmp_path, rows)
    lines = (tmp_path / METRICS_FILE).read_text().splitlines()
    assert lines[0] == ",".join(METRIC_COLUMNS)
    assert lines[1] == "1,0.5,2.5,0.5,0.01" + "," * (len(METRIC_COLUMNS) - 5)  # not evaluated: blank cells
    back = read_metrics(tmp_path)
    assert back[0] == rows[0]
    assert back[1] == {k: v for k, v in rows[1].items() if k != "not_a_column"}
    assert type(back[0]["step"]) is int and type(back[0]["lr"]) is float
    assert not list(tmp_path.glob(".*.tmp"))


def test_metrics_keep_exact_match_at_every_size_after_the_fixed_columns(tmp_path: Path) -> None:
    rows = [{"step": 0, "val_fr_exact": 0.5, "val_fr_exact_len_10": 0.25, "val_fr_exact_len_9": 0.5,
             "val_tf_exact_len_9": 0.75}, {"step": 1, "train_loss": 2.0}]
    write_metrics(tmp_path, rows)
    header = (tmp_path / METRICS_FILE).read_text().splitlines()[0].split(",")
    assert header == [*METRIC_COLUMNS, "val_fr_exact_len_9", "val_fr_exact_len_10", "val_tf_exact_len_9"]
    assert read_metrics(tmp_path) == rows


def test_metrics_with_a_model_column_read_back_whole(tmp_path: Path) -> None:
    columns = ("model", *METRIC_COLUMNS)
    write_metrics(tmp_path, [{"model": 1, "step": 0, "seconds": 0.25, "val_fr_exact": 0.5}], columns)
    assert (tmp_path / METRICS_FILE).read_text().splitlines()[0] == ",".join(columns)
    (row,) = read_metrics(tmp_path)
    assert row == {"model": 1, "step": 0, "seconds": 0.25, "val_fr_exact": 0.5} and type(row["model"]) is int


@pytest.mark.parametrize("text", ["step,seconds\nabc,1\n", "step,seconds\n1.5,1\n", "\xff\xfe"])
def test_damaged_metrics_are_a_value_error_naming_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / METRICS_FILE).write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=r"metrics\.csv is damaged"):
        read_metrics(tmp_path)


def test_json_round_trip_is_atomic_and_reads_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_json(path, {"name": "ü", "step": 3})
    assert read_json(path) == {"name": "ü", "step": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # the temporary file was renamed
    with pytest.raises(ValueError, match="larger than 8 bytes"):
        read_json(path, limit=8)
    with pytest.raises(ValueError, match="zero is not a regular file"):
        read_json(Path("/dev/zero"), limit=1024)  # never read at all
    with pytest.raises(ValueError, match=r"cannot read nope\.json: No such file"):
        read_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match=r"cannot read bad\.json"):
        read_json(tmp_path / "bad.json")


def test_a_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.json"
    write_json(path, {"step": 1})

    def killed(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", killed)  # the new file is written but never replaces the old one
    with pytest.raises(OSError, match="No space left"):
        write_json(path, {"step": 2})
    monkeypatch.undo()
    assert read_json(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # the temporary file went with the failure


def test_a_write_that_fails_midway_removes_its_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_json(tmp_path / "run.json", {"step": 2})
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_round_trip(trainer: Trainer, checkpoint: bytes, tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(checkpoint)
    src, tgt = trainer.validation
    trainer.model.eval()
    with torch.inference_mode():
        expected = [trainer.model(src, tgt, 1.0), trainer.model(src, tgt, 0.0)]
    trainer.model.train()
    for source in (path, checkpoint):
        loaded = load_checkpoint(source)
        assert loaded.config == CONFIG and loaded.step == 3 and not loaded.model.training
        assert [(saved.label, saved.config) for saved in loaded.models] == [("", CONFIG)]
        assert loaded.model is loaded.models[0].model and loaded.custom is None
        assert loaded.src_vocab.itos == trainer.task.src_vocab.itos
        assert loaded.tgt_vocab.itos == trainer.task.tgt_vocab.itos
        assert (loaded.src_vocab.separator, loaded.tgt_vocab.separator) == ("", " ")
        assert loaded.resume is not None and set(loaded.resume) == {"optimizer", "coins", "data"}
        with torch.inference_mode():
            assert torch.equal(loaded.model(src, tgt, 1.0), expected[0])
            assert torch.equal(loaded.model(src, tgt, 0.0), expected[1])


def test_a_checkpoints_resume_state_continues_training_exactly(tmp_path: Path) -> None:
    uninterrupted = Trainer(CONFIG.replace(steps=8))
    for _ in range(3):
        uninterrupted.train_step()
    save(tmp_path / CHECKPOINT_FILE, uninterrupted)
    expected = [uninterrupted.train_step().loss for _ in range(4)]
    loaded = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    resumed = Trainer(loaded.config)
    resumed.restore(loaded.model.state_dict(), loaded.step, loaded.resume)
    assert [resumed.train_step().loss for _ in range(4)] == expected
    final = uninterrupted.model.state_dict()
    assert all(torch.equal(value, final[name]) for name, value in resumed.model.state_dict().items())


def test_a_comparison_checkpoint_holds_every_model(tmp_path: Path) -> None:
    configs = [CONFIG.replace(teacher_forcing_ratio=ratio) for ratio in (0.0, 1.0)]
    batched = StackedTrainer(configs)
    batched.train_step()
    save_checkpoint(tmp_path / CHECKPOINT_FILE, [(f"γ = {c.teacher_forcing_ratio:g}", c, batched.model_state(k))
                                                 for k, c in enumerate(configs)],
                    batched.task, batched.step, None, batched.resume_state())
    loaded = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert [(saved.label, saved.config) for saved in loaded.models] == [("γ = 0", configs[0]), ("γ = 1", configs[1])]
    assert loaded.config == configs[0] and loaded.step == 1
    for k, saved in enumerate(loaded.models):
        state = batched.model_state(k)
        assert all(torch.equal(value, state[name]) for name, value in saved.model.state_dict().items())


def test_a_version_1_checkpoint_still_loads(trainer: Trainer, checkpoint: bytes) -> None:
    loaded = load_checkpoint(version_1(checkpoint))
    assert loaded.config == CONFIG and loaded.step == 3 and loaded.resume is None and loaded.custom is None
    assert [saved.label for saved in loaded.models] == [""]
    expected = trainer.model.state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in loaded.model.state_dict().items())


def test_a_version_1_custom_checkpoint_is_refused_without_reading_its_path(checkpoint: bytes, tmp_path: Path) -> None:
    """Version 1 named its CSV by path; the path is dropped unread, and without pairs the run cannot load."""
    old = version_1(checkpoint, task="custom", custom_csv=str(tmp_path / "elsewhere.csv"))
    with pytest.raises(CheckpointError, match="config is invalid: task needs a CSV file of source,target pairs"):
        load_checkpoint(old)


def test_portable_drops_a_csv_path_and_an_absent_gpu() -> None:
    values = CONFIG.as_dict() | {"custom_csv": "/etc/passwd", "device": "cuda:9"}
    assert portable(values) == CONFIG.as_dict() | {"device": "auto"}
    assert portable(CONFIG.as_dict()) == CONFIG.as_dict()
    assert "custom_csv" in values  # the caller's dictionary is left alone


def write_pairs(path: Path) -> Path:
    path.write_text("".join(f"{w} x,x {w}\n" for w in ["a", "b", "c", "d", "e", "f"]))
    return path


def test_custom_checkpoint_loads_without_its_csv(tmp_path: Path) -> None:
    csv_path = write_pairs(tmp_path / "pairs.csv")
    pairs = load_custom_csv(csv_path, "space")
    trainer = Trainer(CONFIG.replace(task="custom", custom_data=pairs.fingerprint, custom_tokenization="space"),
                      pairs)
    save(tmp_path / CHECKPOINT_FILE, trainer)
    csv_path.unlink()
    loaded = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert loaded.custom == pairs and loaded.custom.fingerprint == loaded.config.custom_data
    assert loaded.src_vocab.itos[4:] == ["a", "b", "c", "d", "e", "f", "x"]
    assert loaded.src_vocab.tokenize("b x") == ["b", "x"]


def test_custom_pairs_travel_in_the_run_folder(tmp_path: Path) -> None:
    pairs = load_custom_csv(write_pairs(tmp_path / "pairs.csv"), "space")
    config = CONFIG.replace(task="custom", custom_data=pairs.fingerprint, custom_tokenization="space")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_config(run_dir, config, pairs)
    assert read_config(run_dir) == config and read_custom(run_dir, config) == pairs
    assert CustomPairs.from_json((run_dir / CUSTOM_FILE).read_bytes()) == pairs
    assert read_custom(run_dir, CONFIG) is None  # a generated task has none
    (run_dir / CUSTOM_FILE).unlink()
    with pytest.raises(TaskError, match=r"cannot read the run's custom pairs \(custom_pairs\.json\)"):
        read_custom(run_dir, config)


def test_checkpoint_of_a_missing_gpu_loads_on_cpu(checkpoint: bytes) -> None:
    moved = resaved(checkpoint, first_model(lambda model: model["config"].update(device="cuda:9")))
    assert load_checkpoint(moved).config.device == "auto"
    assert load_checkpoint(version_1(checkpoint, device="cuda:9")).config.device == "auto"


def test_a_checkpoint_over_its_size_limit_is_refused_unread(checkpoint: bytes, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(checkpoint)
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_BYTES", 1000)
    with pytest.raises(CheckpointError, match="larger than 1,000 bytes"):
        load_checkpoint(path)


def evil(marker: Path, **options) -> bytes:
    return saved({"format": "seq2seq-playground/1", "config": WritesAFile(marker)}, **options)


def evil_v2(marker: Path) -> bytes:
    return saved({"format": "seq2seq-playground/2", "models": [{"label": "", "config": WritesAFile(marker)}]})


OTHER_PAIRS = parse_custom_csv(b"ab,ba\ncd,dc\nef,fe\n")


REFUSED = {
    "truncated": (lambda ckpt, marker: ckpt[: len(ckpt) // 2], "corrupt, truncated or another format"),
    "damaged": (lambda ckpt, marker: ckpt[:200] + bytes(200) + ckpt[400:], "corrupt"),
    "random bytes": (lambda ckpt, marker: random.Random(0).randbytes(4096), "corrupt, truncated or another format"),
    "empty": (lambda ckpt, marker: b"", "corrupt, truncated or another format"),
    "zip, not torch": (lambda ckpt, marker: zipped({"notes.txt": "hello"}), "corrupt or truncated"),
    "foreign dict": (lambda ckpt, marker: saved({"a": torch.zeros(1)}), "format tag is missing"),
    "foreign list": (lambda ckpt, marker: saved([torch.zeros(1)]), "format tag is missing"),
    "other format": (lambda ckpt, marker: resaved(ckpt, lambda p: p.update(format="seq2seq-playground/9")),
                     "format tag is missing"),
    "other size": (lambda ckpt, marker: resaved(ckpt, first_model(lambda m: m["config"].update(hidden_dim=32))),
                   "does not match its config"),
    "other size, version 1": (lambda ckpt, marker: version_1(ckpt, hidden_dim=32), "does not match its config"),
    "other vocab": (lambda ckpt, marker: resaved(ckpt, lambda p: p["tgt_vocab"].append("zillion")),
                    "does not match its config"),
    "missing weights": (lambda ckpt, marker: resaved(ckpt, first_model(lambda m: m["state_dict"].popitem())),
                        "does not match its config"),
    "bad vocab": (lambda ckpt, marker: resaved(ckpt, lambda p: p.update(src_vocab=torch.zeros(3))),
                  "does not match its config"),
    "bad step": (lambda ckpt, marker: resaved(ckpt, lambda p: p.update(step="many")), "does not match its config"),
    "no models": (lambda ckpt, marker: resaved(ckpt, lambda p: p.update(models=[])), "it holds no model"),
    "models not a list": (lambda ckpt, marker: resaved(ckpt, lambda p: p.update(models={"a": 1})),
                          "it holds no model"),
    "model not a dict": (lambda ckpt, marker: resaved(ckpt, lambda p: p["models"].append([1])),
                         "does not match its config"),
    "config not a dict": (lambda ckpt, marker: resaved(ckpt, first_model(lambda m: m.update(config=[1]))),
                          "does not match its config"),
    "invalid config": (lambda ckpt, marker: resaved(ckpt, first_model(lambda m: m["config"].update(lr=99.0))),
                       r"the checkpoint's config is invalid: lr = 99\.0 is not allowed"),
    "damaged custom pairs": (lambda ckpt, marker: resaved(ckpt, lambda p: p.update(custom='{"pairs": 3}')),
                             "the checkpoint's custom pairs are invalid"),
    "custom task without pairs": (
        lambda ckpt, marker: resaved(ckpt, first_model(lambda m: m["config"].update(
            task="custom", custom_data=OTHER_PAIRS.fingerprint))),
        "custom task does not hold the pairs it was trained on"),
    "custom task with other pairs": (
        lambda ckpt, marker: resaved(ckpt, lambda p: (p.update(custom=OTHER_PAIRS.to_json().decode()),
                                                      p["models"][0]["config"].update(task="custom",
                                                                                      custom_data="0" * 16))),
        "custom task does not hold the pairs it was trained on"),
    "pickled code": (lambda ckpt, marker: evil(marker), "refused: the file holds Python objects"),
    "pickled code, version 2": (lambda ckpt, marker: evil_v2(marker), "refused: the file holds Python objects"),
    "pickled code, legacy format": (lambda ckpt, marker: evil(marker, _use_new_zipfile_serialization=False),
                                    "corrupt, truncated or another format"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_bad_checkpoints_are_refused(case: str, checkpoint: bytes, tmp_path: Path) -> None:
    make, message = REFUSED[case]
    marker = tmp_path / "code-ran"
    data = make(checkpoint, marker)
    path = tmp_path / "upload.pt"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(source)
    assert not marker.exists()


def test_pickled_code_would_really_run_without_weights_only(tmp_path: Path) -> None:
    """Proof that the payload above is live: a plain torch.load runs it."""
    marker = tmp_path / "code-ran"
    torch.load(io.BytesIO(evil(marker)), weights_only=False)
    assert marker.exists()


def test_a_resume_state_that_is_not_a_dict_is_ignored(checkpoint: bytes) -> None:
    loaded = load_checkpoint(resaved(checkpoint, lambda p: p.update(resume=[1, 2])))
    assert loaded.resume is None and loaded.step == 3


def test_missing_checkpoint_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot read the checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
