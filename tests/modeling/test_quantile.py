"""The LightGBM quantile model: ordered quantiles, a median like LightGBM's own, and a
scikit-learn estimator's manners (clone, params)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from flowscope.errors import FlowscopeError
from flowscope.modeling.data import load_builtin
from flowscope.modeling.quantile import QuantileLGBMRegressor


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    frame, target = load_builtin("diabetes")
    return frame.drop(columns=[target]).to_numpy(), frame[target].to_numpy()


def test_quantiles_are_ordered_and_cover_the_target(
    diabetes: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = diabetes
    model = QuantileLGBMRegressor(quantiles=(0.9, 0.1, 0.5), random_state=0).fit(X, y)
    predicted = model.predict_quantiles(X)
    assert list(predicted) == [0.1, 0.5, 0.9]
    low, median, high = predicted[0.1], predicted[0.5], predicted[0.9]
    assert low.mean() < median.mean() < high.mean()
    assert np.all(low <= median) and np.all(median <= high)
    coverage = np.mean((y >= low) & (y <= high))
    assert 0.65 < coverage < 0.95
    np.testing.assert_array_equal(model.predict(X), median)


def test_median_is_close_to_lightgbm_direct_quantile_fit(
    diabetes: tuple[np.ndarray, np.ndarray],
) -> None:
    from lightgbm import LGBMRegressor

    X, y = diabetes
    ours = QuantileLGBMRegressor(random_state=0).fit(X, y).predict(X)
    params = QuantileLGBMRegressor(random_state=0).get_params()
    params.pop("quantiles")
    direct = LGBMRegressor(objective="quantile", alpha=0.5, verbose=-1, **params).fit(X, y)
    difference = np.abs(ours - direct.predict(X))
    assert difference.mean() < 0.02 * y.std()


def test_without_a_median_predict_gives_the_middle_level(
    diabetes: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = diabetes
    model = QuantileLGBMRegressor(quantiles=(0.2, 0.4, 0.8), n_estimators=20).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), model.predict_quantiles(X)[0.4])


def test_it_behaves_as_a_scikit_learn_estimator(diabetes: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = diabetes
    model = QuantileLGBMRegressor(quantiles=(0.25, 0.75), n_estimators=10, random_state=1)
    copy = clone(model).set_params(num_leaves=7)
    assert copy.get_params()["quantiles"] == (0.25, 0.75)
    assert copy.get_params()["num_leaves"] == 7
    assert copy.fit(X, y).n_features_in_ == X.shape[1]
    assert np.isfinite(copy.score(X, y))  # R² of predict(), from RegressorMixin


@pytest.mark.parametrize("quantiles", [(), (0.0, 0.5), (0.5, 1.2), ("low",)])
def test_bad_quantiles_are_refused(
    quantiles: tuple[object, ...], diabetes: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = diabetes
    with pytest.raises(FlowscopeError, match="quantiles"):
        QuantileLGBMRegressor(quantiles=quantiles).fit(X, y)  # type: ignore[arg-type]
