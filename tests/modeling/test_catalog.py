"""The model catalog on real data: every model fits, parameters are coerced, and every
model round-trips through MLflow's skops format with exactly the allow-listed types."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flowscope.errors import FlowscopeError
from flowscope.modeling.catalog import (
    CATALOG,
    MODEL_TYPES,
    SKOPS_TRUSTED_TYPES,
    build_estimator,
    coerce_param,
    models_for,
    trusted_types_for,
)
from flowscope.modeling.data import infer_problem, load_builtin
from flowscope.modeling.estimators import EncodedLabelClassifier, needs_label_encoding
from flowscope.modeling.train import build_pipeline

# Few trees: the tests are about behaviour, not accuracy, and share two cores.
FAST = {"n_estimators": 20}
# Given requirements spare MLflow's inference of them (a subprocess, ~3 s per model); the
# serialisation under test is the same.
REQUIREMENTS = ["scikit-learn", "skops", "xgboost", "lightgbm"]


def _with_categories(name: str) -> tuple[pd.DataFrame, str]:
    """A built-in dataset plus a text column with gaps and a missing number, so the
    pipeline's imputers and one-hot encoder hold fitted state too."""
    frame, target = load_builtin(name)
    first = frame.columns[0]
    size = np.where(frame[first] > frame[first].median(), "large", "small").astype(object)
    size[::9] = None
    frame.insert(1, "size", pd.Series(size, dtype="str"))
    frame.loc[::13, first] = np.nan
    return frame, target


def _pipeline(model_type: str, frame: pd.DataFrame, target: str, seed: int = 0) -> Any:
    """The catalog model inside the training pipeline, fitted."""
    X, y = frame.drop(columns=[target]), frame[target]
    problem = infer_problem(y)
    params = FAST if "n_estimators" in CATALOG[model_type].defaults else None
    estimator = build_estimator(model_type, problem, params, seed=seed)
    if needs_label_encoding(estimator) and problem != "regression":
        estimator = EncodedLabelClassifier(estimator)
    return build_pipeline(X, estimator, scale=True).fit(X, y)


CASES = [
    (model_type, dataset)
    for dataset, problem in (
        ("iris", "multiclass"),
        ("breast_cancer", "binary"),
        ("diabetes", "regression"),
    )
    for model_type in models_for(problem)
]


@pytest.mark.parametrize(("model_type", "dataset"), CASES)
def test_every_catalog_model_learns_its_problem(model_type: str, dataset: str) -> None:
    frame, target = _with_categories(dataset)
    pipeline = _pipeline(model_type, frame, target)
    X, y = frame.drop(columns=[target]), frame[target]
    predicted = pipeline.predict(X)
    if dataset == "diabetes":
        from sklearn.metrics import r2_score

        assert r2_score(y, predicted) > 0.3
    else:
        assert set(np.unique(predicted)) <= set(y.unique())
        assert np.mean(np.asarray(predicted) == y.to_numpy()) > 0.85


@pytest.mark.parametrize(("model_type", "dataset"), CASES)
def test_every_catalog_model_round_trips_through_mlflow_skops(
    model_type: str, dataset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc
    import mlflow.sklearn

    # MLflow 3.17 refuses to deserialise any model, skops included, without this switch.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    frame, target = _with_categories(dataset)
    X = frame.drop(columns=[target])
    pipeline = _pipeline(model_type, frame, target)
    trusted = trusted_types_for(pipeline)
    assert set(trusted) <= SKOPS_TRUSTED_TYPES
    mlflow.sklearn.save_model(
        pipeline,
        str(tmp_path / "model"),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=trusted,
        pip_requirements=REQUIREMENTS,
    )
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    expected = np.asarray(pipeline.predict(X))
    actual = np.asarray(loaded.predict(X))
    if dataset == "diabetes":
        np.testing.assert_allclose(actual, expected)
    else:
        assert actual.tolist() == expected.tolist()


def test_quantile_model_keeps_its_quantiles_through_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.sklearn

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    frame, target = _with_categories("diabetes")
    X = frame.drop(columns=[target])
    pipeline = _pipeline("lightgbm_quantile", frame, target)
    mlflow.sklearn.save_model(
        pipeline,
        str(tmp_path / "model"),
        serialization_format="skops",
        skops_trusted_types=trusted_types_for(pipeline),
        pip_requirements=REQUIREMENTS,
    )
    loaded = mlflow.sklearn.load_model(str(tmp_path / "model"))
    transformed = loaded[:-1].transform(X)
    expected = pipeline[-1].predict_quantiles(pipeline[:-1].transform(X))
    for level, values in loaded[-1].predict_quantiles(transformed).items():
        np.testing.assert_allclose(values, expected[level])


class Custom:
    """A class no catalog model holds."""

    def fit(self, X: Any, y: Any) -> Custom:
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.zeros(len(X))


def test_types_outside_the_allow_list_are_refused_by_name() -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    frame, target = load_builtin("iris")
    X, y = frame.drop(columns=[target]), frame[target]
    svc = Pipeline([("scale", StandardScaler()), ("model", SVC())]).fit(X, y)
    with pytest.raises(FlowscopeError, match=r"sklearn\.svm\._classes\.SVC"):
        trusted_types_for(svc)
    with pytest.raises(FlowscopeError, match=r"test_catalog\.Custom"):
        trusted_types_for(Pipeline([("model", Custom())]).fit(X, y))


def test_the_allow_list_names_real_types() -> None:
    for name in SKOPS_TRUSTED_TYPES:
        module, _, attribute = name.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), attribute), type), name


