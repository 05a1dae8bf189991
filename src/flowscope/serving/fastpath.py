"""An exact shortcut through the pipeline flowscope trains, for small fast predictions.

On a few rows, scikit-learn spends most of a prediction on bookkeeping: the
ColumnTransformer's pandas handling (~2 ms) and a forest's per-tree input checks and
joblib dispatch (~4 ms for 100 trees), against well under a millisecond of arithmetic.
For the training pipeline's common shape (numeric columns imputed and perhaps scaled,
then a classifier), this module does the same arithmetic on the request's arrays:
imputation and scaling with NumPy in the operations scikit-learn uses, and a forest tree
by tree through each fitted tree's ``tree_.predict``, summed in the estimators' order as
``predict_proba`` sums them. Any other shape goes through the pipeline itself, and so does
this one unless, at load time, the shortcut gave bit-for-bit the pipeline's
probabilities on check rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from flowscope.serving.schema import InputSchema

logger = logging.getLogger(__name__)

Predictor = Callable[[Mapping[str, "np.ndarray"]], "np.ndarray"]


def compile_predictor(
    pipeline: Any, schema: InputSchema, profile: Mapping[str, Any] | None
) -> Predictor | None:
    """A function from checked column arrays to class probabilities equal to
    ``pipeline.predict_proba``, or None when the pipeline has another shape or the
    shortcut does not reproduce it exactly."""
    try:
        plan = _numeric_plan(pipeline)
        if plan is None or not hasattr(pipeline, "classes_"):
            return None
        model = pipeline.steps[-1][1]
        predictor = _predictor(plan, model)
        if not _reproduces(predictor, pipeline, schema, profile):
            logger.info("flowscope serve: the fast path differs from the pipeline; not used")
            return None
        return predictor
    except Exception:  # any surprise in a fitted object's shape: the pipeline answers
        logger.debug("flowscope serve: no fast path", exc_info=True)
        return None


def _numeric_plan(pipeline: Any) -> list[tuple[list[str], Any, Any]] | None:
    """Per block of the ColumnTransformer: its columns, fitted imputer and scaler (or
    None); None when a block is anything else (a one-hot encoder, say)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from flowscope.modeling.inputs import RawFrameCaster

    if not isinstance(pipeline, Pipeline):
        return None
    steps = pipeline.steps
    if steps and isinstance(steps[0][1], RawFrameCaster):
        steps = steps[1:]  # its float64 cast is the one the shortcut makes
    if len(steps) != 2:
        return None
    preprocess = steps[0][1]
    if not isinstance(preprocess, ColumnTransformer):
        return None
    plan = []
    for name, transformer, columns in preprocess.transformers_:
        if name == "remainder" and transformer == "drop":
            continue
        steps = transformer.steps if isinstance(transformer, Pipeline) else None
        if not steps or not isinstance(steps[0][1], SimpleImputer):
            return None
        imputer = steps[0][1]
        marker = imputer.missing_values
        if imputer.add_indicator or not (isinstance(marker, float) and math.isnan(marker)):
            return None  # only NaN as the missing marker, and no indicator columns
        scaler = None
        if len(steps) == 2 and isinstance(steps[1][1], StandardScaler):
            scaler = steps[1][1]
        elif len(steps) != 1:
            return None
        plan.append(([str(column) for column in columns], imputer, scaler))
    return plan or None


def _predictor(plan: list[tuple[list[str], Any, Any]], model: Any) -> Predictor:
    import numpy as np

    blocks = [
        (columns, np.asarray(imputer.statistics_, dtype=np.float64), scaler)
        for columns, imputer, scaler in plan
    ]
    forest = _forest(model)

    def transform(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        parts = []
        for columns, statistics, scaler in blocks:
            X = np.column_stack([np.asarray(arrays[c], dtype=np.float64) for c in columns])
            missing = np.isnan(X)
            if missing.any():
                X[missing] = statistics[np.nonzero(missing)[1]]
            if scaler is not None:
                if scaler.with_mean:
                    X -= scaler.mean_
                if scaler.with_std:
                    X /= scaler.scale_
            parts.append(X)
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    if forest is None:
        return lambda arrays: np.asarray(model.predict_proba(transform(arrays)))

    trees, classes = forest

    def predict_forest(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        X = np.ascontiguousarray(transform(arrays), dtype=np.float32)  # as the forest casts
        total = np.zeros((X.shape[0], classes), dtype=np.float64)
        for tree in trees:
            total += tree.predict(X)[:, :classes]
        total /= len(trees)
        return total

    return predict_forest


def _forest(model: Any) -> tuple[list[Any], int] | None:
    """The fitted trees of a single-output scikit-learn forest classifier run on one job."""
    from sklearn.ensemble._forest import ForestClassifier

    if not isinstance(model, ForestClassifier) or model.n_outputs_ != 1:
        return None
    if model.n_jobs not in (None, 1):  # other jobs sum in another order
        return None
    return [estimator.tree_ for estimator in model.estimators_], int(model.n_classes_)


def _reproduces(
    predictor: Predictor, pipeline: Any, schema: InputSchema, profile: Mapping[str, Any] | None
) -> bool:
    """Check rows: each training quantile across every feature, zeros, and missing values."""
    import numpy as np
    import pandas as pd

    from flowscope.serving.schema import to_arrays

    features = (profile or {}).get("features") or {}
    levels = ("0", "0.01", "0.05", "0.25", "0.5", "0.75", "0.95", "0.99", "1")
    rows: list[dict[str, Any]] = []
    for level in levels:
        row = {}
        for name in schema.names:
            quantiles = (features.get(name) or {}).get("quantiles") or {}
            row[name] = quantiles.get(level, 0.0)
        rows.append(row)
    rows.append(dict.fromkeys(schema.names, 0.0))
    rows.append(dict.fromkeys(schema.names, None))
    columns = {name: [row[name] for row in rows] for name in schema.names}
    arrays = to_arrays(schema, columns)
    expected = np.asarray(pipeline.predict_proba(pd.DataFrame(arrays, copy=False)))
    return bool(np.array_equal(predictor(arrays), expected))
