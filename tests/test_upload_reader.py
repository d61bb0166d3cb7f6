"""Uploads are read in a child process with its memory and time capped, bounded before anything is unpickled or
built: a crafted pickle of millions of empty lists and a checkpoint listing its weights hundreds of times are
refused, and the reader's peak memory (its own ru_maxrss) stays within 200 MB of reading a real checkpoint."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from playground.cli import main
from playground.core.tasks import TaskError, parse_custom_csv
from playground.experiments.comparison import MAX_COMPARE_SEEDS, MAX_MODEL_ARMS
from playground.training.checkpoints import MAX_SAVED_MODELS, CheckpointError, load_checkpoint
from playground.training.run_folder import CHECKPOINT_FILE
from playground.training.upload_reader import read_checkpoint, read_custom_csv

ROOT = Path(__file__).resolve().parents[1]
MAX_GROWTH = 200 * 1024**2
TINY_FLAGS = ["--hidden-dim", "8", "--emb-dim", "4", "--steps", "2", "--val-size", "16", "--batch-size", "4",
              "--device", "cpu", "--quiet"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real training run's checkpoint, a real comparison's, and files crafted from the first."""
    folder = tmp_path_factory.mktemp("uploads")
    assert main(["train", *TINY_FLAGS, "--runs-dir", str(folder / "train")]) == 0
    assert main(["compare", "--ratios", "0,1", *TINY_FLAGS, "--runs-dir", str(folder / "compare")]) == 0
    pairs = folder / "pairs.csv"
    pairs.write_text("source,target\n" + "".join(f"{n},{n * 2}\n" for n in range(40)))
    assert main(["train", "--task", "custom", "--custom-csv", str(pairs), *TINY_FLAGS,
                 "--runs-dir", str(folder / "custom")]) == 0
    (real,) = (folder / "train").glob(f"*/{CHECKPOINT_FILE}")
    (custom,) = (folder / "custom").glob(f"*/{CHECKPOINT_FILE}")
    (compared,) = (folder / "compare").glob(f"*/{CHECKPOINT_FILE}")
    files = {"real": real, "comparison": compared, "custom": custom}
    files["empty lists"] = empty_lists(real, folder / "lists.pt")
    for name, times in (("300 copies", 300), ("60 copies", 60)):
        files[name] = listed_copies(real, folder / f"{times}.pt", times)
    return files


def empty_lists(real: Path, target: Path, lists: int = 8_000_000) -> Path:
    """`real` with its data.pkl replaced by `lists` empty lists (about a byte each), every entry stored."""
    with zipfile.ZipFile(real) as source, zipfile.ZipFile(target, "w") as crafted:
        for entry in source.infolist():
            chunk = b"(" + b"]" * 1000 + b"e"  # MARK, 1000 x EMPTY_LIST, APPENDS
            crafted.writestr(entry, b"\x80\x02]" + chunk * (lists // 1000) + b"." if entry.filename.endswith("data.pkl")
                             else source.read(entry))
    return target


def listed_copies(real: Path, target: Path, times: int) -> Path:
    """`real` whose models list its one model `times` times: torch.save stores the shared tensors once."""
    payload = torch.load(real, weights_only=True)
    payload["models"] = payload["models"] * times
    torch.save(payload, target)
    return target


def reader(path: Path, tmp_path: Path) -> tuple[int, dict]:
    """The reader's own process, as the server and the CLI start it: exit code and its JSON line."""
    out = tmp_path / path.stem
    out.mkdir()
    child = subprocess.run([sys.executable, "-m", "playground.training.upload_reader", "checkpoint", str(path),
                            str(out), "0"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    return child.returncode, json.loads(child.stdout.splitlines()[-1])


def test_the_app_never_saves_more_models_than_a_checkpoint_may_hold() -> None:
    assert MAX_SAVED_MODELS == MAX_MODEL_ARMS * MAX_COMPARE_SEEDS


def test_crafted_checkpoints_are_refused_within_200_mb_of_reading_a_real_one(checkpoints: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    code, real = reader(checkpoints["real"], tmp_path)
    assert code == 0 and real["count"] == 1
    assert checkpoints["empty lists"].stat().st_size > 8_000_000
    for name, reason in (("empty lists", "pickle .* holds more than 500,000 operations"),
                         ("300 copies", "lists 300 models; at most 72"),
                         ("60 copies", "build [0-9,]+ bytes of weights, but the file stores [0-9,]+ bytes")):
        code, answer = reader(checkpoints[name], tmp_path)
        assert code == 2, (name, answer)
        assert re.search(reason, answer["refused"]), (name, answer)
        assert answer["peak_bytes"] - real["peak_bytes"] < MAX_GROWTH, (name, answer["peak_bytes"] / 1024**2)


def test_decode_of_the_crafted_pickle_exits_2(checkpoints: dict[str, Path]) -> None:
    child = subprocess.run([sys.executable, "-m", "playground", "decode", str(checkpoints["empty lists"]),
                            "--source", "abc"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert child.returncode == 2
    assert "holds more than 500,000 operations" in child.stderr and "Traceback" not in child.stderr


def test_the_reader_gives_back_only_the_model_asked_for_with_the_files_weights(checkpoints: dict[str, Path]) -> None:
    compared = load_checkpoint(checkpoints["comparison"])
    loaded, count = read_checkpoint(checkpoints["comparison"].read_bytes(), 1)
    assert count == len(compared.models) == 2 and len(loaded.models) == 1
    assert loaded.models[0].label == compared.models[1].label and loaded.config == compared.models[1].config
    expected = compared.models[1].model.state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in loaded.model.state_dict().items())
    assert loaded.src_vocab.itos == compared.src_vocab.itos and loaded.step == compared.step
    beyond, count = read_checkpoint(checkpoints["comparison"], 5)
    assert count == 2 and not beyond.models
    trained_on_pairs, _ = read_checkpoint(checkpoints["custom"])
    assert trained_on_pairs.custom == load_checkpoint(checkpoints["custom"]).custom is not None
    with pytest.raises(CheckpointError, match="lists 300 models"):
        read_checkpoint(checkpoints["300 copies"].read_bytes())


def test_a_csv_is_read_by_the_reader_as_the_library_parses_it() -> None:
    data = b"source,target\nab,ba\nabc,cba\nbca,acb\n"
    assert read_custom_csv(data, "char") == parse_custom_csv(data, "char")
    with pytest.raises(TaskError, match="line 2 has 3 columns"):
        read_custom_csv(b"source,target\na,b,c\nab,ba\n", "char")
