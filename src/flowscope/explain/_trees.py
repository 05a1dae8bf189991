"""Tree ensembles: flowscope's TreeSHAP for scikit-learn trees, the boosters' own exact
TreeSHAP for XGBoost and LightGBM, and shap's interventional TreeExplainer when a
background is given."""

from __future__ import annotations

from typing import Any

import numpy as np

from flowscope.explain._outputs import import_shap, margin_space, result_fields, three_d


class UseAgnostic(Exception):
    """A model-specific explainer cannot do this case; the black-box one can."""


def forest_shap(
    estimator: Any, Xt: np.ndarray, Bt: Any, classes: Any, threads: Any
) -> dict[str, Any]:
    """Random forests, extra trees and single trees: probabilities for classifiers."""
    from flowscope.explain import _treeshap

    if Bt is not None:
        space = "probability" if classes is not None else "raw"
        return _shap_tree_interventional(estimator, Xt, Bt, classes, space)
    members = getattr(estimator, "estimators_", None) or [estimator]
    binary = classes is not None and len(classes) == 2
    n_outputs = 1 if classes is None or binary else len(classes)
    forest = _treeshap.flatten_sklearn_trees(
        [(member.tree_, 1.0 / len(members), -1) for member in members],
        shares=classes is not None,
        value_column=1 if binary else None,
        n_outputs=n_outputs,
        n_features=Xt.shape[1],
    )
    prepared = _treeshap.prepare_forest(forest)
    values = _treeshap.tree_shap(prepared, Xt, threads)
    if classes is not None:
        output = estimator.predict_proba(Xt)
        output = output[:, 1:] if binary else output
    else:
        output = estimator.predict(Xt).reshape(-1, 1)
    return result_fields(
        values,
        np.broadcast_to(prepared.base_values, (len(Xt), n_outputs)),
        output,
        "probability" if classes is not None else "raw",
        "flowscope_treeshap",
        "tree_path_dependent",
    )


def boosting_shap(
    estimator: Any, Xt: np.ndarray, Bt: Any, classes: Any, threads: Any
) -> dict[str, Any]:
    """scikit-learn gradient boosting: log-odds or per-class scores, plus the initial
    estimate in the base value."""
    from flowscope.explain import _treeshap

    space = margin_space(classes)
    if Bt is not None:
        if classes is not None and len(classes) > 2:
            raise UseAgnostic(
                "shap's interventional TreeExplainer does not take multiclass sklearn "
                "gradient boosting; model-agnostic SHAP on the background instead"
            )
        return _shap_tree_interventional(estimator, Xt, Bt, classes, space)
    stages = estimator.estimators_
    n_outputs = stages.shape[1]
    rate = float(estimator.learning_rate)
    forest = _treeshap.flatten_sklearn_trees(
        [(stages[i, k].tree_, rate, k) for i in range(stages.shape[0]) for k in range(n_outputs)],
        shares=False,
        value_column=None,
        n_outputs=n_outputs,
        n_features=Xt.shape[1],
    )
    prepared = _treeshap.prepare_forest(forest)
    values = _treeshap.tree_shap(prepared, Xt, threads)
    raw = _raw_sklearn_boosting(estimator, Xt)
    # The initial estimate (the class prior's log-odds, the target's mean) is a constant
    # the trees add to; read it off one row through public predictions.
    first = np.array(
        [
            sum(rate * stages[i, k].predict(Xt[:1])[0] for i in range(stages.shape[0]))
            for k in range(n_outputs)
        ]
    )
    initial = raw[0] - first
    base = np.broadcast_to(prepared.base_values + initial, (len(Xt), n_outputs))
    return result_fields(values, base, raw, space, "flowscope_treeshap", "tree_path_dependent")


def _raw_sklearn_boosting(estimator: Any, Xt: np.ndarray) -> np.ndarray:
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(Xt), dtype=float).reshape(len(Xt), -1)
    return np.asarray(estimator.predict(Xt), dtype=float).reshape(-1, 1)


