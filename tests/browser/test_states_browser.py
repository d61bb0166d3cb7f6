"""Upload a really trained checkpoint to the Hidden states page in a real browser and find its heatmaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.core.config import TrainConfig
from playground.training.storage import save_checkpoint
from playground.training.trainer import Trainer
from tests.browser.conftest import screenshot
from tests.browser.harness import wait_idle

pytestmark = pytest.mark.browser

TRACE_TYPE = """key => {
  const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  return plot && plot._fullData ? plot._fullData[0].type : null;
}"""


def show_checkpoint(page, url: str, checkpoint: Path) -> None:
    """Open the page, upload the checkpoint, wait for the first heatmap and the PCA plane."""
    page.goto(url)
    wait_idle(page)
    page.get_by_test_id("stSidebarNav").get_by_text("Hidden states", exact=True).click()
    page.wait_for_selector("text=Hidden and cell states")
    wait_idle(page)
    page.get_by_test_id("stRadioGroup").get_by_text("a checkpoint file", exact=True).click()
    wait_idle(page)
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(checkpoint))
    page.wait_for_selector(".st-key-hs_encoder_0_h .js-plotly-plot")
    page.wait_for_selector(".st-key-hs_pca .js-plotly-plot")
    wait_idle(page)


def test_a_trained_checkpoint_shows_state_heatmaps(streamlit_server: str, browser_page, tmp_path: Path) -> None:
    trainer = Trainer(TrainConfig(hidden_dim=16, emb_dim=8, steps=60, val_size=100, max_len=6))
    for _ in range(60):
        trainer.train_step()
    save_checkpoint(tmp_path / "checkpoint.pt", [("", trainer.config, trainer.model.state_dict())], trainer.task,
                    trainer.step, None, trainer.resume_state())
    page = browser_page
    show_checkpoint(page, streamlit_server, tmp_path / "checkpoint.pt")
    assert page.evaluate(TRACE_TYPE, "hs_encoder_0_h") == "heatmap"
    assert page.evaluate(TRACE_TYPE, "hs_decoder_0_c") == "heatmap"
    assert page.evaluate(TRACE_TYPE, "hs_pca") == "scatter"
    assert page.get_by_text("Download states (.npz)").count() == 1
    screenshot(page, "hidden-states")