def test_same_seed_gives_the_same_model() -> None:
    frame, target = load_builtin("diabetes")
    X = frame.drop(columns=[target])
    for model_type in ("random_forest", "lightgbm", "xgboost"):
        first = _pipeline(model_type, frame, target, seed=3).predict(X)
        again = _pipeline(model_type, frame, target, seed=3).predict(X)
        np.testing.assert_array_equal(first, again)


def test_string_parameters_are_coerced_to_the_default_type() -> None:
    forest = build_estimator(
        "random_forest",
        "regression",
        {
            "n_estimators": "200",
            "max_depth": "none",
            "bootstrap": "false",
            "max_features": "sqrt",
            "min_samples_leaf": "0.05",
        },
        seed=7,
    )
    params = forest.get_params()
    assert params["n_estimators"] == 200 and isinstance(params["n_estimators"], int)
    assert params["max_depth"] is None
    assert params["bootstrap"] is False
    assert params["max_features"] == "sqrt"
    assert params["min_samples_leaf"] == 0.05
    assert params["random_state"] == 7 and params["n_jobs"] == 1
    boosted = build_estimator("xgboost", "binary", {"learning_rate": "0.05", "max_depth": "4"})
    assert boosted.get_params()["learning_rate"] == 0.05
    assert boosted.get_params()["max_depth"] == 4
    quantile = build_estimator("lightgbm_quantile", "regression", {"quantiles": "0.05, 0.5,0.95"})
    assert quantile.quantiles == (0.05, 0.5, 0.95)
    knn = build_estimator("knn", "multiclass", {"weights": "distance", "n_neighbors": "7.0"})
    assert knn.get_params()["weights"] == "distance" and knn.get_params()["n_neighbors"] == 7


def test_coerce_param_reads_literals() -> None:
    assert coerce_param("x", "NULL", 3) is None
    assert coerce_param("x", "yes", False) is True
    assert coerce_param("x", "3", 1.0) == 3
    assert coerce_param("x", "1e-3", 1.0) == 0.001
    assert coerce_param("x", "balanced", None) == "balanced"
    assert coerce_param("x", 5, 1.0) == 5  # non-strings pass unchanged


@pytest.mark.parametrize(
    ("model_type", "problem", "params", "message"),
    [
        ("svm", "binary", None, r"unknown model type 'svm'; known: random_forest, .*ridge"),
        ("random_forest", "binary", {"n_trees": "5"}, r"unknown parameter 'n_trees'.*n_estimators"),
        ("random_forest", "binary", {"n_estimators": "many"}, r"n_estimators"),
        ("random_forest", "binary", {"bootstrap": "maybe"}, r"'bootstrap' must be true or false"),
        ("xgboost", "binary", {"max_depth": "deep"}, r"'max_depth' of xgboost must be a number"),
        ("lightgbm", "regression", {"bogus": 1}, r"unknown parameter 'bogus'"),
        ("knn", "multiclass", {"n_neighbors": "0"}, r"n_neighbors"),
        ("ridge", "binary", None, r"ridge does regression, not binary.*logistic_regression"),
        ("logistic_regression", "regression", None, r"does classification, not regression"),
        ("lightgbm_quantile", "multiclass", None, r"does quantile regression, not multiclass"),
        ("random_forest", "quantile", None, r"for quantile use one of: lightgbm_quantile"),
        ("lightgbm_quantile", "regression", {"quantiles": "0.5,1.5"}, r"strictly between 0 and 1"),
    ],
)
def test_bad_model_requests_are_clear_errors(
    model_type: str, problem: str, params: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(FlowscopeError, match=message):
        build_estimator(model_type, problem, params)


def test_search_spaces_are_valid_parameters_at_both_ends() -> None:
    for model_type in MODEL_TYPES:
        model = CATALOG[model_type]
        problem = "regression" if model.regressor else "multiclass"
        assert model.search_space, model_type
        for name, spec in model.search_space.items():
            kind = spec[0]
            if kind == "categorical":
                choices = spec[1]
            else:
                assert kind in ("int", "float") and spec[1] < spec[2], (model_type, name)
                if kind == "float":
                    assert isinstance(spec[3], bool)
                choices = [spec[1], spec[2]]
            for value in choices:
                build_estimator(model_type, problem, {name: value})