def xgboost_shap(
    estimator: Any, Xt: np.ndarray, Bt: Any, classes: Any, threads: Any
) -> dict[str, Any]:
    """XGBoost: margins (log-odds, per-class scores or raw) from the booster itself."""
    import xgboost

    from flowscope.explain._treeshap import threads as cores

    space = margin_space(classes)
    if Bt is not None:
        return _shap_tree_interventional(estimator, Xt, Bt, classes, space)
    # A copy: the fitted model keeps its own thread count (n_jobs=1 for reproducibility).
    booster = estimator.get_booster().copy()
    booster.set_param({"nthread": threads or cores()})
    matrix = xgboost.DMatrix(
        Xt, feature_names=booster.feature_names, feature_types=booster.feature_types
    )
    contributions = booster.predict(
        matrix, pred_contribs=True, iteration_range=_xgboost_iterations(estimator)
    ).astype(np.float64)
    if contributions.ndim == 2:
        contributions = contributions[:, None, :]
    values = np.transpose(contributions[:, :, :-1], (0, 2, 1))
    base = contributions[:, :, -1]
    raw = np.asarray(
        booster.predict(matrix, output_margin=True, iteration_range=_xgboost_iterations(estimator)),
        dtype=np.float64,
    ).reshape(len(Xt), -1)
    return result_fields(values, base, raw, space, "xgboost_pred_contribs", "tree_path_dependent")


def _xgboost_iterations(estimator: Any) -> tuple[int, int]:
    # Early stopping makes predict() use the best iteration; explain the same trees.
    try:
        return 0, int(estimator.best_iteration) + 1
    except AttributeError:
        return 0, 0


def lightgbm_shap(
    estimator: Any, Xt: np.ndarray, Bt: Any, classes: Any, threads: Any
) -> dict[str, Any]:
    """LightGBM: raw scores from the booster itself, on every core."""
    from flowscope.explain._treeshap import threads as cores

    space = margin_space(classes)
    if Bt is not None:
        return _shap_tree_interventional(estimator, Xt, Bt, classes, space)
    contributions = np.asarray(
        estimator.predict(Xt, pred_contrib=True, num_threads=threads or cores()),
        dtype=np.float64,
    )
    width = Xt.shape[1] + 1
    contributions = contributions.reshape(len(Xt), -1, width)
    values = np.transpose(contributions[:, :, :-1], (0, 2, 1))
    base = contributions[:, :, -1]
    raw = np.asarray(estimator.predict(Xt, raw_score=True), dtype=np.float64)
    return result_fields(
        values,
        base,
        raw.reshape(len(Xt), -1),
        space,
        "lightgbm_pred_contrib",
        "tree_path_dependent",
    )


def _shap_tree_interventional(
    estimator: Any, Xt: np.ndarray, Bt: np.ndarray, classes: Any, space: str
) -> dict[str, Any]:
    shap = import_shap()
    explainer = shap.TreeExplainer(
        estimator, data=Bt, feature_perturbation="interventional", model_output="raw"
    )
    binary = classes is not None and len(classes) == 2
    values = three_d(explainer.shap_values(Xt, check_additivity=False), binary)
    raw = _tree_raw_output(estimator, Xt, classes, space)
    # The interventional base value is the mean output over the background, by definition;
    # computed here because shap misreads some boosters' base scores (XGBoost multiclass).
    base = np.broadcast_to(
        _tree_raw_output(estimator, Bt, classes, space).mean(axis=0), raw.shape
    ).copy()
    return result_fields(values, base, raw, space, "shap_tree", "interventional")


def _tree_raw_output(estimator: Any, Xt: np.ndarray, classes: Any, space: str) -> np.ndarray:
    binary = classes is not None and len(classes) == 2
    if space == "probability":
        output = np.asarray(estimator.predict_proba(Xt), dtype=float)
        return output[:, 1:] if binary else output
    module = type(estimator).__module__
    if module.startswith("xgboost"):
        raw = estimator.predict(
            Xt, output_margin=True, iteration_range=_xgboost_iterations(estimator)
        )
    elif module.startswith("lightgbm"):
        raw = estimator.predict(Xt, raw_score=True)
    else:
        return _raw_sklearn_boosting(estimator, Xt)
    return np.asarray(raw, dtype=float).reshape(len(Xt), -1)
