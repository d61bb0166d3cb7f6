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
