"""Text from a person (a run's name, a token, a value from a link) shown as text: Streamlit renders Markdown in
progress texts, alerts, captions and titles, and a name like `![x](http://host/pixel.png)` would make every
viewer's browser fetch that address.

Backslash escapes stop what the Markdown parser builds (links, images, emphasis, code, `$math$`, `:red[...]`);
they cannot stop what Streamlit and GFM find in the parsed text afterwards: bare addresses (`https://…`,
`www.…`, `a@b.example`) become links, `:material/…:` icons and `:smile:` emoji shortcodes. A WORD JOINER (U+2060,
invisible, no line break) after each `:` and `@` and inside `www.` breaks those patterns while the text reads the
same.
"""

from __future__ import annotations

import re

from playground.core.config import visible_text

MARKDOWN_SIGNS = re.compile(r"([\\`*_\[\]<>$~|#])")  # links and images need [ ], Streamlit's :color[] too
WORD_JOINER = "\u2060"
FOUND_AFTER_PARSING = re.compile(r"([:@])|(?<=www)(?=\.)", re.IGNORECASE)


def plain(text: str) -> str:
    """`text` as visible characters on one line (`config.visible_text`: no controls, no bidi overrides), with the
    signs of inline Markdown backslash-escaped and autolinks, icons and emoji shortcodes broken, so it shows as
    typed and nothing in it acts."""
    escaped = MARKDOWN_SIGNS.sub(r"\\\1", visible_text(text))
    return FOUND_AFTER_PARSING.sub(lambda match: (match.group(1) or "") + WORD_JOINER, escaped)
