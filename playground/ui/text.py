"""Text from a person (a run's name, a value from a link) shown as text: Streamlit renders Markdown in progress
texts, alerts and captions, and a name like `![x](http://host/pixel.png)` would make every viewer's browser fetch
that address."""

from __future__ import annotations

import re

MARKDOWN_SIGNS = re.compile(r"([\\`*_\[\]<>$~|])")  # links and images need [ ], Streamlit's :color[] too


def plain(text: str) -> str:
    """`text` on one line with the signs of inline Markdown backslash-escaped: no link, image, emphasis, code,
    `$math$` or Streamlit `:color[...]` can form, so it shows as typed (line-start signs such as # cannot act
    inside one line of a message)."""
    return MARKDOWN_SIGNS.sub(r"\\\1", " ".join(str(text).splitlines()))
