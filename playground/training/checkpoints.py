"""Checkpoints: the weights, vocabularies and training state of a run, written so that reading one is safe.

Checkpoints hold only tensors and plain data (state dicts, config dicts, vocab token lists, random-number
states) and are read with `torch.load(weights_only=True)`, so a file can never run code; anything unexpected is
refused with a `CheckpointError`, bounded before it is allocated: its zip entries must be stored uncompressed (as
torch.save writes them), so what torch inflates is no larger than the bytes read; its vocabularies and every tensor's
shape are checked against what its validated config builds (on the meta device) before a module is built; weights
that are not finite are refused. Every file is written atomically (`core.files.atomic_write`) and read only if it
is a regular file, no further than its size limit. Nothing read from a run folder or a checkpoint is ever used as a
path."""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from playground.core.config import ConfigError, TrainConfig
from playground.core.devices import device_choices
from playground.core.files import DamagedFile, FileTooLarge, atomic_write, read_bounded
from playground.core.tasks import MAX_CUSTOM_VOCAB, SPECIALS, CustomPairs, Task, TaskError, Vocab
from playground.model.seq2seq import Seq2Seq
from playground.training.trainer import build_model

CHECKPOINT_FORMAT = "seq2seq-playground/2"


READABLE_FORMATS = ("seq2seq-playground/1", CHECKPOINT_FORMAT)


MAX_CHECKPOINT_BYTES = 2 * 1024**3  # the largest allowed model (about 60 M parameters) with Adam's state


MAX_VOCAB = MAX_CUSTOM_VOCAB + len(SPECIALS)  # the largest vocabulary any task builds


class CheckpointError(DamagedFile):
    """A checkpoint file is corrupt, foreign, unsafe or does not match its config."""


@dataclass(frozen=True)
class SavedModel:
    label: str
    config: TrainConfig
    model: Seq2Seq


@dataclass
class LoadedCheckpoint:
    """Every model of a run (one for training, K for a comparison), what decodes them, and what resumes them."""

    models: list[SavedModel]
    src_vocab: Vocab
    tgt_vocab: Vocab
    step: int
    custom: CustomPairs | None
    resume: dict[str, Any] | None  # optimizer and random-number states; None in a version-1 checkpoint

    @property
    def model(self) -> Seq2Seq:
        return self.models[0].model

    @property
    def config(self) -> TrainConfig:
        return self.models[0].config


def save_checkpoint(path: Path, models: list[tuple[str, TrainConfig, dict[str, torch.Tensor]]], task: Task,
                    step: int, custom: CustomPairs | None, resume: dict[str, Any]) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "models": [{"label": label, "config": config.as_dict(),
                    "state_dict": {k: v.detach().cpu() for k, v in state.items()}} for label, config, state in models],
        "step": step,
        "src_vocab": task.src_vocab.itos,
        "tgt_vocab": task.tgt_vocab.itos,
        "src_separator": task.src_vocab.separator,
        "tgt_separator": task.tgt_vocab.separator,
        "custom": custom.to_json().decode() if custom is not None else None,
        "resume": resume,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(Path(path), buffer.getvalue())


