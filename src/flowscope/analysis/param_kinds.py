"""What kind of values a parameter took across runs: numbers on a scale, or categories.

MLflow keeps every parameter as text, so the kind is read from the values: a parameter is
*numeric* when every run has it, every value reads as a finite number and there are more
than :data:`FEW_VALUES` distinct ones; anything else is *categorical*, its choices sorted
(numerically when they are all numbers, so ``n_neighbors`` reads 3, 7, 15), a run without
it counting as the choice :data:`UNSET`. A grid's three values of ``n_neighbors`` are
categories: each is a setting someone chose, and the report says which does best.

The comparison report charts and groups parameters by these kinds, and
:mod:`flowscope.tuning.run_trials` turns them into Optuna distributions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FEW_VALUES", "UNSET", "ParamAxis", "param_axes", "parse_number"]

FEW_VALUES = 6
UNSET = "(unset)"


def parse_number(text: Any) -> float | None:
    """``text`` as a finite float, or None when it is not a number."""
    if text is None or isinstance(text, bool):
        return None
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class ParamAxis:
    """One parameter as the report sees it: ``column`` (``params.<name>``), ``name``,
    ``kind`` ("numeric" or "categorical"); numeric ones have ``low``, ``high`` and
    ``integer``, categorical ones their ``choices`` in display order."""

    column: str
    name: str
    kind: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    integer: bool = False

    def value(self, row: Mapping[str, Any]) -> Any:
        """The run's value: a number on a numeric axis (an int where ``integer``), else
        the choice (the text MLflow holds, or :data:`UNSET`)."""
        raw = row.get(self.column)
        if self.kind == "categorical":
            return UNSET if raw is None else str(raw)
        number = parse_number(raw)
        if number is None:
            raise ValueError(f"{self.column} is not a number: {raw!r}")
        return int(number) if self.integer else number

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParamAxis:
        """The axis :meth:`as_dict` described (the report's JSON)."""
        return cls(
            data["column"],
            data["name"],
            data["kind"],
            tuple(data["choices"]),
            data["low"],
            data["high"],
            data["integer"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "name": self.name,
            "kind": self.kind,
            "choices": list(self.choices),
            "low": self.low,
            "high": self.high,
            "integer": self.integer,
        }


def param_axes(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[ParamAxis]:
    """The axis of each ``params.<name>`` column over ``rows``, in the order given."""
    return [_axis(rows, column) for column in columns]


def _axis(rows: Sequence[Mapping[str, Any]], column: str) -> ParamAxis:
    name = column.removeprefix("params.")
    raw = [row.get(column) for row in rows]
    texts = {str(value) for value in raw if value is not None}
    numbers = {text: parse_number(text) for text in texts}
    all_numbers = all(number is not None for number in numbers.values())
    if all_numbers and None not in raw and len(texts) > FEW_VALUES:
        values = [number for number in numbers.values() if number is not None]
        return ParamAxis(
            column,
            name,
            "numeric",
            low=min(values),
            high=max(values),
            integer=all(_is_integer(text) for text in texts),
        )
    # numbers in numeric order, then text (max_depth 3, 6, 12, None)
    ordered = sorted(
        texts,
        key=lambda text: (0, numbers[text], text) if numbers[text] is not None else (1, 0.0, text),
    )
    if None in raw:
        ordered.append(UNSET)
    return ParamAxis(column, name, "categorical", choices=tuple(ordered))


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
