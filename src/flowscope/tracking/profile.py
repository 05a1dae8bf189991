"""Dataset profiles: shape, types, gaps and per-feature distributions, as plain JSON.

A training run logs the profile of its training set as ``dataset/profile.json``; it is the
reference later inference windows are compared with (population stability index per
feature), so each numeric feature keeps histogram edges and counts, and each categorical
feature its category counts.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
HISTOGRAM_BINS = 10
TOP_CATEGORIES = 50


def profile_dataset(frame: pd.DataFrame, target: str | None = None) -> dict[str, Any]:
    """Profile ``frame`` as a JSON-able dict (no NaN: absent values are None).

    Keys: ``rows``, ``columns``, ``memory_bytes``, ``duplicate_rows``, ``missing_cells``;
    ``schema`` (per column: ``dtype``, ``missing``, ``missing_share``); ``features`` (per
    column but the target: numeric ones get ``min``/``max``/``mean``/``std``, ``quantiles``
    keyed "0", "0.01" ... "1" and a ``histogram``; others get ``distinct``, the counts of
    the ``top`` 50 categories and ``other``, the count of the rest); and ``target`` (None
    without one): its ``problem``, and its ``class_balance`` (counts and shares) or the
    numeric summary of a regression target.

    Histogram bins hold about equal numbers of rows (decile edges; one bin per value when a
    feature has at most 10 distinct values), as the population stability index needs:
    with equal-width bins a skewed feature puts nearly every row in one bin and drift inside
    it goes unseen. Counts cover the finite values, so they sum to the rows that are
    neither missing nor infinite.
    """
    rows = len(frame)
    missing = frame.isna().sum()
    schema = {
        str(column): {
            "dtype": str(frame[column].dtype),
            "missing": int(missing[column]),
            "missing_share": _share(int(missing[column]), rows),
        }
        for column in frame.columns
    }
    profile: dict[str, Any] = {
        "rows": rows,
        "columns": frame.shape[1],
        "memory_bytes": int(frame.memory_usage(deep=True).sum()),
        "duplicate_rows": _duplicates(frame),
        "missing_cells": int(missing.sum()),
        "schema": schema,
        "features": {
            str(column): _describe(frame[column]) for column in frame.columns if column != target
        },
        "target": None,
    }
    if target is not None and target in frame.columns:
        profile["target"] = _describe_target(frame[target], target)
    elif target is not None:
        raise _missing_target(target, frame)
    return profile


def _missing_target(target: str, frame: pd.DataFrame) -> Exception:
    from flowscope.errors import FlowscopeError

    columns = ", ".join(repr(str(c)) for c in list(frame.columns)[:20])
    return FlowscopeError(f"cannot profile target {target!r}: no such column (columns: {columns})")


def _duplicates(frame: pd.DataFrame) -> int | None:
    if frame.shape[1] == 0:
        return 0
    try:
        return int(frame.duplicated().sum())
    except TypeError:  # unhashable cells (lists, dicts) in an object column
        return int(frame.astype(str).duplicated().sum())


def _describe(column: pd.Series) -> dict[str, Any]:
    import pandas as pd

    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_datetime64_any_dtype(dtype):
            present = column.dropna()
            return {
                "kind": "datetime",
                "min": present.min().isoformat() if len(present) else None,
                "max": present.max().isoformat() if len(present) else None,
            }
        return _describe_categorical(column)
    return _describe_numeric(column)


def _describe_numeric(column: pd.Series) -> dict[str, Any]:
    import numpy as np

    values = column.to_numpy(dtype=float, na_value=np.nan)
    finite = values[np.isfinite(values)]
    present = values[~np.isnan(values)]
    distinct = np.unique(finite)
    summary: dict[str, Any] = {
        "kind": "numeric",
        "count": int(present.size),
        "infinite": int(present.size - finite.size),
        "distinct": int(distinct.size + np.unique(present[np.isinf(present)]).size),
        "min": None,
        "max": None,
        "mean": None,
        "std": None,
        "quantiles": None,
        "histogram": None,
    }
    if finite.size == 0:
        return summary
    levels = np.quantile(finite, QUANTILES)
    summary.update(
        {
            "min": _number(finite.min()),
            "max": _number(finite.max()),
            "mean": _number(finite.mean()),
            "std": _number(finite.std(ddof=1)) if finite.size > 1 else None,
            "quantiles": {
                format(q, "g"): _number(v) for q, v in zip(QUANTILES, levels, strict=True)
            },
            "histogram": _histogram(finite, distinct),
        }
    )
    return summary


def _histogram(values: np.ndarray, distinct: np.ndarray) -> dict[str, Any]:
    import numpy as np

    if distinct.size == 1:
        return {"edges": [float(distinct[0])] * 2, "counts": [int(values.size)]}
    if distinct.size <= HISTOGRAM_BINS:
        # One bin per value: edges halfway between neighbours, closed by the extremes.
        middles = (distinct[:-1] + distinct[1:]) / 2
        edges = np.concatenate(([distinct[0]], middles, [distinct[-1]]))
    else:
        edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)))
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": [float(edge) for edge in edges], "counts": [int(c) for c in counts]}


def _describe_categorical(column: pd.Series) -> dict[str, Any]:
    present = column.dropna()
    try:
        counts = present.value_counts()
    except TypeError:  # unhashable cells
        counts = present.astype(str).value_counts()
    top = counts.iloc[:TOP_CATEGORIES]
    return {
        "kind": "categorical",
        "count": int(present.size),
        "distinct": int(counts.size),
        "top": {str(value): int(count) for value, count in top.items()},
        "other": int(counts.iloc[TOP_CATEGORIES:].sum()),
    }


def _describe_target(column: pd.Series, name: str) -> dict[str, Any]:
    from flowscope.errors import FlowscopeError
    from flowscope.modeling.data import infer_problem

    try:
        problem: str | None = infer_problem(column)
    except FlowscopeError:
        problem = None
    missing = int(column.isna().sum())
    summary: dict[str, Any] = {"name": str(name), "problem": problem, "missing": missing}
    if problem == "regression":
        summary.update(_describe_numeric(column))
    elif problem is not None:
        counts = column.value_counts(dropna=True)
        with contextlib.suppress(TypeError):  # labels of mixed types keep the count order
            counts = counts.sort_index()
        total = int(counts.sum())
        summary["classes"] = int(counts.size)
        summary["class_balance"] = {
            "counts": {str(label): int(count) for label, count in counts.items()},
            "shares": {str(label): _share(int(count), total) for label, count in counts.items()},
        }
    return summary


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0
