"""flowscope's TreeSHAP: the same values as shap's TreeExplainer on deep trees with repeated
features and missing values, whatever the number of threads."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, RandomForestClassifier

from flowscope.explain import _treeshap

shap = pytest.importorskip("shap")


def _data(rows: int = 400, columns: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(rows, columns))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return X, y


def _prepared(model: object, *, shares: bool, column: int | None, outputs: int):
    members = model.estimators_
    forest = _treeshap.flatten_sklearn_trees(
        [(member.tree_, 1.0 / len(members), -1) for member in members],
        shares=shares,
        value_column=column,
        n_outputs=outputs,
        n_features=model.n_features_in_,
    )
    return _treeshap.prepare_forest(forest)


def test_deep_forest_with_missing_values_matches_shap() -> None:
    X, y = _data()
    X[::7, 3] = np.nan  # scikit-learn trees learn where missing values go
    model = RandomForestClassifier(n_estimators=12, random_state=0).fit(X, y)
    prepared = _prepared(model, shares=True, column=None, outputs=2)
    assert prepared.max_unique_depth >= 6  # deep paths that repeat features

    ours = _treeshap.tree_shap(prepared, X[:80], n_threads=1)
    theirs = np.asarray(shap.TreeExplainer(model).shap_values(X[:80]))
    np.testing.assert_allclose(ours, theirs, atol=1e-12, rtol=0)
    np.testing.assert_allclose(
        prepared.base_values, shap.TreeExplainer(model).expected_value, atol=1e-12
    )


def test_threads_split_rows_without_changing_values() -> None:
    X, y = _data()
    model = ExtraTreesRegressor(n_estimators=8, random_state=0).fit(X, y.astype(float))
    prepared = _prepared(model, shares=False, column=None, outputs=1)

    one = _treeshap.tree_shap(prepared, X[:200], n_threads=1)
    many = _treeshap.tree_shap(prepared, X[:200], n_threads=4)
    np.testing.assert_array_equal(one, many)
    total = one[:, :, 0].sum(axis=1) + prepared.base_values[0]
    np.testing.assert_allclose(total, model.predict(X[:200]), atol=1e-12)


def test_trees_out_of_preorder_are_refused() -> None:
    X, y = _data(rows=50)
    model = RandomForestClassifier(n_estimators=1, max_depth=2, random_state=0).fit(X, y)

    class Shuffled:
        def __init__(self, tree: object) -> None:
            self.__dict__.update(
                children_left=tree.children_left[::-1].copy(),
                children_right=tree.children_right[::-1].copy(),
            )

    with pytest.raises(ValueError, match="preorder"):
        _treeshap.flatten_sklearn_trees(
            [(Shuffled(model.estimators_[0].tree_), 1.0, -1)],
            shares=True,
            value_column=1,
            n_outputs=1,
            n_features=X.shape[1],
        )
