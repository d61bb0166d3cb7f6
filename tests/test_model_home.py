"""The model's one home: playground/model imports torch and the standard library, and of the playground only
itself, so the exported script can hold it whole and the app's machinery reaches it only through its hook."""

from __future__ import annotations

import ast
import sys
import threading
from pathlib import Path

import pytest
import torch

from playground.core import interrupt
from playground.core.config import TrainConfig
from playground.export.model_source import MODEL_MODULES, TOKENS_MODULE
from playground.model import step_hook
from playground.training.trainer import Trainer

MODEL_DIR = Path(__file__).resolve().parent.parent / "playground" / "model"


def imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules.append(node.module or "")
    return modules


@pytest.mark.parametrize("path", sorted(MODEL_DIR.glob("*.py")), ids=lambda path: path.name)
def test_the_model_imports_torch_and_itself_only(path: Path) -> None:
    foreign = [module for module in imported_modules(path) if module.split(".")[0] not in sys.stdlib_module_names
               and module.split(".")[0] != "torch" and not module.startswith("playground.model")]
    assert foreign == []


class Abandon(Exception):
    pass


def test_the_exported_script_holds_every_model_module() -> None:
    held = {module.__name__.rsplit(".", 1)[1] for module in (*MODEL_MODULES, TOKENS_MODULE)}
    assert held == {path.stem for path in MODEL_DIR.glob("*.py")} - {"__init__"}


def test_a_stop_reaches_the_model_through_its_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever is installed is called between the model's steps and may abandon one; with nothing installed the
    model runs."""
    trainer = Trainer(TrainConfig(hidden_dim=8, emb_dim=4, batch_size=4, val_size=16, max_len=5, steps=2))
    calls: list[int] = []
    monkeypatch.setattr(step_hook, "_hook", lambda: calls.append(1))
    trainer.train_step()
    assert len(calls) >= 4  # the encoder's call and its gradient, and each of unroll's steps forward and backward

    def abandon() -> None:
        raise Abandon

    monkeypatch.setattr(step_hook, "_hook", abandon)
    batch = next(trainer.batches)
    with pytest.raises(Abandon):
        trainer.model(batch.src, batch.tgt, 0.5)
    monkeypatch.setattr(step_hook, "_hook", None)
    before = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    trainer.train_step()
    assert any(not torch.equal(before[name], value) for name, value in trainer.model.state_dict().items())


def test_the_app_installs_its_stop_check() -> None:
    event = threading.Event()
    event.set()
    with interrupt.requests(event), interrupt.undoable(), pytest.raises(interrupt.Interrupted):
        step_hook.between_steps()
