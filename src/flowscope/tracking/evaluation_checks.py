"""Input checks for evaluation: every bad input becomes one
:class:`~flowscope.errors.FlowscopeError` naming the problem, before any metric is computed.

Public because two packages check the same inputs the same way: logging an evaluation
(:mod:`flowscope.tracking.evaluation`) and comparing two models' predictions
(:mod:`flowscope.analysis.significance`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flowscope.errors import FlowscopeError

# Generous enough for float32 probabilities (rows off by ~1e-7) while still catching raw
# decision-function scores passed where probabilities are expected.
_ROW_SUM_TOLERANCE = 1e-3


def native(value: Any) -> Any:
    """A numpy scalar as the Python value, so labels serialise to JSON and compare simply."""
    return value.item() if isinstance(value, np.generic) else value


def vector(values: Any, name: str) -> np.ndarray:
    """``values`` as a non-empty 1-D array (an (n, 1) column is accepted and flattened)."""
    if values is None:
        raise FlowscopeError(f"{name} is missing")
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise FlowscopeError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise FlowscopeError(f"{name} is empty")
    return array


def same_length(reference: np.ndarray, other: np.ndarray, name: str, ref_name: str) -> None:
    if len(reference) != len(other):
        raise FlowscopeError(f"{ref_name} has {len(reference)} values but {name} has {len(other)}")


def labels_vector(values: Any, name: str) -> np.ndarray:
    """Class labels without missing values."""
    array = vector(values, name)
    missing = int(np.count_nonzero(pd.isna(array)))
    if missing:
        raise FlowscopeError(f"{name} contains {missing} missing value(s) (NaN/None)")
    return array


def numbers(values: Any, name: str) -> np.ndarray:
    """Finite floats."""
    return finite_floats(vector(values, name), name)


def finite_floats(array: np.ndarray, name: str, dtype: Any = np.float64) -> np.ndarray:
    # Missing values are counted before the cast: pd.NA in an object array (a nullable
    # pandas column) would otherwise fail the cast and read as "not numeric".
    missing = int(np.count_nonzero(pd.isna(array)))
    if missing:
        raise FlowscopeError(f"{name} contains {missing} NaN or missing value(s)")
    try:
        floats = array.astype(dtype)
    except (TypeError, ValueError) as exc:
        example = array.flat[0]
        raise FlowscopeError(f"{name} must be numeric, got values like {example!r}") from exc
    infinite = int(np.count_nonzero(np.isinf(floats)))
    if infinite:
        raise FlowscopeError(f"{name} contains {infinite} infinite value(s)")
    return floats


def resolve_labels(labels: Any, y_true: np.ndarray, y_pred: np.ndarray | None) -> list[Any]:
    """The class order: ``labels`` as given, else the sorted union of y_true and y_pred."""
    if labels is not None:
        classes = [native(value) for value in labels]
        if len(set(classes)) != len(classes):
            raise FlowscopeError(f"labels contains duplicates: {classes}")
    else:
        seen = {native(value) for value in pd.unique(y_true)}
        if y_pred is not None:
            seen |= {native(value) for value in pd.unique(y_pred)}
        try:
            classes = sorted(seen)
        except TypeError as exc:
            kinds = sorted({type(value).__name__ for value in seen})
            raise FlowscopeError(
                f"y_true and y_pred mix label types ({', '.join(kinds)}); "
                "pass labels= to give the classes in order"
            ) from exc
    if len(classes) < 2:
        raise FlowscopeError(
            f"classification needs at least two classes, found only {classes}; "
            "pass labels= to name all classes"
        )
    return classes


def encode(values: np.ndarray, classes: list[Any], name: str) -> np.ndarray:
    """Each label as its index in ``classes``."""
    codes = pd.Index(classes).get_indexer(values)
    unknown = pd.unique(values[codes < 0])
    if len(unknown):
        shown = [native(value) for value in unknown[:5]]
        raise FlowscopeError(f"{name} contains labels not among the classes {classes}: {shown}")
    return codes


def probabilities(y_score: Any, n_rows: int, classes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(proba, positive)``: an (n, k) matrix in ``classes`` order, and for a binary problem
    the positive-class score (else an empty array).

    Scores are used as given (float32 stays float32) so that every number, and every tie a
    curve depends on, matches scikit-learn on the caller's array. Rows are renormalised only
    when their sums miss 1 by more than scikit-learn's log_loss and roc_auc accept, as
    probabilities rounded to a few decimals do.
    """
    scores = np.asarray(y_score)
    if scores.ndim not in (1, 2):
        raise FlowscopeError(f"y_score must be 1-D or 2-D, got shape {scores.shape}")
    if len(scores) != n_rows:
        raise FlowscopeError(f"y_true has {n_rows} values but y_score has {len(scores)}")
    if scores.size == 0:
        raise FlowscopeError("y_score is empty")
    keep = scores.dtype if scores.dtype in (np.float32, np.float64) else np.float64
    scores = finite_floats(scores, "y_score", keep)
    if scores.min() < 0 or scores.max() > 1:
        raise FlowscopeError(
            f"y_score must hold probabilities in [0, 1], got values in "
            f"[{scores.min():g}, {scores.max():g}]"
        )
    k = len(classes)
    if scores.ndim == 1:
        if k != 2:
            raise FlowscopeError(
                f"a 1-D y_score is the positive-class score of a binary problem, but there "
                f"are {k} classes {classes}; pass an (n, {k}) probability matrix"
            )
        return np.column_stack([1.0 - scores, scores]), scores
    if scores.shape[1] != k:
        raise FlowscopeError(
            f"y_score has {scores.shape[1]} columns but there are {k} classes {classes}; "
            "pass labels= in the order of the score columns"
        )
    sums = scores.sum(axis=1)
    off = int(np.count_nonzero(np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE))
    if off:
        raise FlowscopeError(f"{off} row(s) of y_score do not sum to 1; pass probabilities")
    positive = scores[:, 1] if k == 2 else np.empty(0)
    accepted = min(float(np.sqrt(np.finfo(scores.dtype).eps)), 1e-5)
    if not np.allclose(sums, 1.0, rtol=accepted, atol=0.0):
        scores = scores / sums[:, None]
    return scores, positive


