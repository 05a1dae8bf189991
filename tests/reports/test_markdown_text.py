"""A user's string in a Markdown report renders as that string, whatever it holds, in a
CommonMark renderer (markdown-it-py, the parser rich uses), and reads without needless
backslashes as raw text."""

from __future__ import annotations

import html

import pytest
from markdown_it import MarkdownIt

from flowscope.reports._render import md_text

HOSTILE = [
    "<script>alert(1)</script>",
    "[click](https://example.com)",
    "![img](x.png)",
    "**bold** and _emphasis_ and ~~gone~~",
    "`code`",
    "# heading",
    "- a list item",
    "+ another",
    "1. numbered",
    "3) numbered",
    "---",
    "===",
    "a | cell | break",
    "back\\slash",
    "line\nbreak",
    "&amp; entity",
]
PLAIN = ["n_neighbors", "max_depth=6 (grid)", "0.95", "-1.5", "f1_macro!", "#tag", "a+b"]


@pytest.mark.parametrize("text", HOSTILE + PLAIN)
def test_a_string_renders_as_itself(text: str) -> None:
    rendered = MarkdownIt("commonmark").enable("strikethrough").render(md_text(text))
    assert rendered == f"<p>{html.escape(text.replace(chr(10), ' '), quote=False)}</p>\n"


@pytest.mark.parametrize("text", PLAIN)
def test_ordinary_text_is_left_as_it_is(text: str) -> None:
    assert md_text(text) == text
