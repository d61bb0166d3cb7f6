"""Checkpoints: the weights, vocabularies and training state of a run, written so that reading one is safe.

Checkpoints hold only tensors and plain data (state dicts, config dicts, vocab token lists, random-number
states) and are read with `torch.load(weights_only=True)`, so a file can never run code; anything unexpected is
refused with a `CheckpointError`, bounded before it is allocated: its zip entries must be stored uncompressed (as
torch.save writes them), so what torch inflates is no larger than the bytes read; its pickle is counted opcode by
opcode before it is unpickled (a few megabytes of empty lists would cost the unpickler gigabytes); it holds at most
as many models as the app saves, whose parameters its configs build must fit the tensor bytes it stores (the same
weights listed 300 times do not); its vocabularies and every tensor's shape are checked against what its validated
config builds (on the meta device) before a module is built; weights that are not finite are refused. Every file
is written atomically (`core.files.atomic_write`) and read only if it is a regular file, no further than its size
limit. Nothing read from a run folder or a checkpoint is ever used as a path."""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from playground.core.config import ConfigError, TrainConfig
from playground.core.devices import device_choices
from playground.core.files import DamagedFile, FileTooLarge, atomic_write, read_bounded
from playground.core.tasks import MAX_CUSTOM_BYTES, MAX_CUSTOM_VOCAB, SPECIALS, CustomPairs, Task, TaskError, Vocab
from playground.model.seq2seq import Seq2Seq
from playground.training.trainer import build_model

CHECKPOINT_FORMAT = "seq2seq-playground/2"


READABLE_FORMATS = ("seq2seq-playground/1", CHECKPOINT_FORMAT)


MAX_CHECKPOINT_BYTES = 2 * 1024**3  # the largest allowed model (about 60 M parameters) with Adam's state


MAX_VOCAB = MAX_CUSTOM_VOCAB + len(SPECIALS)  # the largest vocabulary any task builds


MAX_SAVED_MODELS = 72  # the most a run saves: a comparison's 24 arms x 3 seeds (experiments.comparison)


# The pickle (data.pkl) holds everything but the tensors' bytes: configs, vocabularies, a custom task's pairs as one
# JSON string (under 6 bytes a byte of its 10 MB CSV), the optimizer's and the data stream's state. The largest a
# run writes, 72 models of 4 layers with attention and Adam (97,500 opcodes) and two vocabularies of 5,004 tokens,
# takes about 130,000 opcodes; unpickling costs up to about 100 bytes an opcode, so the bound keeps a crafted one
# within 50 MB, and scanning it takes about a second.
MAX_PICKLE_BYTES = 6 * MAX_CUSTOM_BYTES + 16 * 1024**2
MAX_PICKLE_OPS = 500_000


PARAMETER_BYTES = 4  # float32: what every saved weight takes at least


DAMAGED = "not a readable PyTorch checkpoint: the file is corrupt or truncated"


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
    """Read a checkpoint from a path or bytes onto the CPU, every model built, or raise CheckpointError."""
    return check_checkpoint(source).built()


@dataclass(frozen=True)
class CheckedModel:
    label: str
    config: TrainConfig
    state: dict[str, torch.Tensor]  # the shapes its config builds, every value finite


@dataclass
class CheckedCheckpoint:
    """A checkpoint's contents, validated, before any module is built: `built` builds only the models asked for."""

    models: list[CheckedModel]
    src_vocab: Vocab
    tgt_vocab: Vocab
    step: int
    custom: CustomPairs | None
    resume: dict[str, Any] | None

    def built(self, indices: list[int] | None = None) -> LoadedCheckpoint:
        chosen = [self.models[index] for index in indices] if indices is not None else self.models
        return LoadedCheckpoint([built_model(model, len(self.src_vocab), len(self.tgt_vocab)) for model in chosen],
                                self.src_vocab, self.tgt_vocab, self.step, self.custom, self.resume)


def built_model(checked: CheckedModel, src_size: int, tgt_size: int) -> SavedModel:
    model = build_model(checked.config, src_size, tgt_size)
    model.load_state_dict(checked.state)
    model.eval()
    return SavedModel(checked.label, checked.config, model)


