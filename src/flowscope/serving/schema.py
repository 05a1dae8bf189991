"""Request rows checked against a model's signature, column by column.

A request is refused (422) when a column is missing, unknown or holds a value of the wrong
type, naming the column but never echoing the value back. Missing values are accepted in
number and text columns, which the training pipeline imputes, and refused in integer and
boolean ones, which cannot hold them; infinities are refused everywhere, as the imputers
would fail on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_FLOAT_TYPES = {"double", "float"}
_INTEGER_TYPES = {"long", "integer"}
_PLAIN_NUMBERS = {float, int, type(None)}
_NAME_LIMIT = 60


class SchemaError(FlowscopeError):
    """A request that does not fit the model's signature."""

    status = 422


def shown(name: object) -> str:
    """A column name as an error message may quote it: shortened, never the payload."""
    text = str(name)
    return repr(text if len(text) <= _NAME_LIMIT else text[:_NAME_LIMIT] + "…")


@dataclass(frozen=True)
class Column:
    """One input column of a signature: its name, MLflow type and whether it is required."""

    name: str
    type: str
    required: bool = True

    @property
    def numpy_dtype(self) -> str:
        if self.type in _FLOAT_TYPES:
            return "float64"
        if self.type in _INTEGER_TYPES:
            return "int64"
        return "bool" if self.type == "boolean" else "object"


@dataclass(frozen=True)
class InputSchema:
    """The columns a served model takes, in the signature's order.

    ``extra_columns`` says what a request's columns outside the signature get: "refuse"
    (flowscope's ``/predict``: a misspelt optional column would otherwise be imputed
    without a word) or "ignore" (MLflow's ``/invocations``, which drops them)."""

    columns: tuple[Column, ...]
    extra_columns: str = "refuse"

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    @classmethod
    def from_signature(cls, signature: Any) -> InputSchema:
        """Read an MLflow signature's column-based inputs; tensor signatures are refused."""
        inputs = getattr(signature, "inputs", None)
        if inputs is None or not inputs.has_input_names():
            raise FlowscopeError("the model has no column signature; flowscope serves only those")
        columns = []
        for spec in inputs.inputs:
            kind = getattr(spec.type, "name", str(spec.type))
            columns.append(Column(str(spec.name), str(kind), bool(getattr(spec, "required", True))))
        return cls(tuple(columns))

    def ignoring_extra_columns(self) -> InputSchema:
        """This schema as MLflow's scoring server applies it: other columns are dropped."""
        return replace(self, extra_columns="ignore")

    def check_names(self, names: Sequence[Any]) -> None:
        """Refuse unknown columns (unless ignored), and required columns that are absent."""
        known = {column.name for column in self.columns}
        for name in names:
            if name not in known and self.extra_columns == "refuse":
                raise SchemaError(f"unknown column {shown(name)}; the model takes {len(known)}")
        given = set(names)
        for column in self.columns:
            if column.required and column.name not in given:
                raise SchemaError(f"missing column {shown(column.name)}")

    def columns_from_records(self, records: Sequence[Any]) -> dict[str, list[Any]]:
        """Records (one dict per row) as checked columns of plain values."""
        if not records:
            raise FlowscopeError("no records to predict")
        first = records[0]
        if not isinstance(first, Mapping):
            raise FlowscopeError("each record must be a JSON object of column: value")
        keys = list(first)
        self.check_names(keys)
        key_set = set(keys)
        for record in records:
            if not isinstance(record, Mapping):
                raise FlowscopeError("each record must be a JSON object of column: value")
            if record.keys() != key_set:
                self.check_names(list(record))
                raise SchemaError("records do not all have the same columns")
        return {
            column.name: check_values(
                column,
                [record[column.name] for record in records]
                if column.name in key_set
                else [None] * len(records),
            )
            for column in self.columns
        }

    def columns_from_split(self, names: Sequence[Any], rows: Sequence[Any]) -> dict[str, list]:
        """``{"columns": [...], "data": [[...], ...]}`` (pandas' split orient) as columns."""
        if not isinstance(names, list) or not isinstance(rows, list):
            raise FlowscopeError("dataframe_split needs a list of columns and a list of rows")
        if not rows:
            raise FlowscopeError("no rows to predict")
        self.check_names(names)
        if len(set(names)) != len(names):
            raise SchemaError("a column is named twice")
        width = len(names)
        for row in rows:
            if not isinstance(row, list) or len(row) != width:
                raise FlowscopeError(f"each row must be a list of {width} values")
        position = {name: index for index, name in enumerate(names)}
        by_column = list(zip(*rows, strict=True))  # transposed in C
        columns: dict[str, list[Any]] = {}
        for column in self.columns:
            index = position.get(column.name)
            values = [None] * len(rows) if index is None else list(by_column[index])
            columns[column.name] = check_values(column, values)
        return columns

    def columns_from_mapping(self, data: Mapping[str, Any]) -> dict[str, list[Any]]:
        """``{"column": [values...]}`` (tf-serving's columnar ``inputs``) as columns."""
        self.check_names(list(data))
        lengths = {len(v) if isinstance(v, list) else -1 for v in data.values()}
        if len(lengths) != 1 or -1 in lengths or 0 in lengths:
            raise FlowscopeError("columnar inputs need one non-empty list of values per column")
        rows = lengths.pop()
        return {
            column.name: check_values(column, list(data.get(column.name) or [None] * rows))
            for column in self.columns
        }

    def checked_frame(self, frame: pd.DataFrame) -> dict[str, list[Any]]:
        """A parsed table (an uploaded CSV) as checked columns."""
        import pandas as pd

        names = [str(name) for name in frame.columns]
        self.check_names(names)
        if len(set(names)) != len(names):
            raise SchemaError("a column is named twice")
        if frame.empty:
            raise FlowscopeError("the table has no rows to predict")
        columns: dict[str, list[Any]] = {}
        for column in self.columns:
            if column.name not in frame.columns:
                columns[column.name] = [None] * len(frame)
                continue
            series = frame[column.name]
            if column.type in _FLOAT_TYPES | _INTEGER_TYPES and series.dtype == object:
                # CSV cells of a number column that did not parse: a text among numbers
                converted = pd.to_numeric(series, errors="coerce")
                if (converted.isna() & series.notna()).any():
                    raise SchemaError(f"column {shown(column.name)} expects numbers")
                series = converted
            values = series.astype(object).where(series.notna(), None).tolist()
            columns[column.name] = check_values(column, values)
        return columns


