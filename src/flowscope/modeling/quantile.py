"""Quantile regression with LightGBM: one booster per quantile level, one estimator outside."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from flowscope.errors import FlowscopeError


class QuantileLGBMRegressor(RegressorMixin, BaseEstimator):
    """Predicts several quantiles of the target with one ``LGBMRegressor(objective="quantile",
    alpha=q)`` per level; ``predict`` gives the median (or the middle level when 0.5 is not
    asked for) and ``predict_quantiles`` every level.

    Boosters fitted independently can cross (a 0.9 prediction below the 0.5 one on some
    rows); the predictions are therefore sorted across levels row by row, the
    "rearrangement" of Chernozhukov et al. (2010), which never makes the pinball loss worse.

    >>> model = QuantileLGBMRegressor(quantiles=(0.1, 0.5, 0.9)).fit(X, y)  # doctest: +SKIP
    >>> model.predict_quantiles(X)[0.9]                                     # doctest: +SKIP
    """

    # Explicit keyword parameters (not **kwargs) so that get_params/clone/set_params, and
    # hence tuning and skops, see them as for any scikit-learn estimator.
    def __init__(
        self,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        *,
        n_estimators: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        max_depth: int = -1,
        min_child_samples: int = 20,
        subsample: float = 1.0,
        subsample_freq: int = 1,
        colsample_bytree: float = 1.0,
        reg_alpha: float = 0.0,
        reg_lambda: float = 0.0,
        random_state: int | None = None,
        n_jobs: int = 1,
    ) -> None:
        self.quantiles = quantiles
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.subsample_freq = subsample_freq
        self.colsample_bytree = colsample_bytree
        self.reg_alpha = reg_alpha
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _levels(self) -> list[float]:
        try:
            levels = sorted({float(q) for q in self.quantiles})
        except (TypeError, ValueError) as exc:
            raise FlowscopeError(
                f"quantiles must be numbers between 0 and 1, not {self.quantiles!r}"
            ) from exc
        if not levels or any(not 0.0 < q < 1.0 for q in levels):
            raise FlowscopeError(
                f"quantiles must be one or more numbers strictly between 0 and 1, "
                f"not {self.quantiles!r}"
            )
        return levels

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> QuantileLGBMRegressor:
        """Fit one LightGBM booster per quantile level."""
        from lightgbm import LGBMRegressor

        levels = self._levels()
        params = self.get_params()
        params.pop("quantiles")
        self.estimators_ = [
            LGBMRegressor(objective="quantile", alpha=q, verbose=-1, **params).fit(
                X, y, sample_weight=sample_weight
            )
            for q in levels
        ]
        self.quantiles_ = tuple(levels)
        first = self.estimators_[0]
        self.n_features_in_ = first.n_features_in_
        if hasattr(first, "feature_names_in_"):
            self.feature_names_in_ = first.feature_names_in_
        return self

    def _predict_matrix(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        matrix = np.column_stack([estimator.predict(X) for estimator in self.estimators_])
        return np.sort(matrix, axis=1)

    def predict_quantiles(self, X: Any) -> dict[float, np.ndarray]:
        """Predictions for each quantile level, ``{0.1: array, 0.5: array, ...}``, ordered."""
        matrix = self._predict_matrix(X)
        return {q: matrix[:, i] for i, q in enumerate(self.quantiles_)}

    def predict(self, X: Any) -> np.ndarray:
        """The median prediction; without a 0.5 level, the middle level (the upper of the
        two middle ones for an even number of levels)."""
        matrix = self._predict_matrix(X)
        levels = self.quantiles_
        middle = levels.index(0.5) if 0.5 in levels else len(levels) // 2
        return matrix[:, middle]
