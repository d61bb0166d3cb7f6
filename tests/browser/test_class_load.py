"""Load: 12 students (real browser contexts) share one server in shared mode, each with the seat link the teacher
issued them; half start a short run (hidden 16), half a lesson. Every run ends finished (or is still queued with its
place shown), nothing is lost, nobody's list holds another's run, and a 13th student's page opens while they train.
The figures are printed (-s shows them), not asserted: on a shared 2-core machine they measure the neighbours too."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from playground.course.lessons import STEPS_ENV
from playground.runs.seats import SEATS_FILE, SeatBook
from playground.training.run_folder import read_run_file
from tests.browser.harness import ServerError, streamlit_app, wait_idle

pytestmark = pytest.mark.browser

STUDENTS = 12
RUN_ID = re.compile(r"\d{8}-\d{6}-[\w.-]+?-[0-9a-f]{16}")


@pytest.fixture(scope="module")
def class_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    monkeypatch = pytest.MonkeyPatch()
    for name, value in {"PLAYGROUND_SHARED": "1", STEPS_ENV: "10"}.items():
        monkeypatch.setenv(name, value)
    folder = tmp_path_factory.mktemp("class")
    with (folder / "streamlit.log").open("w+") as log:
        try:
            with streamlit_app(folder / "runs", log) as url:
                yield url, folder / "runs"
        except ServerError as error:
            pytest.fail(str(error))
        finally:
            monkeypatch.undo()


def listed_ids(page: object, path: str, kind: str) -> set[str]:
    """Every run id in the student's runs list of one page (its dropdown holds them all)."""
    page.goto(path)
    wait_idle(page)
    page.get_by_text("Runs: open, rename, delete, download").click()
    wait_idle(page)
    box = page.locator(f".st-key-manage_{kind} [data-testid=stSelectbox] input")
    for _ in range(3):  # a click that lands while the page is still settling may not open the list
        box.click()
        try:
            return set(RUN_ID.findall(page.locator("[role=listbox]").inner_text(timeout=10_000)))
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"the runs list of {path} did not open")


@pytest.mark.timeout(600)  # about 200 s on 2 busy cores (the suite's 300 s per test is too tight for 13 pages)
def test_twelve_students_share_one_server(class_server: tuple[str, Path], browser: object) -> None:
    url, runs_dir = class_server
    contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(STUDENTS + 1)]
    try:
        pages = [context.new_page() for context in contexts]
        for page in pages:
            page.set_default_timeout(120_000)
        keys = [SeatBook(runs_dir / SEATS_FILE).issue(f"student {index}")[1] for index in range(STUDENTS)]
        began = time.monotonic()
        for index, page in enumerate(pages[:STUDENTS]):  # the class opens the app at once, each by their seat link
            page.goto(f"{url}/lessons?seat={keys[index]}" if index % 2 else f"{url}/?seat={keys[index]}&hidden_dim=16"
                      "&emb_dim=8&steps=30&eval_every=10&val_size=64", wait_until="commit")
        for index, page in enumerate(pages[:STUDENTS]):
            wait_idle(page)
            if index % 2:  # a lesson asks for a prediction before its Start
                page.click(".st-key-prediction_exposure_bias [role=radiogroup] label >> nth=0")
                wait_idle(page)
            page.click(".st-key-lesson_start button" if index % 2 else ".st-key-start button")
        started = time.monotonic() - began
        late = time.monotonic()
        pages[STUDENTS].goto(url)  # the 13th student, while the class trains
        wait_idle(pages[STUDENTS])
        pages[STUDENTS].wait_for_selector("text=Train a seq2seq model")
        opened = time.monotonic() - late
        for index, page in enumerate(pages[:STUDENTS]):
            page.wait_for_selector("text=What this run shows" if index % 2 else "text=— finished —")
        finished = time.monotonic() - began
        print(f"\n{STUDENTS} students started in {started:.1f} s; the 13th page opened in {opened:.1f} s; "
              f"every run finished {finished:.1f} s after the first page load", flush=True)
        lists = [listed_ids(page, f"{url}/compare" if index % 2 else url, "compare" if index % 2 else "train")
                 for index, page in enumerate(pages[:STUDENTS])]
        on_disk = {path.name: read_run_file(path) for path in runs_dir.iterdir() if path.is_dir()}
        assert [len(ids) for ids in lists] == [1] * STUDENTS  # each sees their own run, nobody else's
        assert sorted(next(iter(ids)) for ids in lists) == sorted(on_disk)  # nothing lost, nothing extra
        assert {info["status"] for info in on_disk.values() if info} == {"finished"}
        assert len({info["owner"] for info in on_disk.values() if info}) == STUDENTS  # one owner each
    finally:
        for context in contexts:
            context.close()