def check_values(column: Column, values: list[Any]) -> list[Any]:
    """Check one column's values against its type; returns them, missing ones as None."""
    kind = column.type
    # The common cases are decided by the set of value types, in C; the loops below only
    # run for the rest (numpy scalars from a parsed table, and errors).
    types = set(map(type, values))
    if kind in _FLOAT_TYPES and types <= _PLAIN_NUMBERS:
        if float in types and (math.inf in values or -math.inf in values):
            raise SchemaError(f"column {shown(column.name)} holds an infinite value")
        return values
    if (kind in _INTEGER_TYPES and types <= {int}) or (kind == "boolean" and types <= {bool}):
        return values
    if kind not in _FLOAT_TYPES | _INTEGER_TYPES | {"boolean"} and types <= {str, type(None)}:
        return values
    if kind in _FLOAT_TYPES:
        for index, value in enumerate(values):
            cls = type(value)
            if cls is float:
                if not math.isfinite(value):
                    if value != value:
                        continue
                    raise SchemaError(f"column {shown(column.name)} holds an infinite value")
            elif cls is int or value is None:
                continue
            elif isinstance(value, float | int) and not isinstance(value, bool):
                values[index] = float(value)  # numpy scalars from a parsed table
            else:
                raise SchemaError(f"column {shown(column.name)} expects numbers")
        return values
    if kind in _INTEGER_TYPES:
        for index, value in enumerate(values):
            if value is None or (isinstance(value, float) and value != value):
                raise SchemaError(
                    f"column {shown(column.name)} is an integer column and cannot "
                    "hold missing values"
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SchemaError(f"column {shown(column.name)} expects integers")
            if isinstance(value, float):
                if not value.is_integer():
                    raise SchemaError(f"column {shown(column.name)} expects integers")
                values[index] = int(value)
        return values
    if kind == "boolean":
        for value in values:
            if value is None or (isinstance(value, float) and value != value):
                raise SchemaError(
                    f"column {shown(column.name)} is a boolean column and cannot "
                    "hold missing values"
                )
            if not isinstance(value, bool):
                raise SchemaError(f"column {shown(column.name)} expects true or false")
        return values
    for index, value in enumerate(values):
        if value is None or isinstance(value, str):
            continue
        if isinstance(value, float) and value != value:
            values[index] = None
            continue
        raise SchemaError(f"column {shown(column.name)} expects text")
    return values


def to_arrays(schema: InputSchema, columns: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
    """Checked columns as one NumPy array per column, of the signature's types."""
    import numpy as np

    data: dict[str, np.ndarray] = {}
    for column in schema.columns:
        values = columns[column.name]
        try:
            if column.numpy_dtype == "float64":
                data[column.name] = np.array(values, dtype=np.float64)  # None becomes NaN
            elif column.numpy_dtype == "object":
                array = np.empty(len(values), dtype=object)
                array[:] = values
                data[column.name] = array
            else:
                data[column.name] = np.array(values, dtype=column.numpy_dtype)
        except OverflowError:  # a JSON integer beyond the column's type
            raise SchemaError(f"column {shown(column.name)} holds a number too large") from None
    return data


def to_frame(schema: InputSchema, columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """Checked columns as the DataFrame the model's pipeline takes."""
    import pandas as pd

    return pd.DataFrame(to_arrays(schema, columns), copy=False)