def decision_thresholds(thresholds: Any, *, binary: bool, has_scores: bool) -> list[float]:
    """The thresholds to tabulate, deduplicated in the given order; [0.5] by default for a
    binary problem with scores."""
    if thresholds is None:
        return [0.5] if binary and has_scores else []
    given: Iterable[Any] = [thresholds] if np.ndim(thresholds) == 0 else thresholds
    if not binary:
        raise FlowscopeError("decision thresholds apply to binary classification only")
    if not has_scores:
        raise FlowscopeError("decision thresholds need y_score (the positive-class score)")
    result: list[float] = []
    for value in given:
        try:
            threshold = float(value)
        except (TypeError, ValueError) as exc:
            raise FlowscopeError(f"threshold {value!r} is not a number") from exc
        if not 0.0 < threshold < 1.0:
            raise FlowscopeError(f"threshold {value!r} is outside (0, 1)")
        if threshold not in result:
            result.append(threshold)
    return result


def quantile_level(value: Any) -> float:
    try:
        level = float(value)
    except (TypeError, ValueError) as exc:
        raise FlowscopeError(f"quantile level {value!r} is not a number") from exc
    if not 0.0 < level < 1.0:
        raise FlowscopeError(f"quantile level {value!r} is outside (0, 1)")
    return level


def find_level(value: Any, levels: Sequence[float]) -> float:
    """The given level equal to ``value`` (tolerating float noise such as 0.1 + 0.8)."""
    level = quantile_level(value)
    for candidate in levels:
        if math.isclose(candidate, level, rel_tol=0.0, abs_tol=1e-9):
            return candidate
    given = ", ".join(f"{candidate:g}" for candidate in levels)
    raise FlowscopeError(f"interval names quantile {level:g}, which was not given (given: {given})")


def quantile_intervals(intervals: Any, levels: Sequence[float]) -> list[tuple[float, float]]:
    """``intervals`` checked against the given levels; by default every symmetric pair
    (lo, 1 - lo) among them, widest first."""
    if intervals is None:
        pairs = []
        for lo in levels:
            if lo >= 0.5:
                break
            mirrors = [level for level in levels if math.isclose(level, 1.0 - lo, abs_tol=1e-9)]
            if mirrors:
                pairs.append((lo, mirrors[0]))
        return pairs
    result: list[tuple[float, float]] = []
    for pair in intervals:
        try:
            lo_value, hi_value = pair
        except (TypeError, ValueError) as exc:
            raise FlowscopeError(f"interval {pair!r} must be a (lo, hi) pair") from exc
        lo, hi = find_level(lo_value, levels), find_level(hi_value, levels)
        if lo >= hi:
            raise FlowscopeError(f"interval ({lo:g}, {hi:g}) must have lo < hi")
        if (lo, hi) not in result:
            result.append((lo, hi))
    return result
