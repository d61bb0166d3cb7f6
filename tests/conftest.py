from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from playground.runs import registry as runs
from playground.runs import worker

APP = Path(__file__).resolve().parents[1] / "app.py"


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same global RNG state and one CPU thread (2-core machines)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture
def fresh_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A runs folder of the test's own and empty caches: AppTest sessions share the process's registry and caches."""
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    runs.reset_registry()
    st.cache_resource.clear()
    yield
    runs.reset_registry()


def new_app() -> AppTest:
    """The whole app (navigation included) through AppTest; torch's import needs more than the default 3 s."""
    return AppTest.from_file(str(APP), default_timeout=60)


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Run workers forked from this process, so what a test patches here reaches them (fault injection)."""
    monkeypatch.setenv(worker.START_METHOD_ENV, "fork")
    return monkeypatch
