"""Hostile students against a real shared-mode server in Chromium: a run's name full of links, icons and a
right-to-left override shows as plain text in another viewer's progress line; a control key and a teacher token
leave no entry in the tab's history; crafted checkpoints are refused while the server's memory stays put."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import screenshot
from tests.browser.harness import ROOT, streamlit_app, upload_checkpoint, wait_idle
from tests.hostile_client import rss_bytes
from tests.test_upload_reader import empty_lists, listed_copies

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEACHER_TOKEN = "teacher-token-for-the-hostile-tests"
HOSTILE_NAME = "https://e.vil www.e.vil \u202egnp.exe :material/warning: :red[R]"
MB = 1024**2


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A shared-mode server with a teacher, and its runs folder."""
    folder = tmp_path_factory.mktemp("hostile-browser")
    patch = pytest.MonkeyPatch()
    patch.setenv("PLAYGROUND_SHARED", "1")
    patch.setenv("PLAYGROUND_TEACHER_TOKEN", TEACHER_TOKEN)
    try:
        with (folder / "streamlit.log").open("w+") as log, streamlit_app(folder / "runs", log) as url:
            yield url, folder / "runs"
    finally:
        patch.undo()


def test_a_hostile_name_shows_as_plain_text_in_another_viewers_progress_line(served: tuple[str, Path],
                                                                             browser_page) -> None:
    url, runs_dir = served
    trained = subprocess.run([sys.executable, "-m", "playground", "train", "--hidden-dim", "8", "--emb-dim", "4",
                              "--steps", "4", "--val-size", "16", "--runs-dir", str(runs_dir), "--name", HOSTILE_NAME,
                              "--quiet", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    run_id = Path(trained.stdout.split('"run_dir": "')[1].split('"')[0]).name
    page = browser_page
    page.goto(f"{url}/?run={run_id}")
    wait_idle(page)
    progress = page.locator("[data-testid=stProgress]")
    progress.get_by_text("finished").wait_for()
    text = progress.inner_text()
    assert "https://e.vil www.e.vil gnp.exe :material/warning: :red[R]" in text.replace("\u2060", "")
    assert "\u202e" not in text
    assert progress.locator("a").count() == 0 and progress.locator("[data-testid=stIconMaterial]").count() == 0
    screenshot(page, "hostile-name")


@pytest.mark.parametrize(("link", "secret"), [("control=control-key-never-kept", "control-key-never-kept"),
                                              (f"teacher={TEACHER_TOKEN}", TEACHER_TOKEN)])
def test_a_link_secret_leaves_no_entry_in_the_tabs_history(served: tuple[str, Path], browser_page, link: str,
                                                           secret: str) -> None:
    url, _ = served
    page = browser_page
    page.goto(f"{url}/?{link}")
    wait_idle(page)
    page.wait_for_function(f"() => !location.href.includes({secret!r})")
    page.wait_for_timeout(1000)  # anything the page would push has been pushed
    for _ in range(page.evaluate("() => history.length")):  # Back, to the tab's first page
        page.go_back()
        page.wait_for_timeout(500)
        assert secret not in page.url
        if page.url == "about:blank":
            break


def test_crafted_checkpoints_are_refused_and_the_server_keeps_its_memory(served: tuple[str, Path], browser_page,
                                                                         trained_checkpoint: Path,
                                                                         tmp_path: Path) -> None:
    url, _ = served
    port = int(url.rsplit(":", 1)[1])
    page = browser_page
    for crafted, reason in ((empty_lists(trained_checkpoint, tmp_path / "lists.pt"), "more than 500,000 operations"),
                            (listed_copies(trained_checkpoint, tmp_path / "copies.pt", 300), "lists 300 models")):
        before = rss_bytes(port)
        upload_checkpoint(page, url, "Hidden states", "Hidden and cell states", crafted)
        page.locator("[data-testid=stAlertContentError]").get_by_text(reason).wait_for(timeout=180_000)
        wait_idle(page)
        assert page.locator("[data-testid=stException]").count() == 0
        assert rss_bytes(port) - before < 200 * MB, (crafted.name, (rss_bytes(port) - before) / MB)
    screenshot(page, "hostile-checkpoint")
