"""The Glossary covers every word the pages use, and a page's link to a term lands on its entry."""

from __future__ import annotations

from playground.course.glossary import TERMS, anchor, term_link

USED_ON_PAGES = ("beam search", "greedy decoding", "log-probability", "length normalisation", "top-k",
                 "context vector", "pca", "confidence interval", "p-value", "paired test", "arm", "coin", "fr and tf",
                 "nats", "argmax", "embedding", "softmax", "special tokens")


def test_every_word_the_pages_use_has_an_entry() -> None:
    assert set(USED_ON_PAGES) <= set(TERMS)
    assert all(token in TERMS["special tokens"].text for token in ("<sos>", "<eos>", "<pad>", "<unk>"))


def test_a_term_link_points_at_the_anchor_of_its_entry() -> None:
    assert term_link("beam search") == "[beam search](glossary#beam-search)"
    assert term_link("p-value", "p-values") == f"[p-values](glossary#{anchor(TERMS['p-value'].title)})"


def test_no_formula_or_text_holds_a_control_character() -> None:
    """A LaTeX command written in a plain string loses its backslash (\\t is a tab, \\f a form feed, \\b a
    backspace, \\a a bell): the formula then shows "anh" for \\tanh, or fails to render."""
    for term in TERMS.values():
        assert term.formula.isprintable() and term.text.replace("\n", " ").isprintable(), term.title
