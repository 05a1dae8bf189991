"""A single-record form generated from a model's signature, and its answers read back.

Each input column becomes a field: its MLflow type, whether it is required, and what the
training profile says about it (the categories seen in training for a text column, the
range and median of a number column), so a person can fill it without the data at hand.
A form sends text; :func:`record_from_form` turns it into the record ``POST /predict``
takes, refusing a value of the wrong type with a 422 that names the column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowscope.serving.schema import SchemaError, shown

if TYPE_CHECKING:
    from flowscope.serving.model import ServedModel
    from flowscope.serving.schema import Column, InputSchema

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def form_fields(model: ServedModel) -> list[dict[str, Any]]:
    """One field per input column, in the signature's order: ``name``, ``type``,
    ``required``, ``input`` (``number``, ``text``, ``select`` or ``boolean``), ``choices``
    (the training categories, most frequent first), ``value`` (a typical value to start
    from: the median or the most frequent category) and ``hint``."""
    features = (model.profile or {}).get("features") or {}
    return [_field(column, features.get(column.name) or {}) for column in model.schema.columns]


def _field(column: Column, feature: Mapping[str, Any]) -> dict[str, Any]:
    field: dict[str, Any] = {
        "name": column.name,
        "type": column.type,
        "required": column.required,
        "input": "text",
        "choices": [],
        "value": "",
        "hint": "",
    }
    kind = column.numpy_dtype
    if kind in ("float64", "int64"):
        field["input"] = "number"
        field["step"] = "1" if kind == "int64" else "any"
        median = (feature.get("quantiles") or {}).get("0.5")
        if median is not None:
            field["value"] = _shown_number(median, integer=kind == "int64")
        if feature.get("min") is not None and feature.get("max") is not None:
            field["hint"] = (
                f"{_shown_number(feature['min'])} to {_shown_number(feature['max'])} in training"
            )
    elif kind == "bool":
        field["input"] = "boolean"
        field["choices"] = ["true", "false"]
        top = list((feature.get("top") or {}).keys())
        field["value"] = top[0].lower() if top else "false"
    else:
        choices = [str(value) for value in (feature.get("top") or {})]
        if choices:
            field["input"] = "select"
            field["choices"] = choices
            field["value"] = choices[0]
            if feature.get("other"):
                field["hint"] = "other values seen in training are not listed"
    if not field["hint"] and not column.required:
        field["hint"] = "optional"
    return field


def _shown_number(value: float, *, integer: bool = False) -> str:
    if integer:
        return str(round(value))
    return f"{value:.6g}"


def record_from_form(schema: InputSchema, form: Mapping[str, str]) -> dict[str, Any]:
    """The record a form's fields describe, typed by the signature: an empty field is a
    missing value (imputed for number and text columns, refused for the others by the
    schema's check); a number column holding text is a 422 naming the column."""
    record: dict[str, Any] = {}
    for column in schema.columns:
        text = form.get(column.name)
        if text is None:
            if column.required:
                raise SchemaError(f"missing column {shown(column.name)}")
            continue
        record[column.name] = _typed(column, text.strip())
    return record


def _typed(column: Column, text: str) -> Any:
    if text == "":
        return None
    kind = column.numpy_dtype
    if kind == "float64":
        try:
            return float(text)
        except ValueError:
            raise SchemaError(f"column {shown(column.name)} expects numbers") from None
    if kind == "int64":
        try:
            number = float(text)
        except ValueError:
            number = 0.5
        if not number.is_integer():
            raise SchemaError(f"column {shown(column.name)} expects integers")
        return int(number)
    if kind == "bool":
        lowered = text.lower()
        if lowered not in _TRUE | _FALSE:
            raise SchemaError(f"column {shown(column.name)} expects true or false")
        return lowered in _TRUE
    return text
