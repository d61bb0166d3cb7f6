"""Text from a person (a run's name, a value from a link) shown as text: Streamlit renders Markdown in progress
texts, alerts and captions, and a name like `![x](http://host/pixel.png)` would make every viewer's browser fetch
that address."""

from __future__ import annotations

import re

MARKDOWN_SIGNS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:&=])")


def plain(text: str) -> str:
    """`text` with every Markdown sign (and Streamlit's `:color[...]`, `:emoji:` and `$math$`) backslash-escaped,
    on one line: it shows exactly as typed."""
    return MARKDOWN_SIGNS.sub(r"\\\1", " ".join(str(text).splitlines()))
