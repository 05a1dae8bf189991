"""The run page's Explain section as data: importance, beeswarm, dependence and waterfall
points read from the run's ``explain/`` artifacts (what the JSON twin returns)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from flowscope.artifacts import downloaded
from flowscope.errors import FlowscopeError
from flowscope.explain.explanation import BASE_COLUMN, OUTPUT_COLUMN, ROW_COLUMN
from flowscope.explain.records import ROWS_ARTIFACT, SUMMARY_ARTIFACT, VALUES_ARTIFACT

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

# Query parameters of the run page that choose what the section shows.
FEATURE_PARAM = "explain_feature"
ROW_PARAM = "explain_row"
CLASS_PARAM = "explain_class"

_IMPORTANCE_FEATURES = 20
_BEESWARM_FEATURES = 12
_BEESWARM_POINTS = 500
_WATERFALL_FEATURES = 10
_SUMMARY_KEYS = (
    "explainer",
    "explainer_reason",
    "model",
    "output_space",
    "output_space_description",
    "feature_perturbation",
    "exact",
    "rows",
    "rows_available",
    "background_rows",
    "shap_additivity_error",
    "notes",
)


def explain_view(
    client: MlflowClient, run_id: str, files: set[str], options: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """The Explain section of run ``run_id`` (None when the run logged no explanation).

    ``options`` are the page's query parameters: ``explain_class`` (multiclass: whose
    values), ``explain_feature`` (the dependence plot's feature) and ``explain_row`` (the
    waterfall's held-out row); a value that names nothing is a 400 error.
    """
    import pandas as pd

    if SUMMARY_ARTIFACT not in files or VALUES_ARTIFACT not in files:
        return None
    options = options or {}
    with downloaded(client, run_id, SUMMARY_ARTIFACT) as local:
        summary = json.loads(local.read_text())
    with downloaded(client, run_id, VALUES_ARTIFACT) as local:
        values = pd.read_parquet(local)
    rows = None
    if ROWS_ARTIFACT in files:
        with downloaded(client, run_id, ROWS_ARTIFACT) as local:
            rows = pd.read_parquet(local)
    outputs = [str(output) for output in summary["outputs"]]
    features = list(summary.get("mean_abs_shap_overall") or summary["features"])
    output = _choice(options.get(CLASS_PARAM), outputs, "class")
    feature = _choice(options.get(FEATURE_PARAM), features, "feature")
    table = values[values[OUTPUT_COLUMN].astype(str) == output] if len(outputs) > 1 else values
    table = table.sort_values(ROW_COLUMN).reset_index(drop=True)
    row = _row(options.get(ROW_PARAM), len(table))
    return {
        "summary": {key: summary.get(key) for key in _SUMMARY_KEYS},
        "outputs": outputs,
        "output": output,
        "features": features,
        "feature": feature,
        "row": row,
        "rows": len(table),
        "importance": {
            name: [[key, value] for key, value in list(means.items())[:_IMPORTANCE_FEATURES]]
            for name, means in summary["mean_abs_shap"].items()
        },
        "beeswarm": _beeswarm(table, rows, features[:_BEESWARM_FEATURES], output),
        "dependence": _dependence(table, rows, feature, output),
        "waterfall": _waterfall(table, rows, features, row, output) if len(table) else None,
    }


def _choice(value: str | None, known: list[str], what: str) -> str:
    if not value:
        return known[0]
    if value not in known:
        raise FlowscopeError(f"the explanation has no {what} {value!r}")
    return value


def _row(value: str | None, count: int) -> int:
    if not value:
        return 0
    try:
        row = int(value)
    except ValueError:
        raise FlowscopeError(f"{ROW_PARAM} must be a row number, not {value!r}") from None
    if not 0 <= row < count:
        raise FlowscopeError(f"{ROW_PARAM} must be between 0 and {count - 1}, not {row}")
    return row


def _beeswarm(
    table: pd.DataFrame, rows: pd.DataFrame | None, features: list[str], output: str
) -> dict[str, Any]:
    """Per feature (most important first): SHAP values and the feature's value scaled to
    0..1 by rank (the colour), for at most ``_BEESWARM_POINTS`` rows."""
    shown = table
    if len(table) > _BEESWARM_POINTS:
        chosen = np.sort(np.random.default_rng(0).choice(len(table), _BEESWARM_POINTS, False))
        shown = table.iloc[chosen]
    positions = shown[ROW_COLUMN].to_numpy()
    points = []
    for feature in features:
        colour = None
        if rows is not None and feature in rows.columns:
            colour = _rank(rows[feature]).to_numpy()[positions].tolist()
        points.append(
            {
                "feature": feature,
                "shap": shown[feature].astype(float).tolist(),
                "colour": colour,
            }
        )
    return {"output": output, "points": points}


def _dependence(
    table: pd.DataFrame, rows: pd.DataFrame | None, feature: str, output: str
) -> dict[str, Any]:
    """SHAP value of ``feature`` against its value, row by row."""
    if rows is None or feature not in rows.columns:
        return {"feature": feature, "output": output, "x": None, "shap": [], "categorical": False}
    import pandas as pd

    values = rows[feature].to_numpy()[table[ROW_COLUMN].to_numpy()]
    column = rows[feature]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    categorical = not numeric
    return {
        "feature": feature,
        "output": output,
        "x": [_plain(value) for value in values],
        "shap": table[feature].astype(float).tolist(),
        "categorical": categorical,
    }


def _waterfall(
    table: pd.DataFrame, rows: pd.DataFrame | None, features: list[str], row: int, output: str
) -> dict[str, Any]:
    """From the base value to the row's output: the largest contributions one by one, the
    rest summed into one step."""
    line = table.iloc[row]
    contributions = sorted(
        ((feature, float(line[feature])) for feature in features),
        key=lambda item: -abs(item[1]),
    )
    shown, rest = contributions[:_WATERFALL_FEATURES], contributions[_WATERFALL_FEATURES:]
    steps = []
    for feature, value in shown:
        raw = None
        if rows is not None and feature in rows.columns:
            raw = _plain(rows[feature].iloc[int(line[ROW_COLUMN])])
        steps.append({"feature": feature, "value": raw, "shap": value})
    if rest:
        others = sum(value for _, value in rest)
        steps.append({"feature": f"{len(rest)} other features", "value": None, "shap": others})
    base = float(line[BASE_COLUMN])
    return {
        "row": row,
        "output": output,
        "base_value": base,
        "output_value": base + sum(value for _, value in contributions),
        "steps": steps,
    }


def _rank(column: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = column.astype(float)
    else:
        numbers = pd.Series(pd.factorize(column.astype(str))[0], dtype=float)
    return numbers.rank(pct=True).fillna(0.5)


def _plain(value: Any) -> Any:
    """A cell as JSON can hold it (NaN as None)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value if isinstance(value, int | float | str | bool) else str(value)
