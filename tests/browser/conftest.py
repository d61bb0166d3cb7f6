"""Fixtures: one `streamlit run` per session and one Chromium; screenshots go to test-artifacts/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.browser.harness import CHROMIUM, ROOT, ServerError, chromium, streamlit_app

ARTIFACTS = ROOT / "test-artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is marked `browser` by where it lives: one that forgot its mark still runs apart."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def streamlit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app's URL; its runs folder is a fresh temporary one."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    runs_dir = tmp_path_factory.mktemp("runs")
    with (tmp_path_factory.mktemp("server") / "streamlit.log").open("w+") as log:
        try:
            with streamlit_app(runs_dir, log) as url:
                yield url
        except ServerError as error:
            pytest.fail(str(error))
        finally:
            log.seek(0)
            print(log.read()[-4000:])


@contextmanager
def another_server(tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str]) -> Iterator[str]:
    """A second `streamlit run` with its own empty runs folder and these environment variables."""
    with server_and_runs(tmp_path_factory, name, env) as (url, _):
        yield url


@contextmanager
def server_and_runs(tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str]
                    ) -> Iterator[tuple[str, Path]]:
    """`another_server`, with its runs folder (where a shared server keeps its seats)."""
    monkeypatch = pytest.MonkeyPatch()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    folder = tmp_path_factory.mktemp(name)
    with (folder / "streamlit.log").open("w+") as log:
        try:
            with streamlit_app(folder / "runs", log) as url:
                yield url, folder / "runs"
        except ServerError as error:
            pytest.fail(str(error))
        finally:
            monkeypatch.undo()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def browser_page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture
def trained_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint of a tiny model really trained for 60 steps (reverse, sequences up to 6)."""
    from playground.core.config import TrainConfig
    from playground.training.checkpoints import save_checkpoint
    from playground.training.trainer import Trainer

    trainer = Trainer(TrainConfig(hidden_dim=16, emb_dim=8, steps=60, val_size=100, max_len=6))
    for _ in range(60):
        trainer.train_step()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, [("", trainer.config, trainer.model.state_dict())], trainer.task, trainer.step, None,
                    trainer.resume_state())
    return path


def screenshot(page: object, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its own container, so the viewport grows to the page's height."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 100, 8000)})
    page.wait_for_timeout(1500)  # plotly re-lays out to the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path
