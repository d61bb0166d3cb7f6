"""Uploads read outside the server: a checkpoint or a custom CSV someone sent is parsed in a short-lived child
process whose address space (RLIMIT_AS) and CPU time the OS caps, so a crafted file costs the server a process
start, never its memory or its GIL. The child validates everything (`checkpoints.check_checkpoint`,
`tasks.parse_custom_csv`) and hands back a canonical result written by this code: a JSON summary and, for a
checkpoint, the weights of the one model asked for, re-saved from plain tensors, and a custom task's pairs. The
server checks each file's size against its bound (the weights against what the summary's validated config
builds) before it reads it, and builds only that model.

The same entry point serves the app and the CLI (`decode` of a checkpoint file):
`python -m playground.training.upload_reader checkpoint|csv INPUT OUTPUT_FOLDER INDEX|TOKENIZATION` prints one
JSON line (`refused` with the reason, or what it wrote) and its own peak memory, and exits 2 for a refused file.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from playground.core.config import ConfigError, TrainConfig
from playground.core.files import FileTooLarge, read_bounded
from playground.core.tasks import MAX_CUSTOM_BYTES, CustomPairs, TaskError, parse_custom_csv
from playground.model.seq2seq import Seq2Seq
from playground.training.checkpoints import (
    MAX_CHECKPOINT_BYTES,
    PARAMETER_BYTES,
    CheckpointError,
    LoadedCheckpoint,
    SavedModel,
    check_checkpoint,
    portable,
    saved_vocab,
)
from playground.training.trainer import build_model

READ_SECONDS = 120  # wall clock for one file; the CPU limit is the same
# Address space beyond what the child holds once torch is imported: the file, torch's copy of its tensors and
# the re-saved model (each at most the file's size), and room for the unpickled plain data.
ADDRESS_HEADROOM = 768 * 1024**2
SUMMARY_FILE, MODEL_FILE, PAIRS_FILE = "summary.json", "model.pt", "pairs.json"
MAX_PAIRS_JSON = 6 * MAX_CUSTOM_BYTES  # a CSV's pairs as JSON: under 5 bytes a byte of the CSV
MAX_SUMMARY_BYTES = 2 * MAX_PAIRS_JSON + 1024**2  # one config and two vocabularies (each token escaped as JSON)
MODEL_FILE_OVERHEAD = 64 * 1024  # torch.save's zip directory and pickle around a state dict's tensors
EXIT_REFUSED = 2


def read_checkpoint(source: Path | bytes, index: int = 0) -> tuple[LoadedCheckpoint, int]:
    """Model `index` of a checkpoint (the only model built), with how many models the file holds; a refused file
    raises CheckpointError. `index` past the last model gives a checkpoint with no model."""
    with tempfile.TemporaryDirectory(prefix="playground-upload-") as folder:
        out = Path(folder)
        answer = _run_child("checkpoint", source, out, str(index), CheckpointError)
        try:
            summary = json.loads(_bounded(out / SUMMARY_FILE, MAX_SUMMARY_BYTES, CheckpointError))
            src_vocab = saved_vocab(summary["src_vocab"], summary["src_separator"])
            tgt_vocab = saved_vocab(summary["tgt_vocab"], summary["tgt_separator"])
            pairs = CustomPairs.from_json(_bounded(out / PAIRS_FILE, MAX_PAIRS_JSON, CheckpointError)) \
                if summary["custom"] else None
            models = []
            if 0 <= index < answer["count"]:
                config = TrainConfig.from_dict(portable(summary["config"]))
                models.append(SavedModel(str(summary["label"]), config,
                                         _load_model(out / MODEL_FILE, config, len(src_vocab), len(tgt_vocab))))
            loaded = LoadedCheckpoint(models, src_vocab, tgt_vocab, int(summary["step"]), pairs, None)
        except (ConfigError, TaskError, KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"the checkpoint's reader gave back a damaged answer: {error}") from None
    return loaded, int(answer["count"])


def read_custom_csv(data: bytes, tokenization: str) -> CustomPairs:
    """The pairs of an uploaded CSV, or TaskError with what is wrong."""
    with tempfile.TemporaryDirectory(prefix="playground-upload-") as folder:
        out = Path(folder)
        _run_child("csv", data, out, tokenization, TaskError)
        return CustomPairs.from_json(_bounded(out / PAIRS_FILE, MAX_PAIRS_JSON, TaskError))


def _load_model(path: Path, config: TrainConfig, src_size: int, tgt_size: int) -> Seq2Seq:
    model = build_model(config, src_size, tgt_size)
    expected = sum(math.prod(value.shape) for value in model.state_dict().values()) * PARAMETER_BYTES
    if path.stat().st_size > expected + MODEL_FILE_OVERHEAD:
        raise ValueError(f"its model file has {path.stat().st_size:,} bytes, its config builds {expected:,}")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def _bounded(path: Path, limit: int, error: type[Exception]) -> bytes:
    try:
        return read_bounded(path, limit, "the reader's answer")
    except (FileTooLarge, OSError) as problem:
        raise error(f"the upload's reader gave back no usable answer: {problem}") from None


def _run_child(kind: str, source: Path | bytes, out: Path, argument: str, error: type[Exception]) -> dict[str, Any]:
    """Run the reader on `source` (bytes are handed over in a file of `out`); its answer, or `error` raised."""
    if isinstance(source, bytes):
        given = out / "upload"
        given.write_bytes(source)
    else:
        given = source
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    try:
        child = subprocess.run([sys.executable, "-m", "playground.training.upload_reader", kind, str(given),
                                str(out), argument], capture_output=True, text=True, timeout=READ_SECONDS, env=env,
                               stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise error(f"refused: reading the file took longer than {READ_SECONDS} s") from None
    lines = child.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    if "refused" in answer:
        raise error(str(answer["refused"]))
    if child.returncode != 0 or "count" not in answer:
        raise error("refused: reading the file needed more memory or time than allowed, or it is damaged")
    return answer


def _limit_resources(input_bytes: int) -> None:
    """Cap this process's CPU time, and its address space at what it holds now plus what reading `input_bytes`
    may need (where /proc tells what it holds: Linux)."""
    resource.setrlimit(resource.RLIMIT_CPU, (READ_SECONDS, READ_SECONDS))
    try:
        with open("/proc/self/statm") as statm:
            held = int(statm.read().split()[0]) * resource.getpagesize()
    except OSError:
        return
    cap = held + 3 * input_bytes + ADDRESS_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _read_checkpoint_here(source: Path, out: Path, index: int) -> dict[str, Any]:
    checked = check_checkpoint(source)
    first = checked.models[0]
    chosen = checked.models[index] if 0 <= index < len(checked.models) else first
    summary = {"step": checked.step, "label": chosen.label, "config": chosen.config.as_dict(),
               "src_vocab": checked.src_vocab.itos, "tgt_vocab": checked.tgt_vocab.itos,
               "src_separator": checked.src_vocab.separator, "tgt_separator": checked.tgt_vocab.separator,
               "custom": checked.custom is not None}
    (out / SUMMARY_FILE).write_text(json.dumps(summary))
    if checked.custom is not None:
        (out / PAIRS_FILE).write_bytes(checked.custom.to_json())
    if 0 <= index < len(checked.models):  # clones: a comparison's weights are views of one stacked storage
        torch.save({name: value.clone() for name, value in chosen.state.items()}, out / MODEL_FILE)
    return {"count": len(checked.models)}


def _read_csv_here(source: Path, out: Path, tokenization: str) -> dict[str, Any]:
    try:
        data = read_bounded(source, MAX_CUSTOM_BYTES, "the CSV file")
    except FileTooLarge as error:
        raise TaskError(str(error)) from None
    pairs = parse_custom_csv(data, tokenization)
    (out / PAIRS_FILE).write_bytes(pairs.to_json())
    return {"count": len(pairs.pairs)}


def main(argv: list[str]) -> int:
    kind, source, out, argument = argv
    source_path = Path(source)
    try:
        _limit_resources(min(source_path.stat().st_size, MAX_CHECKPOINT_BYTES + 1))
        if kind == "checkpoint":
            answer = _read_checkpoint_here(source_path, Path(out), int(argument))
        else:
            answer = _read_csv_here(source_path, Path(out), argument)
        code = 0
    except (CheckpointError, TaskError) as error:
        answer, code = {"refused": str(error)}, EXIT_REFUSED
    except MemoryError:
        answer, code = {"refused": "refused: reading the file needs more memory than a valid one"}, EXIT_REFUSED
    except OSError as error:
        answer, code = {"refused": f"cannot read the file: {error.strerror}"}, EXIT_REFUSED
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(answer | {"peak_bytes": peak}))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
