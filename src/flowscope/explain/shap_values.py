"""``explain_model``: SHAP values of a fitted model or pipeline, by the best exact method
for the model, stated in terms of the original input columns.

=====================================  ==========================================
model                                   explainer
=====================================  ==========================================
random forest, extra trees, sklearn     flowscope's TreeSHAP on every core
gradient boosting, decision trees       (:mod:`flowscope.explain._treeshap`)
XGBoost                                 the booster's ``pred_contribs`` (exact TreeSHAP)
LightGBM                                the booster's ``pred_contrib`` (exact TreeSHAP)
logistic / linear regression, ridge     ``shap.LinearExplainer``
anything else (KNN ...)                 exact Shapley values over every coalition of
                                        input columns (≤ 10), else antithetic
                                        permutations, on a background sample
                                        (:mod:`flowscope.explain._agnostic`)
=====================================  ==========================================

Without ``background`` the tree explainers use the training data's cover stored in the
trees ("tree path dependent" SHAP); with it, every explainer plays the interventional game
on those rows (trees through ``shap.TreeExplainer``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from flowscope.errors import FlowscopeError
from flowscope.explain._outputs import (
    base_per_row,
    import_shap,
    margin_space,
    result_fields,
    three_d,
)
from flowscope.explain._trees import (
    UseAgnostic,
    boosting_shap,
    forest_shap,
    lightgbm_shap,
    xgboost_shap,
)
from flowscope.explain.explanation import RESERVED_COLUMNS, Explanation

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.explain._features import FeatureMap

_FORESTS = {
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ExtraTreeClassifier",
    "ExtraTreeRegressor",
}
_SKLEARN_BOOSTING = {"GradientBoostingClassifier", "GradientBoostingRegressor"}
AGNOSTIC_BACKGROUND = 30
_LINEAR_BACKGROUND = 100


class UnsupportedModelError(FlowscopeError):
    """The model (or its data) cannot be explained; the message says why."""


def explain_model(
    model: Any,
    X: Any,
    *,
    background: Any = None,
    max_rows: int = 1000,
    n_threads: int | None = None,
) -> Explanation:
    """Explain ``model`` (a fitted pipeline or estimator) on the rows of ``X``.

    At most ``max_rows`` rows are explained (a seeded sample, in their original order).
    ``background`` (rows like ``X``) makes every explainer use the interventional game on
    it; without it tree models use the path-dependent game of their training cover, and
    the others a sample of ``X``. Contributions of one-hot indicator columns are summed into
    their source column. Raises :class:`UnsupportedModelError` for a model that cannot be
    explained.

    >>> explanation = explain_model(pipeline, X_test)            # doctest: +SKIP
    >>> explanation.summary()["mean_abs_shap"]                   # doctest: +SKIP
    """
    from flowscope.explain._features import UnmappableStep, feature_map, split_model

    started = time.perf_counter()
    if max_rows < 1:
        raise FlowscopeError(f"max_rows must be at least 1, not {max_rows}")
    frame = _as_frame(X, model)
    if len(frame) == 0:
        raise FlowscopeError("there are no rows to explain")
    clash = [column for column in frame.columns if column in RESERVED_COLUMNS]
    if clash:
        raise UnsupportedModelError(f"a feature may not be called {clash[0]!r}")
    rows_available = len(frame)
    frame = _sample(frame, max_rows)
    back = None if background is None else _as_frame(background, model)
    preprocess, estimator = split_model(model)
    kind, reason = _kind(estimator)
    classes = _classes(model, estimator)
    outputs = _output_names(classes)
    inputs = [str(column) for column in frame.columns]
    result = None
    if kind != "agnostic":
        try:
            fmap = feature_map(preprocess, inputs)
        except UnmappableStep as exc:
            reason = f"the preprocessing cannot be traced to inputs ({exc})"
        else:
            try:
                result = _model_specific(
                    kind, preprocess, estimator, fmap, frame, back, classes, n_threads
                )
            except UseAgnostic as exc:
                reason = str(exc)
            else:
                result["reason"] = reason
    if result is None:
        from flowscope.explain._agnostic import agnostic_shap

        background = back if back is not None else _sample(frame, AGNOSTIC_BACKGROUND)
        result = agnostic_shap(model, frame, background, classes, reason)
        if back is None:
            result["notes"].append(
                f"background: {len(background)} sampled rows of the explained data"
            )
    frame = frame.iloc[: len(result["values"])]
    return Explanation(
        data=frame.reset_index(drop=True),
        features=inputs,
        outputs=outputs,
        model_name=type(estimator).__name__,
        rows_available=rows_available,
        background_rows=None if back is None else len(back),
        seconds=time.perf_counter() - started,
        **result,
    )


# -- which explainer ---------------------------------------------------------------------


def _model_specific(
    kind: str,
    preprocess: Any,
    estimator: Any,
    fmap: FeatureMap,
    frame: pd.DataFrame,
    back: pd.DataFrame | None,
    classes: list[Any] | None,
    n_threads: int | None = None,
) -> dict[str, Any]:
    """Explain the estimator on the transformed rows, then sum back to input columns."""
    transform = preprocess.transform if preprocess is not None else (lambda data: data)
    Xt = _matrix(transform(frame))
    Bt = None if back is None else _matrix(transform(back))
    result = _EXPLAINERS[kind](estimator, Xt, Bt, classes, n_threads)
    result["transformed_values"] = result["values"]
    result["values"] = fmap.aggregate(result["values"])
    result["transformed_features"] = fmap.transformed
    result["sources"] = [fmap.inputs[index] for index in fmap.sources]
    return result


def _kind(estimator: Any) -> tuple[str, str]:
    name = type(estimator).__name__
    module = type(estimator).__module__
    if name == "QuantileLGBMRegressor":
        raise UnsupportedModelError(
            "QuantileLGBMRegressor sorts its per-quantile predictions row by row, so its "
            "output is not a sum over features that SHAP values could split"
        )
    if getattr(estimator, "n_outputs_", 1) > 1:
        raise UnsupportedModelError(f"{name} predicts several targets at once")
    if module.startswith("sklearn.") and name in _FORESTS:
        return "forest", "tree ensemble: exact TreeSHAP, linear time per node, on every core"
    if module.startswith("sklearn.") and name in _SKLEARN_BOOSTING:
        return "boosting", "tree ensemble: exact TreeSHAP, linear time per node, on every core"
    if module.startswith("xgboost"):
        return "xgboost", "XGBoost: the booster's own exact TreeSHAP (pred_contribs), threaded"
    if module.startswith("lightgbm"):
        return "lightgbm", "LightGBM: the booster's own exact TreeSHAP (pred_contrib), threaded"
    if module.startswith("sklearn.linear_model") and hasattr(estimator, "coef_"):
        return "linear", "linear model: exact linear SHAP against a background mean"
    if not hasattr(estimator, "predict"):
        raise UnsupportedModelError(f"{name} has no predict method")
    return "agnostic", f"{name} has no model-specific explainer: model-agnostic SHAP"


def _classes(model: Any, estimator: Any) -> list[Any] | None:
    classes = getattr(model, "classes_", None)
    if classes is None:
        classes = getattr(estimator, "classes_", None)
    if classes is None or not (
        hasattr(model, "predict_proba") or hasattr(estimator, "decision_function")
    ):
        return None
    return list(classes)


def _output_names(classes: list[Any] | None) -> list[str]:
    if classes is None:
        return ["prediction"]
    if len(classes) == 2:
        return [str(classes[1])]
    return [str(label) for label in classes]


# -- linear models -----------------------------------------------------------------------


def _linear(estimator: Any, Xt: np.ndarray, Bt: Any, classes: Any, threads: Any) -> dict[str, Any]:
    shap = import_shap()
    background = Bt if Bt is not None else _sample_matrix(Xt, _LINEAR_BACKGROUND)
    explainer = shap.LinearExplainer(
        estimator, shap.maskers.Independent(background, max_samples=len(background))
    )
    binary = classes is not None and len(classes) == 2
    values = three_d(explainer.shap_values(Xt), binary)
    base = base_per_row(explainer.expected_value, len(Xt), binary)
    if classes is not None:
        raw = np.asarray(estimator.decision_function(Xt), dtype=float).reshape(len(Xt), -1)
    else:
        raw = np.asarray(estimator.predict(Xt), dtype=float).reshape(-1, 1)
    result = result_fields(
        values, base, raw, margin_space(classes), "shap_linear", "interventional"
    )
    if Bt is None:
        result["notes"] = [f"background: {len(background)} sampled rows of the explained data"]
    return result


# -- shapes and helpers ------------------------------------------------------------------


def _as_frame(X: Any, model: Any) -> pd.DataFrame:
    """``X`` as a DataFrame, its columns named as the model's inputs (``x0``, ``x1`` ...
    for a model fitted on arrays)."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return X
    matrix = np.asarray(X)
    if matrix.ndim != 2:
        raise FlowscopeError(
            f"rows to explain must be a table, not an array of shape {matrix.shape}"
        )
    names = getattr(model, "feature_names_in_", None)
    if names is not None and len(names) == matrix.shape[1]:
        return pd.DataFrame(matrix, columns=[str(name) for name in names])
    return pd.DataFrame(matrix, columns=[f"x{index}" for index in range(matrix.shape[1])])


def _sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame
    chosen = np.sort(np.random.default_rng(0).choice(len(frame), size=rows, replace=False))
    return frame.iloc[chosen]


def _sample_matrix(matrix: np.ndarray, rows: int) -> np.ndarray:
    if len(matrix) <= rows:
        return matrix
    chosen = np.sort(np.random.default_rng(0).choice(len(matrix), size=rows, replace=False))
    return matrix[chosen]


def _matrix(data: Any) -> np.ndarray:
    if hasattr(data, "toarray"):
        data = data.toarray()  # a sparse one-hot encoding
    return np.asarray(data, dtype=np.float64)


def input_frame(X: Any, model: Any) -> pd.DataFrame:
    """``X`` as the DataFrame ``explain_model`` explains (public for the CLI and plots)."""
    return _as_frame(X, model)


_EXPLAINERS = {
    "forest": forest_shap,
    "boosting": boosting_shap,
    "xgboost": xgboost_shap,
    "lightgbm": lightgbm_shap,
    "linear": _linear,
}
