"""The objective of a catalog study: fit a model type with the trial's parameters on the
training rows and score it on validation rows; the test rows stay untouched for the refit.

The rows are split as ``flowscope train`` splits them (same test share, seed and
stratification), so the best configuration's refit is evaluated on the very rows a
``train`` run of it would be; the training rows are split again into fitting and
validation rows for the trials.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from flowscope.tuning.scoring import Metric
    from flowscope.tuning.space import SearchSpace

VALIDATION_SHARE = 0.25


class CatalogObjective:
    """Callable by Optuna: one trial fits ``model_type`` with the parameters it suggests
    from ``space`` and returns ``metric`` on the validation rows. XGBoost and LightGBM
    report the metric after every round, so a pruner can stop them early."""

    def __init__(
        self,
        frame: pd.DataFrame,
        target: str,
        model_type: str,
        problem: str,
        metric: Metric,
        space: SearchSpace,
        *,
        test_size: float = 0.2,
        seed: int = 0,
    ) -> None:
        from sklearn.model_selection import train_test_split

        from flowscope.modeling.train import build_pipeline, scales_features

        self.model_type = model_type
        self.problem = problem
        self.metric = metric
        self.space = space
        self.seed = seed
        self.classification = problem in ("binary", "multiclass")
        labelled = frame.dropna(subset=[target])
        features = labelled.drop(columns=[target])
        y = labelled[target]
        stratify = y if self.classification else None
        try:
            X_train, _, y_train, _ = train_test_split(
                features, y, test_size=test_size, random_state=seed, stratify=stratify
            )
            X_fit, X_valid, y_fit, y_valid = train_test_split(
                X_train,
                y_train,
                test_size=VALIDATION_SHARE,
                random_state=seed,
                stratify=y_train if self.classification else None,
            )
        except ValueError as exc:
            raise FlowscopeError(f"cannot split the data for tuning: {exc}") from None
        # Preprocessing does not depend on the model's parameters: fitted once per study.
        preprocess = build_pipeline(X_fit, None, scale=scales_features(model_type))[:-1]
        self.X_fit = preprocess.fit_transform(X_fit, y_fit)
        self.X_valid = preprocess.transform(X_valid)
        if self.classification:
            self.classes = np.unique(np.asarray(y_train))
            self.y_fit = np.searchsorted(self.classes, np.asarray(y_fit))
            self.y_valid = np.searchsorted(self.classes, np.asarray(y_valid))
        else:
            self.y_fit = np.asarray(y_fit, dtype=float)
            self.y_valid = np.asarray(y_valid, dtype=float)

    def __call__(self, trial: optuna.Trial) -> float:
        from flowscope.modeling.catalog import build_estimator
        from flowscope.tuning.boosting import is_booster, report_rounds
        from flowscope.tuning.space import suggest

        params = suggest(trial, self.space)
        model = build_estimator(self.model_type, self.problem, params, self.seed)
        fit_kwargs: dict[str, Any] = {}
        if is_booster(model):
            fit_kwargs = report_rounds(
                model,
                trial,
                self.metric,
                self.X_valid,
                self.y_valid,
                classification=self.classification,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence and deprecation chatter per trial
            model.fit(self.X_fit, self.y_fit, **fit_kwargs)
            if not self.classification:
                return self.metric.score(self.y_valid, np.asarray(model.predict(self.X_valid)))
            proba = np.asarray(model.predict_proba(self.X_valid))
        return self.metric.score(self.y_valid, self._all_classes(proba, model))

    def _all_classes(self, proba: np.ndarray, model: Any) -> np.ndarray:
        """Probability columns for every class, where the fitting rows lacked one."""
        fitted = np.asarray(getattr(model, "classes_", np.arange(proba.shape[1])))
        if len(fitted) == len(self.classes):
            return proba
        full = np.zeros((proba.shape[0], len(self.classes)))
        full[:, fitted.astype(int)] = proba
        return full
