"""Small estimator wrappers the training pipeline needs around catalog models."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.preprocessing import LabelEncoder


class EncodedLabelClassifier(ClassifierMixin, BaseEstimator):
    """A classifier whose labels are encoded to 0..k-1 before fitting and decoded after.

    XGBoost refuses class labels other than 0..k-1 (iris's "setosa", a CSV's "yes"/"no");
    wrapping it keeps the pipeline's predictions in the user's own labels, which is what a
    served model must answer with.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, **fit_params: Any) -> EncodedLabelClassifier:
        self.label_encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.label_encoder_.classes_
        self.estimator_ = clone(self.estimator).fit(
            X, self.label_encoder_.transform(y), **fit_params
        )
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.label_encoder_.inverse_transform(self.estimator_.predict(X)))

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator_.predict_proba(X))

    @property
    def n_features_in_(self) -> int:
        return int(self.estimator_.n_features_in_)


def final_estimator(model: Any) -> Any:
    """The fitted model at the end of a pipeline, unwrapped from label encoding."""
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    return last.estimator_ if isinstance(last, EncodedLabelClassifier) else last


def needs_label_encoding(estimator: Any) -> bool:
    """True for classifiers that accept only the labels 0..k-1 (XGBoost's)."""
    return type(estimator).__module__.startswith("xgboost")
