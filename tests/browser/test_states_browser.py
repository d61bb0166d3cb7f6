"""Upload a really trained checkpoint to the Hidden states page in a real browser and find its heatmaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import screenshot
from tests.browser.harness import upload_checkpoint, wait_idle

pytestmark = pytest.mark.browser

TRACE_TYPE = """key => {
  const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  return plot && plot._fullData ? plot._fullData[0].type : null;
}"""


def show_checkpoint(page, url: str, checkpoint: Path) -> None:
    """Open the page, upload the checkpoint, wait for the first heatmap and the PCA plane."""
    upload_checkpoint(page, url, "Hidden states", "Hidden and cell states", checkpoint)
    page.wait_for_selector(".st-key-hs_encoder_0_h .js-plotly-plot")
    page.wait_for_selector(".st-key-hs_pca .js-plotly-plot")
    wait_idle(page)


def test_a_trained_checkpoint_shows_state_heatmaps(streamlit_server: str, browser_page,
                                                   trained_checkpoint: Path) -> None:
    page = browser_page
    show_checkpoint(page, streamlit_server, trained_checkpoint)
    assert page.evaluate(TRACE_TYPE, "hs_encoder_0_h") == "heatmap"
    assert page.evaluate(TRACE_TYPE, "hs_decoder_0_c") == "heatmap"
    assert page.evaluate(TRACE_TYPE, "hs_pca") == "scatter"
    assert page.get_by_text("Download states (.npz)").count() == 1
    screenshot(page, "hidden-states")

