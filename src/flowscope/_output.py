"""One formatter for every list the CLI prints: a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMATS = ("table", "json", "csv")
_PREFIXES = ("metrics.", "params.", "tags.")
# RFC 4180's line end: with it the csv writer quotes a cell holding a lone carriage return
# ("\n" as the line end leaves such a cell bare and a reader sees a new row in it).
_CSV_LINE_END = "\r\n"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number, as a spreadsheet reads one: "-1", "+3", "-0.5", "-.5", "-1e-3".
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP's advice: prefix ').

    Only text is neutralised: a signed number (LightGBM's ``max_depth=-1``, a negative
    metric) reads as that number in every spreadsheet and stays as it is; anything else
    that starts with ``= + - @``, a tab or a carriage return gets the quote.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        if _NUMBER.fullmatch(value):
            return value
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
    writer = csv.writer(out, lineterminator=_CSV_LINE_END)
    writer.writerow([safe_cell(column) for column in columns])
    for row in rows:
        writer.writerow([safe_cell(_plain(row.get(column))) for column in columns])
    return out.getvalue()


def frame_to_csv(frame: Any) -> str:
    """A DataFrame as CSV text, its text cells and column names made safe by
    :func:`safe_cell`; number columns are written as they are."""
    from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype

    safe = frame.rename(columns=lambda name: safe_cell(str(name)))
    for position, dtype in enumerate(safe.dtypes):
        if not (is_numeric_dtype(dtype) or is_datetime64_any_dtype(dtype)):
            column = safe.iloc[:, position]
            safe.isetitem(position, column.map(safe_cell, na_action="ignore"))
    return str(safe.to_csv(index=False, lineterminator=_CSV_LINE_END))


def to_json(data: Any) -> str:
    """Indented JSON; NaN and infinite numbers, which JSON cannot hold, become null."""
    return json.dumps(_json_value(data), indent=2, default=str, allow_nan=False)


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
        return to_json([dict(row) for row in rows])
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
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return value