def load_checkpoint(source: Path | bytes) -> LoadedCheckpoint:
    """Read a checkpoint from a path or uploaded bytes onto the CPU, or raise CheckpointError."""
    try:
        raw = source if isinstance(source, bytes) else read_bounded(source, MAX_CHECKPOINT_BYTES, "the checkpoint")
    except FileTooLarge as error:
        raise CheckpointError(str(error)) from None
    except OSError as error:
        raise CheckpointError(f"cannot read the checkpoint: {error.strerror}") from None
    if not zipfile.is_zipfile(io.BytesIO(raw)):  # torch.save writes zip archives; anything else is not ours
        raise CheckpointError("not a readable PyTorch checkpoint: the file is corrupt, truncated or another format")
    _check_entries(raw)
    try:
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            "refused: the file holds Python objects other than tensors and plain data (which could run code) "
            "or its data is corrupt; only Seq2Seq Playground checkpoints are accepted"
        ) from None
    except Exception:  # torch raises many types (RuntimeError, EOFError, IndexError, ...) for damaged files
        raise CheckpointError("not a readable PyTorch checkpoint: the file is corrupt or truncated") from None
    if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
        raise CheckpointError("not a Seq2Seq Playground checkpoint: its format tag is missing")
    try:
        src_vocab = _vocab(payload["src_vocab"], payload["src_separator"])
        tgt_vocab = _vocab(payload["tgt_vocab"], payload["tgt_separator"])
        entries = payload["models"] if "models" in payload else [
            {"label": "", "config": payload["config"], "state_dict": payload["state_dict"]}]
        if not isinstance(entries, list) or not entries:
            raise TypeError("it holds no model")
        models = [_model(entry, len(src_vocab), len(tgt_vocab)) for entry in entries]
        custom = payload.get("custom")
        pairs = CustomPairs.from_json(custom.encode()) if isinstance(custom, str) else None
        resume = payload.get("resume")
        step = int(payload.get("step", 0))
    except CheckpointError:
        raise
    except ConfigError as error:
        raise CheckpointError(f"the checkpoint's config is invalid: {error}") from None
    except TaskError as error:
        raise CheckpointError(f"the checkpoint's custom pairs are invalid: {error}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise CheckpointError(f"the checkpoint does not match its config: {error}") from None
    if models[0].config.task == "custom" and (pairs is None or pairs.fingerprint != models[0].config.custom_data):
        raise CheckpointError("the checkpoint's custom task does not hold the pairs it was trained on")
    return LoadedCheckpoint(models, src_vocab, tgt_vocab, step, pairs, resume if isinstance(resume, dict) else None)


def _check_entries(raw: bytes) -> None:
    """Every entry stored uncompressed (torch.save never compresses), its stated size its stored size, and all of
    them within the checkpoint's limit, so loading allocates no more than was read: a DEFLATE-compressed entry
    of a few megabytes could inflate to gigabytes. Only the zip's directory is read here, nothing is inflated."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise CheckpointError("not a readable PyTorch checkpoint: its zip directory is damaged") from None
    if any(entry.compress_type != zipfile.ZIP_STORED or entry.file_size != entry.compress_size for entry in entries):
        raise CheckpointError("refused: the checkpoint holds compressed entries, which could inflate far beyond the "
                              "file's size; torch.save stores tensors uncompressed")
    if sum(entry.file_size for entry in entries) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"refused: the checkpoint's tensors are larger than {MAX_CHECKPOINT_BYTES:,} bytes, "
                              "the most allowed")


def _model(entry: Any, src_size: int, tgt_size: int) -> SavedModel:
    """The model, once its config is valid and every tensor has the shape that config builds and finite values."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise TypeError("a model entry is not a dictionary with a config")
    config = TrainConfig.from_dict(portable(entry["config"]))
    state = entry.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise TypeError("a model's state_dict is not a dictionary of tensors")
    with torch.device("meta"):  # shapes only: nothing is allocated
        expected = {name: tuple(value.shape) for name, value in build_model(config, src_size, tgt_size)
                    .state_dict().items()}
    if found := sorted(set(state) ^ set(expected)):
        raise ValueError(f"unexpected or missing weights {', '.join(map(str, found[:3]))}")
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            raise ValueError(f"{name} has shape {tuple(state[name].shape)}, its config builds {shape}")
        if state[name].is_floating_point() and not bool(torch.isfinite(state[name]).all()):
            raise CheckpointError(f"refused: the weights {name} hold values that are not finite (NaN or infinity); "
                                  "such a model cannot be inspected or decoded")
    model = build_model(config, src_size, tgt_size)
    model.load_state_dict(state)
    model.eval()
    return SavedModel(str(entry.get("label", "")), config, model)


def _vocab(tokens: Any, separator: Any) -> Vocab:
    if not isinstance(tokens, list | tuple) or not all(isinstance(t, str) for t in tokens):
        raise TypeError("a vocabulary is not a list of text tokens")
    if len(tokens) > MAX_VOCAB:
        raise CheckpointError(f"refused: a vocabulary holds {len(tokens):,} tokens; at most {MAX_VOCAB:,} are "
                              "allowed (the most any task builds)")
    if not isinstance(separator, str):
        raise TypeError("a vocabulary separator is not text")
    return Vocab(list(tokens), separator)


def portable(config: dict[str, Any]) -> dict[str, Any]:
    """A saved config made loadable here: a GPU this machine lacks becomes "auto", and a version-1 file path
    (`custom_csv`) is dropped unread, so such a custom run is refused for want of its pairs."""
    config = {key: value for key, value in config.items() if key != "custom_csv"}
    if config.get("device") not in device_choices():
        config["device"] = "auto"
    return config
