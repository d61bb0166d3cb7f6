"""Run folders on disk: config.json, metrics.csv, checkpoint.pt.

Checkpoints hold only tensors and plain data (state_dict, config dict, vocab
token lists) and are read with `torch.load(weights_only=True)`, so a file can
never run code; anything unexpected is refused with a `CheckpointError`.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from playground.core.config import ConfigError, TrainConfig
from playground.core.devices import device_choices
from playground.core.model import Seq2Seq
from playground.core.tasks import Vocab
from playground.training.trainer import Trainer, build_model

CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE = "config.json", "metrics.csv", "checkpoint.pt"
CHECKPOINT_FORMAT = "seq2seq-playground/1"
METRIC_COLUMNS = (
    "step", "seconds", "train_loss", "teacher_forcing_ratio", "lr",
    "val_tf_loss", "val_tf_ppl", "val_tf_token_acc", "val_tf_exact",
    "val_fr_loss", "val_fr_ppl", "val_fr_token_acc", "val_fr_exact",
)


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, foreign, unsafe or does not match its config."""


def create_run_dir(runs_dir: Path, name: str) -> Path:
    """A new, unique folder named by time and the run's name."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:60] or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        path = Path(runs_dir) / f"{stamp}-{slug}" if attempt == 0 else Path(runs_dir) / f"{stamp}-{slug}-{attempt}"
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run folder name under {runs_dir}")


def write_config(run_dir: Path, config: TrainConfig) -> None:
    (run_dir / CONFIG_FILE).write_text(json.dumps(config.as_dict(), indent=2))


def read_config(run_dir: Path) -> TrainConfig:
    """The run's validated config; a missing or unreadable file is a ConfigError like a bad value."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError([f"cannot read {path}: {error}"]) from None
    if not isinstance(values, dict):
        raise ConfigError([f"{path} must hold a JSON object of settings"])
    return TrainConfig.from_dict(_portable(values))


def metrics_csv(rows: list[dict[str, float]]) -> str:
    """One row per logged step, blank where not evaluated."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_metrics(run_dir: Path, rows: list[dict[str, float]]) -> None:
    """Rewrite metrics.csv atomically."""
    _atomic_write(run_dir / METRICS_FILE, metrics_csv(rows).encode())


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return [{key: float(value) for key, value in row.items() if value not in ("", None)}
                for row in csv.DictReader(file)]


def save_checkpoint(path: Path, trainer: Trainer) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": trainer.config.as_dict(),
        "step": trainer.step,
        "src_vocab": trainer.task.src_vocab.itos,
        "tgt_vocab": trainer.task.tgt_vocab.itos,
        "src_separator": trainer.task.src_vocab.separator,
        "tgt_separator": trainer.task.tgt_vocab.separator,
        "state_dict": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    _atomic_write(Path(path), buffer.getvalue())


@dataclass
class LoadedCheckpoint:
    model: Seq2Seq
    config: TrainConfig
    src_vocab: Vocab
    tgt_vocab: Vocab
    step: int


def load_checkpoint(source: Path | bytes) -> LoadedCheckpoint:
    """Read a checkpoint from a path or uploaded bytes onto the CPU, or raise CheckpointError."""
    try:
        raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read the checkpoint: {error.strerror}") from None
    if not zipfile.is_zipfile(io.BytesIO(raw)):  # torch.save writes zip archives; anything else is not ours
        raise CheckpointError("not a readable PyTorch checkpoint: the file is corrupt, truncated or another format")
    try:
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            "refused: the file holds Python objects other than tensors and plain data (which could run code) "
            "or its data is corrupt; only Seq2Seq Playground checkpoints are accepted"
        ) from None
    except Exception:  # torch raises many types (RuntimeError, EOFError, IndexError, ...) for damaged files
        raise CheckpointError("not a readable PyTorch checkpoint: the file is corrupt or truncated") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError("not a Seq2Seq Playground checkpoint: its format tag is missing")
    try:
        if not isinstance(payload["config"], dict):
            raise TypeError("its config is not a dictionary")
        config = TrainConfig.from_dict(_portable(payload["config"]))
        src_vocab = _vocab(payload["src_vocab"], payload["src_separator"])
        tgt_vocab = _vocab(payload["tgt_vocab"], payload["tgt_separator"])
        model = build_model(config, len(src_vocab), len(tgt_vocab))
        model.load_state_dict(payload["state_dict"])
        step = int(payload.get("step", 0))
    except ConfigError as error:
        raise CheckpointError(f"the checkpoint's config is invalid: {error}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise CheckpointError(f"the checkpoint does not match its config: {error}") from None
    model.eval()
    return LoadedCheckpoint(model, config, src_vocab, tgt_vocab, step)


def _vocab(tokens: Any, separator: Any) -> Vocab:
    if not isinstance(tokens, list | tuple) or not all(isinstance(t, str) for t in tokens):
        raise TypeError("a vocabulary is not a list of text tokens")
    if not isinstance(separator, str):
        raise TypeError("a vocabulary separator is not text")
    return Vocab(list(tokens), separator)


def _portable(config: dict[str, Any]) -> dict[str, Any]:
    """A saved config may name a GPU this machine lacks: fall back to the automatic choice."""
    if isinstance(config, dict) and config.get("device") not in device_choices():
        return {**config, "device": "auto"}
    return config


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
