"""Self-contained HTML for reports: one page with its CSS inline and no external assets,
so a report opens the same from a mail attachment, a CI artifact or an offline laptop."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;margin:2rem auto;
max-width:1100px;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid
#d0d7de;padding-bottom:.2rem}h3{font-size:1rem;margin-top:1.4rem}
p.meta{color:#59636e;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:1rem;padding:0 .5rem;font-size:12px;background:#eaeef2}
.production{background:#dafbe1;color:#116329}.staging{background:#ddf4ff;color:#0550ae}
.archived{background:#eaeef2;color:#59636e}.candidate{background:#fff8c5;color:#7d4e00}
.pass{color:#116329}.fail{color:#cf222e}
img{max-width:100%}code{background:#f6f8fa;padding:0 .25rem;border-radius:4px}
"""


def esc(value: Any) -> str:
    return escape("" if value is None else str(value))


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


def badge(state: str | None) -> str:
    return f'<span class="badge {esc(state)}">{esc(state)}</span>' if state else ""


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()
) -> str:
    """An HTML table; cells are escaped unless they are :class:`Raw`, and the columns at
    ``numeric`` are right-aligned."""
    head = "".join(
        f'<th class="num">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = "".join(
            (f'<td class="num">{_cell(cell)}</td>' if i in numeric else f"<td>{_cell(cell)}</td>")
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw(str):
    """Markup that :func:`table` inserts as is (already escaped by whoever built it)."""


def _cell(cell: Any) -> str:
    return str(cell) if isinstance(cell, Raw) else esc(cell)


def page(title: str, body: str, subtitle: str = "") -> str:
    """A complete HTML document with the report's CSS inline."""
    meta = f'<p class="meta">{esc(subtitle)}</p>' if subtitle else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1>{meta}{body}</body></html>\n"
    )


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; pipes and newlines in cells are escaped."""

    def cell(value: Any) -> str:
        return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
