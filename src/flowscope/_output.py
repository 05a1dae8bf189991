"""One formatter for every list the CLI prints: a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMATS = ("table", "json", "csv")
_PREFIXES = ("metrics.", "params.", "tags.")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP's advice: prefix ')."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def columns_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every key of every row, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or columns_of(rows))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe_cell(column) for column in columns])
    for row in rows:
        writer.writerow([safe_cell(_plain(row.get(column))) for column in columns])
    return out.getvalue()


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, allow_nan=False)


def _plain(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(
    rows: Sequence[Mapping[str, Any]],
    fmt: str,
    columns: Sequence[str] | None = None,
    title: str | None = None,
) -> str | None:
    """Print-ready text for ``json`` and ``csv``; for ``table``, print a rich table and
    return None."""
    if fmt == "json":
        return to_json([{key: _json_value(value) for key, value in row.items()} for row in rows])
    if fmt == "csv":
        return to_csv(rows, columns)
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    columns = list(columns or columns_of(rows))
    for column in columns:
        # "metrics.accuracy" reads as "accuracy" in a table header; the prefix is for filters
        header = column.split(".", 1)[-1] if column.startswith(_PREFIXES) else column
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    Console().print(table)
    return None


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value
