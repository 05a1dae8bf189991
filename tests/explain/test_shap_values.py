"""explain_model: exact against brute force, additive for every model type, summed back to
input columns, one output per class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowscope.explain import UnsupportedModelError, explain_model
from flowscope.explain.explanation import OUTPUT_COLUMN, ROW_COLUMN
from flowscope.modeling.catalog import build_estimator
from flowscope.modeling.estimators import (
    EncodedLabelClassifier,
    final_estimator,
    needs_label_encoding,
)
from flowscope.modeling.train import _SCALED_MODELS, build_pipeline
from tests.explain import reference

shap = pytest.importorskip("shap")

SMALL = {
    "random_forest": {"n_estimators": 4, "max_depth": 4},
    "extra_trees": {"n_estimators": 4, "max_depth": 4},
    "gradient_boosting": {"n_estimators": 5, "max_depth": 3},
    "xgboost": {"n_estimators": 5, "max_depth": 3},
    "lightgbm": {"n_estimators": 5, "num_leaves": 6, "min_child_samples": 5},
    "knn": {"n_neighbors": 5},
    "logistic_regression": {},
    "ridge": {},
}
CLASSIFIERS = [name for name in SMALL if name != "ridge"]
REGRESSORS = [name for name in SMALL if name != "logistic_regression"]


def numeric_data(problem: str, rows: int = 160, columns: int = 6) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        rng.normal(size=(rows, columns)), columns=[f"f{j}" for j in range(columns)]
    )
    score = frame["f0"] + 0.7 * frame["f1"] - 0.5 * frame["f2"] * frame["f3"]
    if problem == "binary":
        target = pd.Series(np.where(score > 0.2, "yes", "no"), name="y")
    elif problem == "multiclass":
        target = pd.Series(pd.qcut(score, 3, labels=["lo", "mid", "hi"]).astype(str), name="y")
    else:
        target = pd.Series(score + rng.normal(scale=0.1, size=rows), name="y")
    return frame, target


def mixed_data(problem: str, rows: int = 200) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "count": rng.integers(0, 6, rows),
        }
    )
    frame.loc[::13, "a"] = np.nan
    score = frame["a"].fillna(0) + (frame["colour"] == "green") - 0.4 * frame["b"]
    if problem == "binary":
        return frame, pd.Series(np.where(score > 0.3, 1, 0), name="y")
    if problem == "multiclass":
        return frame, pd.Series(pd.qcut(score, 3, labels=["lo", "mid", "hi"]).astype(str))
    return frame, pd.Series(score + rng.normal(scale=0.1, size=rows))


def fitted(model_type: str, problem: str, frame: pd.DataFrame, target: pd.Series) -> object:
    estimator = build_estimator(model_type, problem, SMALL[model_type], seed=0)
    if needs_label_encoding(estimator) and problem != "regression":
        estimator = EncodedLabelClassifier(estimator)
    pipeline = build_pipeline(frame, estimator, scale=model_type in _SCALED_MODELS)
    return pipeline.fit(frame, target)


def output_in_space(pipeline: object, space: str, columns: list[str]):
    """The model's output in the space the explanation says it explains, computed from the
    pipeline directly (not through flowscope's explainers)."""
    model = final_estimator(pipeline)
    binary = len(getattr(pipeline, "classes_", [])) == 2

    def output(matrix: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(matrix, columns=columns)
        if space == "probability":
            probabilities = pipeline.predict_proba(frame)
            return probabilities[:, 1:] if binary else probabilities
        if space == "raw":
            return pipeline.predict(frame).reshape(-1, 1)
        transformed = pipeline[:-1].transform(frame)
        module = type(model).__module__
        if module.startswith("xgboost"):
            margin = model.predict(transformed, output_margin=True)
        elif module.startswith("lightgbm"):
            margin = model.predict(transformed, raw_score=True)
        else:
            margin = model.decision_function(transformed)
        return np.asarray(margin, dtype=float).reshape(len(frame), -1)

    return output


EXPECTED_SPACE = {
    ("random_forest", "binary"): "probability",
    ("gradient_boosting", "binary"): "log-odds",
    ("xgboost", "multiclass"): "logit",
    ("lightgbm", "binary"): "log-odds",
    ("logistic_regression", "multiclass"): "logit",
    ("knn", "binary"): "probability",
    ("ridge", "regression"): "raw",
    ("extra_trees", "regression"): "raw",
}


@pytest.mark.parametrize(
    ("model_type", "problem"),
    [(name, "binary") for name in CLASSIFIERS]
    + [(name, "multiclass") for name in CLASSIFIERS]
    + [(name, "regression") for name in REGRESSORS],
)
def test_interventional_values_equal_brute_force(model_type: str, problem: str) -> None:
    frame, target = numeric_data(problem)
    pipeline = fitted(model_type, problem, frame, target)
    background = frame.iloc[100:108]
    explanation = explain_model(pipeline, frame.iloc[:3], background=background)

    assert explanation.feature_perturbation == "interventional"
    if (model_type, problem) in EXPECTED_SPACE:
        assert explanation.output_space == EXPECTED_SPACE[(model_type, problem)]
    output = output_in_space(pipeline, explanation.output_space, list(frame.columns))
    tolerance = 1e-5 if model_type == "xgboost" else 1e-6  # XGBoost predicts in float32
    for row in range(3):
        expected = reference.interventional(output, frame.to_numpy()[row], background.to_numpy())
        np.testing.assert_allclose(explanation.values[row], expected, atol=tolerance, rtol=0)
    assert explanation.additivity_error < tolerance


def _sklearn_trees(model: object, classes: int | None) -> list[tuple[object, np.ndarray]]:
    if hasattr(model, "learning_rate"):  # gradient boosting: one tree per stage and class
        stages = model.estimators_
        trees = []
        for i in range(stages.shape[0]):
            for k in range(stages.shape[1]):
                tree = stages[i, k].tree_
                values = np.zeros((tree.node_count, stages.shape[1]))
                values[:, k] = model.learning_rate * tree.value[:, 0, 0]
                trees.append((tree, values))
        return trees
    trees = []
    for member in model.estimators_:
        raw = member.tree_.value[:, 0, :]
        if classes is not None:
            raw = raw / raw.sum(axis=1, keepdims=True)
            raw = raw[:, 1:] if classes == 2 else raw
        trees.append((member.tree_, raw / len(model.estimators_)))
    return trees


@pytest.mark.parametrize(
    ("model_type", "problem"),
    [
        ("random_forest", "binary"),
        ("random_forest", "multiclass"),
        ("extra_trees", "regression"),
        ("gradient_boosting", "binary"),
        ("gradient_boosting", "multiclass"),
        ("gradient_boosting", "regression"),
    ],
)
def test_path_dependent_tree_values_equal_brute_force(model_type: str, problem: str) -> None:
    frame, target = numeric_data(problem)
    pipeline = fitted(model_type, problem, frame, target)
    explanation = explain_model(pipeline, frame.iloc[:3])

    assert explanation.explainer == "flowscope_treeshap"
    assert explanation.feature_perturbation == "tree_path_dependent"
    classes = len(pipeline.classes_) if problem != "regression" else None
    trees = _sklearn_trees(final_estimator(pipeline), classes)
    transformed = pipeline[:-1].transform(frame.iloc[:3])
    for row in range(3):
        expected = reference.path_dependent(trees, transformed[row])
        np.testing.assert_allclose(explanation.values[row], expected, atol=1e-9, rtol=0)
    assert explanation.additivity_error < 1e-9


@pytest.mark.parametrize("model_type", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_booster_contributions_equal_shap_tree_explainer(model_type: str, problem: str) -> None:
    frame, target = numeric_data(problem)
    pipeline = fitted(model_type, problem, frame, target)
    explanation = explain_model(pipeline, frame.iloc[:20])

    transformed = pipeline[:-1].transform(frame.iloc[:20])
    plain = shap.TreeExplainer(final_estimator(pipeline)).shap_values(transformed)
    plain = np.asarray(plain)
    if plain.ndim == 2:
        plain = plain[:, :, None]
    np.testing.assert_allclose(explanation.values, plain, atol=1e-5, rtol=0)
    assert explanation.explainer.endswith(("pred_contribs", "pred_contrib"))


@pytest.mark.parametrize(
    ("model_type", "problem"),
    [(name, problem) for name in CLASSIFIERS for problem in ("binary", "multiclass")]
    + [(name, "regression") for name in REGRESSORS],
)
def test_additive_for_every_model_type_with_categories_and_gaps(
    model_type: str, problem: str
) -> None:
    frame, target = mixed_data(problem)
    pipeline = fitted(model_type, problem, frame, target)
    explanation = explain_model(pipeline, frame.iloc[:40])

    tolerance = 1e-5 if model_type == "xgboost" else 1e-9
    assert explanation.additivity_error < tolerance
    total = explanation.base_values + explanation.values.sum(axis=1)
    np.testing.assert_allclose(total, explanation.model_output, atol=tolerance, rtol=0)
    assert explanation.features == ["a", "b", "colour", "count"]


def test_one_hot_contributions_are_summed_into_their_column() -> None:
    frame, target = mixed_data("multiclass")
    pipeline = fitted("random_forest", "multiclass", frame, target)
    explanation = explain_model(pipeline, frame.iloc[:30])

    dummies = [index for index, source in enumerate(explanation.sources) if source == "colour"]
    assert len(dummies) == 3  # red, green, blue
    assert len(explanation.transformed_features) == 3 + 3  # a, b, count and the dummies
    colour = explanation.features.index("colour")
    np.testing.assert_allclose(
        explanation.values[:, colour, :],
        explanation.transformed_values[:, dummies, :].sum(axis=1),
        atol=1e-15,
    )
    for name in ("a", "b", "count"):
        own = [i for i, source in enumerate(explanation.sources) if source == name]
        assert len(own) == 1
        np.testing.assert_array_equal(
            explanation.values[:, explanation.features.index(name), :],
            explanation.transformed_values[:, own[0], :],
        )
    grouped = explanation.summary()["transformed_features"]["colour"]
    assert len(grouped) == 3 and all("colour" in name for name in grouped)


def test_one_output_per_class_and_positive_class_for_binary() -> None:
    frame, target = numeric_data("multiclass")
    multi = explain_model(fitted("lightgbm", "multiclass", frame, target), frame.iloc[:7])
    assert multi.values.shape == (7, 6, 3)
    assert multi.base_values.shape == (7, 3)
    assert multi.outputs == ["hi", "lo", "mid"]
    table = multi.frame()
    assert len(table) == 21 and set(table[OUTPUT_COLUMN]) == {"hi", "lo", "mid"}
    summary = multi.summary()
    assert set(summary["mean_abs_shap"]) == {"hi", "lo", "mid"}
    assert set(summary["ranks"]["lo"].values()) == set(range(1, 7))

    frame, target = numeric_data("binary")
    binary = explain_model(fitted("random_forest", "binary", frame, target), frame.iloc[:7])
    assert binary.values.shape == (7, 6, 1) and binary.outputs == ["yes"]
    assert OUTPUT_COLUMN not in binary.frame().columns
    assert list(binary.frame()[ROW_COLUMN]) == list(range(7))

    frame, target = numeric_data("regression")
    regression = explain_model(fitted("ridge", "regression", frame, target), frame.iloc[:7])
    assert regression.values.shape == (7, 6, 1) and regression.outputs == ["prediction"]


def test_many_columns_use_permutations_that_stay_additive() -> None:
    frame, target = numeric_data("binary", rows=120, columns=12)
    pipeline = fitted("knn", "binary", frame, target)
    explanation = explain_model(pipeline, frame.iloc[:10])

    assert explanation.explainer == "flowscope_permutation" and not explanation.exact
    assert explanation.additivity_error < 1e-12
    again = explain_model(pipeline, frame.iloc[:10])
    np.testing.assert_array_equal(explanation.values, again.values)  # seeded


def test_rows_are_sampled_down_to_max_rows() -> None:
    frame, target = numeric_data("regression")
    explanation = explain_model(fitted("ridge", "regression", frame, target), frame, max_rows=25)
    assert len(explanation.values) == 25 and len(explanation.data) == 25
    assert explanation.rows_available == len(frame)


def test_a_quantile_model_is_refused_with_the_reason() -> None:
    frame, target = numeric_data("regression")
    pipeline = fitted_quantile(frame, target)
    with pytest.raises(UnsupportedModelError, match="sorts its per-quantile predictions"):
        explain_model(pipeline, frame.iloc[:5])


def fitted_quantile(frame: pd.DataFrame, target: pd.Series) -> object:
    estimator = build_estimator("lightgbm_quantile", "quantile", {"n_estimators": 5}, seed=0)
    return build_pipeline(frame, estimator, scale=False).fit(frame, target)
