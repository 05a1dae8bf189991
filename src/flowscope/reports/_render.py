"""Rendering reports from the Jinja2 templates in ``templates/``.

HTML templates are autoescaped, so every name, description and reason a user wrote comes
out as text, never as markup; markdown templates are not (markdown has no escaping of its
own beyond a table cell's pipes, which the ``md_cell`` filter handles). The HTML is one
self-contained page, its CSS inline and no external assets, so a report opens the same
from a mail attachment, a CI artifact or an offline laptop.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["FORMATS", "md_fence", "md_text", "number", "render", "when"]

# A report format and the extension of its templates.
FORMATS = {"html": "html", "markdown": "md"}


def number(value: Any, digits: int = 4) -> str:
    """A metric as a person reads it: 4 significant digits, blanks for missing values."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def when(ms: Any) -> str:
    """Milliseconds since the epoch as UTC."""
    if not isinstance(ms, int | float):
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _md_cell(value: Any) -> str:
    """A markdown table cell: pipes escaped, newlines folded, None blank."""
    return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")


# Markdown punctuation that could make text a link, an image, emphasis, code, strikethrough or
# a cell break. An underscore inside a word (n_neighbors) is literal in CommonMark and GitHub's
# Markdown, and parentheses or "!" make nothing without the brackets, which are escaped.
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")
# What starts a heading, a list item or a thematic break at the start of a line.
_MD_BLOCK_START = re.compile(r"^(\s*)(#+(?=\s|$)|[+-](?=\s|$)|-{3,}|={3,}|\d+(?=[.)](?:\s|$)))")


def md_text(value: Any) -> str:
    """Text a user wrote (a run name, a parameter value) as Markdown shows it literally:
    ``& < >`` as entities, so no viewer runs it as HTML, markdown punctuation
    backslash-escaped, newlines folded; None blank."""
    text = str("" if value is None else value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text).replace("\r", " ").replace("\n", " ")
    return _MD_BLOCK_START.sub(lambda m: m[1] + _escaped_start(m[2]), text, count=1)


def _escaped_start(start: str) -> str:
    """``#`` as ``\\#``; a list number ``12`` as ``12\\`` before its ``.`` or ``)``."""
    return start + "\\" if start[0].isdigit() else "\\" + start


def md_fence(value: Any) -> str:
    """A fenced code block holding ``value`` whatever backticks it contains."""
    text = str(value)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


@cache
def _environment() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=PackageLoader("flowscope.reports", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html",), disabled_extensions=("md", "css"), default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        number=number, when=when, md_cell=_md_cell, md_text=md_text, md_fence=md_fence
    )
    return environment


def render(report: str, fmt: str, context: dict[str, Any]) -> str:
    """``report`` (``versions``, ``deployed``) rendered as ``fmt`` (``html`` or
    ``markdown``) from ``context``."""
    extension = FORMATS.get(fmt)
    if extension is None:
        raise FlowscopeError(f"{fmt!r} is not a report format; use html or markdown")
    return _environment().get_template(f"{report}.{extension}").render(context)
