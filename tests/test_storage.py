"""Run folders: config, metrics and checkpoints round-trip; anything foreign or unsafe is refused clearly."""

import io
import json
import random
import zipfile
from pathlib import Path

import pytest
import torch

from playground.core.config import ConfigError, TrainConfig
from playground.training.storage import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRIC_COLUMNS,
    METRICS_FILE,
    CheckpointError,
    create_run_dir,
    load_checkpoint,
    read_config,
    read_metrics,
    save_checkpoint,
    write_config,
    write_metrics,
)
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


@pytest.fixture(scope="module")
def checkpoint(trainer: Trainer, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / CHECKPOINT_FILE
    save_checkpoint(path, trainer)
    return path.read_bytes()


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
    assert first.name.endswith("-my-run-ratio-0.5")
    assert create_run_dir(tmp_path, "///").name.endswith("-run")


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
    assert lines[1] == "1,0.5,2.5,0.5,0.01" + "," * 8  # not evaluated: blank cells
    back = read_metrics(tmp_path)
    assert back[0] == rows[0]
    assert back[1] == {k: v for k, v in rows[1].items() if k != "not_a_column"}
    assert not list(tmp_path.glob("*.tmp"))


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
        assert loaded.src_vocab.itos == trainer.task.src_vocab.itos
        assert loaded.tgt_vocab.itos == trainer.task.tgt_vocab.itos
        assert (loaded.src_vocab.separator, loaded.tgt_vocab.separator) == ("", " ")
        with torch.inference_mode():
            assert torch.equal(loaded.model(src, tgt, 1.0), expected[0])
            assert torch.equal(loaded.model(src, tgt, 0.0), expected[1])


def test_custom_checkpoint_loads_without_its_csv(tmp_path: Path) -> None:
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("".join(f"{w} x,x {w}\n" for w in ["a", "b", "c", "d", "e", "f"]))
    trainer = Trainer(CONFIG.replace(task="custom", custom_csv=str(csv_path), custom_tokenization="space"))
    save_checkpoint(tmp_path / CHECKPOINT_FILE, trainer)
    csv_path.unlink()
    loaded = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert loaded.src_vocab.itos[4:] == ["a", "b", "c", "d", "e", "f", "x"]
    assert loaded.src_vocab.tokenize("b x") == ["b", "x"]


def test_checkpoint_of_a_missing_gpu_loads_on_cpu(checkpoint: bytes) -> None:
    moved = resaved(checkpoint, lambda payload: payload["config"].update(device="cuda:9"))
    assert load_checkpoint(moved).config.device == "auto"


def evil(marker: Path, **options) -> bytes:
    return saved({"format": "seq2seq-playground/1", "config": WritesAFile(marker)}, **options)


REFUSED = {
    "truncated": (lambda ckpt, marker: ckpt[: len(ckpt) // 2], "corrupt, truncated or another format"),
    "damaged": (lambda ckpt, marker: ckpt[:200] + bytes(200) + ckpt[400:], "corrupt"),
    "random bytes": (lambda ckpt, marker: random.Random(0).randbytes(4096), "corrupt, truncated or another format"),
    "empty": (lambda ckpt, marker: b"", "corrupt, truncated or another format"),
    "zip, not torch": (lambda ckpt, marker: zipped({"notes.txt": "hello"}), "corrupt or truncated"),
    "foreign dict": (lambda ckpt, marker: saved({"a": torch.zeros(1)}), "format tag is missing"),
    "foreign list": (lambda ckpt, marker: saved([torch.zeros(1)]), "format tag is missing"),
    "other size": (lambda ckpt, marker: resaved(ckpt, lambda p: p["config"].update(hidden_dim=32)),
                   "does not match its config"),
    "other vocab": (lambda ckpt, marker: resaved(ckpt, lambda p: p["tgt_vocab"].append("zillion")),
                    "does not match its config"),
    "missing weights": (lambda ckpt, marker: resaved(ckpt, lambda p: p["state_dict"].popitem()),
                        "does not match its config"),
    "bad vocab": (lambda ckpt, marker: resaved(ckpt, lambda p: p.update(src_vocab=torch.zeros(3))),
                  "does not match its config"),
    "bad step": (lambda ckpt, marker: resaved(ckpt, lambda p: p.update(step="many")), "does not match its config"),
    "config not a dict": (lambda ckpt, marker: resaved(ckpt, lambda p: p.update(config=[1])),
                          "does not match its config"),
    "invalid config": (lambda ckpt, marker: resaved(ckpt, lambda p: p["config"].update(lr=99.0)),
                       r"the checkpoint's config is invalid: lr = 99\.0 is not allowed"),
    "pickled code": (lambda ckpt, marker: evil(marker), "refused: the file holds Python objects"),
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


def test_missing_checkpoint_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot read the checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
