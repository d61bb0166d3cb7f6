"""Every formula of the Glossary renders in a real browser: KaTeX draws it, with no error and every command a
command (a `\\tanh` that lost its backslash reads "anh")."""

from __future__ import annotations

import pytest

from playground.course.glossary import TERMS
from tests.browser.conftest import screenshot
from tests.browser.harness import wait_idle

pytestmark = pytest.mark.browser

RENDERED = """() => [...document.querySelectorAll('[data-testid=stMain] .katex')].map(k => ({
  error: k.querySelector('.katex-error') !== null || k.classList.contains('katex-error'),
  text: (k.querySelector('.katex-mathml annotation') || {}).textContent || '',
  shown: k.querySelector('.katex-html') ? k.querySelector('.katex-html').innerText : ''}))"""


def test_every_formula_renders_without_an_error(streamlit_server: str, browser_page: object) -> None:
    page = browser_page
    page.goto(f"{streamlit_server}/glossary")
    wait_idle(page)
    page.wait_for_selector("[data-testid=stMain] .katex")
    formulas = [term.formula for term in TERMS.values() if term.formula]
    rendered = page.evaluate(RENDERED)
    screenshot(page, "glossary-1500")
    assert page.locator("[data-testid=stMain] .katex-error").count() == 0
    assert [item["text"].strip() for item in rendered] == [formula.strip() for formula in formulas]
    assert not any(item["error"] for item in rendered)
    shown = {item["text"]: item["shown"] for item in rendered}
    for formula in formulas:
        if r"\tanh" in formula:
            assert "tanh" in shown[formula.strip()]
