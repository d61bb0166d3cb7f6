"""An attention model on the Hidden states and Decode pages in a real browser: the alignment heatmap and the
current step's attention row."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import screenshot
from tests.browser.harness import upload_checkpoint, wait_idle

pytestmark = pytest.mark.browser

TRACE = """key => {
  const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  return plot && plot._fullData ? [plot._fullData[0].type, plot._fullData[0].z ? plot._fullData[0].z.length : 0,
                                   plot._fullData[0].x ? plot._fullData[0].x.length : 0] : null;
}"""


@pytest.fixture
def attention_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint of a tiny dot-attention model trained for 40 steps (reverse, sources of exactly 5)."""
    from playground.core.config import TrainConfig
    from playground.training.checkpoints import save_checkpoint
    from playground.training.trainer import Trainer

    trainer = Trainer(TrainConfig(hidden_dim=16, emb_dim=8, steps=40, val_size=50, min_len=5, max_len=5,
                                  attention="dot"))
    for _ in range(40):
        trainer.train_step()
    path = tmp_path / "attention.pt"
    save_checkpoint(path, [("", trainer.config, trainer.model.state_dict())], trainer.task, trainer.step, None,
                    trainer.resume_state())
    return path


def test_an_attention_model_shows_where_it_looked(streamlit_server: str, browser_page,
                                                  attention_checkpoint: Path) -> None:
    page = browser_page
    upload_checkpoint(page, streamlit_server, "Hidden states", "Hidden and cell states", attention_checkpoint)
    page.wait_for_selector(".st-key-hs_alignment .js-plotly-plot")
    wait_idle(page)
    kind, rows, columns = page.evaluate(TRACE, "hs_alignment")
    assert kind == "heatmap" and rows >= 1 and columns == 5  # output steps x the 5 source positions
    assert page.get_by_text("Attention: where each output step looked in the source").count() == 1
    screenshot(page, "attention-hidden-states")
    upload_checkpoint(page, streamlit_server, "Decode", "Decode, step by step", attention_checkpoint)
    page.wait_for_selector(".st-key-dc_attention_row .js-plotly-plot")
    wait_idle(page)
    kind, _, bars = page.evaluate(TRACE, "dc_attention_row")
    assert kind == "bar" and bars == 5
    screenshot(page, "attention-decode")