def check_checkpoint(source: Path | bytes) -> CheckedCheckpoint:
    """Read and validate a checkpoint from a path or bytes, or raise CheckpointError; nothing is built."""
    try:
        raw = source if isinstance(source, bytes) else read_bounded(source, MAX_CHECKPOINT_BYTES, "the checkpoint")
    except FileTooLarge as error:
        raise CheckpointError(str(error)) from None
    except OSError as error:
        raise CheckpointError(f"cannot read the checkpoint: {error.strerror}") from None
    if not zipfile.is_zipfile(io.BytesIO(raw)):  # torch.save writes zip archives; anything else is not ours
        raise CheckpointError("not a readable PyTorch checkpoint: the file is corrupt, truncated or another format")
    tensor_bytes = _check_entries(raw)
    try:
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            "refused: the file holds Python objects other than tensors and plain data (which could run code) "
            "or its data is corrupt; only Seq2Seq Playground checkpoints are accepted"
        ) from None
    except Exception:  # torch raises many types (RuntimeError, EOFError, IndexError, ...) for damaged files
        raise CheckpointError(DAMAGED) from None
    if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
        raise CheckpointError("not a Seq2Seq Playground checkpoint: its format tag is missing")
    try:
        src_vocab = saved_vocab(payload["src_vocab"], payload["src_separator"])
        tgt_vocab = saved_vocab(payload["tgt_vocab"], payload["tgt_separator"])
        entries = payload["models"] if "models" in payload else [
            {"label": "", "config": payload["config"], "state_dict": payload["state_dict"]}]
        if not isinstance(entries, list) or not entries:
            raise TypeError("it holds no model")
        if len(entries) > MAX_SAVED_MODELS:
            raise CheckpointError(f"refused: the checkpoint lists {len(entries):,} models; at most "
                                  f"{MAX_SAVED_MODELS} are allowed (the most a run saves)")
        shapes = [_expected_shapes(entry, len(src_vocab), len(tgt_vocab)) for entry in entries]
        needed = sum(math.prod(shape) for _, expected in shapes for shape in expected.values()) * PARAMETER_BYTES
        if needed > tensor_bytes:
            raise CheckpointError(f"the checkpoint does not match its config: its models' configs build {needed:,} "
                                  f"bytes of weights, but the file stores {tensor_bytes:,} bytes of tensors (models "
                                  "that share or lack weights are refused)")
        models = [_checked_model(entry, config, expected) for entry, (config, expected) in zip(entries, shapes,
                                                                                              strict=True)]
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
    return CheckedCheckpoint(models, src_vocab, tgt_vocab, step, pairs, resume if isinstance(resume, dict) else None)


def _check_entries(raw: bytes) -> int:
    """Every entry stored uncompressed (torch.save never compresses), its stated size its stored size, and all of
    them within the checkpoint's limit, so loading allocates no more than was read: a DEFLATE-compressed entry
    of a few megabytes could inflate to gigabytes. The pickle is scanned, not run, within its bounds. Returns the
    bytes of tensor data stored."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            entries = archive.infolist()
            pickles = [entry for entry in entries if entry.filename.split("/")[-1] == "data.pkl"]
            if any(entry.compress_type != zipfile.ZIP_STORED or entry.file_size != entry.compress_size
                   for entry in entries):
                raise CheckpointError("refused: the checkpoint holds compressed entries, which could inflate far "
                                      "beyond the file's size; torch.save stores tensors uncompressed")
            if sum(entry.file_size for entry in entries) > MAX_CHECKPOINT_BYTES:
                raise CheckpointError(f"refused: the checkpoint's tensors are larger than {MAX_CHECKPOINT_BYTES:,} "
                                      "bytes, the most allowed")
            if len(pickles) != 1:
                raise CheckpointError(DAMAGED)
            if pickles[0].file_size > MAX_PICKLE_BYTES:
                raise CheckpointError(f"refused: its pickle (data.pkl) has {pickles[0].file_size:,} bytes; at most "
                                      f"{MAX_PICKLE_BYTES:,} are allowed (the most a run writes)")
            try:
                data = archive.read(pickles[0])
            except (zipfile.BadZipFile, ValueError, EOFError, OSError):  # a bad CRC or a header overwritten
                raise CheckpointError(DAMAGED) from None
            _count_opcodes(data)
    except CheckpointError:  # a ValueError too
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise CheckpointError("not a readable PyTorch checkpoint: its zip directory is damaged") from None
    return sum(entry.file_size for entry in entries if "/data/" in entry.filename)


def _count_opcodes(data: bytes) -> None:
    """Walk the pickle's opcodes without running them, refusing at the first past MAX_PICKLE_OPS."""
    try:
        for count, _ in enumerate(pickletools.genops(data), 1):
            if count > MAX_PICKLE_OPS:
                raise CheckpointError(f"refused: its pickle (data.pkl) holds more than {MAX_PICKLE_OPS:,} "
                                      "operations, more than any run writes; unpickling it could take gigabytes")
    except CheckpointError:
        raise
    except Exception:  # genops raises ValueError and others for a damaged stream
        raise CheckpointError("not a readable PyTorch checkpoint: its pickle is damaged") from None


def _expected_shapes(entry: Any, src_size: int, tgt_size: int) -> tuple[TrainConfig, dict[str, tuple[int, ...]]]:
    """A model entry's validated config and the shape of every weight it builds (on the meta device)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise TypeError("a model entry is not a dictionary with a config")
    config = TrainConfig.from_dict(portable(entry["config"]))
    with torch.device("meta"):  # shapes only: nothing is allocated
        model = build_model(config, src_size, tgt_size)
    return config, {name: tuple(value.shape) for name, value in model.state_dict().items()}


def _checked_model(entry: dict[str, Any], config: TrainConfig, expected: dict[str, tuple[int, ...]]) -> CheckedModel:
    """The entry once every tensor has the shape its config builds and finite values."""
    state = entry.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise TypeError("a model's state_dict is not a dictionary of tensors")
    if found := sorted(set(state) ^ set(expected)):
        raise ValueError(f"unexpected or missing weights {', '.join(map(str, found[:3]))}")
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            raise ValueError(f"{name} has shape {tuple(state[name].shape)}, its config builds {shape}")
        if state[name].is_floating_point() and not bool(torch.isfinite(state[name]).all()):
            raise CheckpointError(f"refused: the weights {name} hold values that are not finite (NaN or infinity); "
                                  "such a model cannot be inspected or decoded")
    return CheckedModel(str(entry.get("label", "")), config, state)


def saved_vocab(tokens: Any, separator: Any) -> Vocab:
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
