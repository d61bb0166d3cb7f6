"""A hostile checkpoint through the Hidden states page's uploader in a real browser: refused, nothing leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import screenshot
from tests.browser.harness import upload_checkpoint, wait_idle
from tests.test_security import TINY, crafted_checkpoint

pytestmark = pytest.mark.browser


def test_a_checkpoint_naming_a_server_file_shows_nothing_of_it(streamlit_server: str, browser_page,
                                                                 tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("source,target\nroot,hunter2\n")
    checkpoint = tmp_path / "crafted.pt"
    checkpoint.write_bytes(crafted_checkpoint(TINY.as_dict() | {"task": "custom", "custom_csv": str(secret)}))
    page = browser_page
    upload_checkpoint(page, streamlit_server, "Hidden states", "Hidden and cell states", checkpoint)
    page.wait_for_selector("[data-testid=stAlertContentError]")
    wait_idle(page)
    text = page.inner_text("body")
    assert "config is invalid" in text and "needs a CSV file" in text
    assert "hunter2" not in text and str(secret) not in text and "Traceback" not in text
    assert page.locator("[data-testid=stException]").count() == 0
    screenshot(page, "security-crafted-checkpoint")


def test_a_run_name_in_markdown_image_syntax_shows_as_text_and_fetches_nothing(streamlit_server: str,
                                                                                 browser_page) -> None:
    pixel = "http://127.0.0.1:9/pixel.png"
    name = f"![x]({pixel})"
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{streamlit_server}/?hidden_dim=8&emb_dim=4&steps=20&eval_every=10")
    wait_idle(page)
    box = page.get_by_label("Name of the next run", exact=True)
    box.fill(name)
    box.press("Enter")
    wait_idle(page)
    page.click(".st-key-start button")
    progress = page.locator("[data-testid=stProgress]")
    progress.get_by_text("finished").wait_for()
    assert name in progress.inner_text().replace("\u2060", "")  # word joiners break addresses, invisibly
    assert page.locator(f"img[src='{pixel}']").count() == 0
    assert pixel not in requested
    screenshot(page, "security-markdown-name")
