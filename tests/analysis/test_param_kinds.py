"""Parameter kinds read from MLflow's text values."""

from __future__ import annotations

from flowscope.analysis.param_kinds import UNSET, param_axes


def rows(column: str, values: list[str | None]) -> list[dict[str, str | None]]:
    return [{} if value is None else {column: value} for value in values]


def test_a_grids_few_numbers_are_categories_in_numeric_order() -> None:
    [axis] = param_axes(rows("params.k", ["15", "3", "7", "3"]), ["params.k"])
    assert (axis.kind, axis.name, axis.choices) == ("categorical", "k", ("3", "7", "15"))
    assert axis.value({"params.k": "7"}) == "7"


def test_many_numbers_are_a_numeric_axis_int_or_float() -> None:
    ints = [str(n) for n in range(1, 9)]
    [axis] = param_axes(rows("params.depth", ints), ["params.depth"])
    assert (axis.kind, axis.low, axis.high, axis.integer) == ("numeric", 1.0, 8.0, True)
    assert axis.value({"params.depth": "4"}) == 4
    floats = ["0.001", "0.01", "0.1", "1e-4", "0.5", "0.05", "0.2"]
    [axis] = param_axes(rows("params.lr", floats), ["params.lr"])
    assert (axis.kind, axis.low, axis.high, axis.integer) == ("numeric", 1e-4, 0.5, False)


def test_text_and_missing_values_are_categories() -> None:
    values = ["gini", "entropy", None, "gini", "log_loss", "True", "x", "y"]
    [axis] = param_axes(rows("params.c", values), ["params.c"])
    assert axis.kind == "categorical"
    assert axis.choices == ("True", "entropy", "gini", "log_loss", "x", "y", UNSET)
    assert axis.value({}) == UNSET
    numbers_with_a_gap = [str(n) for n in range(8)] + [None]
    [axis] = param_axes(rows("params.n", numbers_with_a_gap), ["params.n"])
    assert axis.kind == "categorical" and axis.choices[-1] == UNSET


def test_numbers_mixed_with_text_keep_numeric_order_then_text() -> None:
    [axis] = param_axes(rows("params.max_depth", ["12", "None", "3", "6"]), ["params.max_depth"])
    assert axis.kind == "categorical"
    assert axis.choices == ("3", "6", "12", "None")
