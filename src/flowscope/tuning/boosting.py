"""Boosting rounds as a trial's intermediate values, so pruners can stop a poor trial early.

XGBoost and LightGBM compute the study's metric on the validation rows after every round
themselves (a custom evaluation metric, kept up to date incrementally by the booster), and
a callback reports it to the trial every few rounds (at most ``MAX_REPORTS`` times, the
last round always) and stops training when the pruner says so. The value after the last
round is the one the trial returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import optuna

    from flowscope.tuning.scoring import Metric

_NAME = "flowscope_objective"
# Each report is a write to the study's storage (a transaction, on SQLite a sync to disk):
# at most this many per trial keep pruning timely without making storage the bottleneck.
MAX_REPORTS = 50


def is_booster(estimator: Any) -> bool:
    return type(estimator).__module__.startswith(("xgboost", "lightgbm"))


def _as_matrix(predicted: np.ndarray, classification: bool) -> np.ndarray:
    """Boosters hand a binary classifier's metric the positive class's probability only."""
    predicted = np.asarray(predicted)
    if classification and predicted.ndim == 1:
        return np.column_stack([1 - predicted, predicted])
    return predicted


def report_rounds(
    estimator: Any,
    trial: optuna.Trial,
    metric: Metric,
    X_valid: Any,
    y_valid: np.ndarray,
    *,
    classification: bool,
) -> dict[str, Any]:
    """Set ``estimator`` (an unfitted XGBoost or LightGBM model) to report ``metric`` on
    the validation rows to ``trial`` after each round; return the keyword arguments its
    ``fit`` needs. ``y_valid`` holds class codes 0..k-1 for classifiers."""
    import optuna

    def score(y_true: np.ndarray, predicted: np.ndarray) -> float:
        return metric.score(
            np.asarray(y_true).astype(int) if classification else y_true,
            _as_matrix(predicted, classification),
        )

    rounds = int(estimator.get_params().get("n_estimators") or MAX_REPORTS)
    every = max(1, rounds // MAX_REPORTS)

    def report(value: float, round_index: int) -> None:
        if (round_index + 1) % every and round_index + 1 != rounds:
            return
        trial.report(value, round_index)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after round {round_index + 1}")

    if type(estimator).__module__.startswith("xgboost"):
        import xgboost

        class Reporter(xgboost.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                report(float(evals_log["validation_0"][_NAME][-1]), epoch)
                return False

        def objective_metric(y_true: np.ndarray, predicted: np.ndarray) -> float:
            return score(y_true, predicted)

        objective_metric.__name__ = _NAME
        estimator.set_params(eval_metric=objective_metric, callbacks=[Reporter()])
        return {"eval_set": [(X_valid, y_valid)], "verbose": False}

    def lightgbm_metric(y_true: np.ndarray, predicted: np.ndarray) -> tuple[str, float, bool]:
        return _NAME, score(y_true, predicted), metric.direction == "maximize"

    def lightgbm_reporter(env: Any) -> None:
        for result in env.evaluation_result_list:
            if result[1] == _NAME:
                report(float(result[2]), env.iteration)

    return {
        "eval_set": [(X_valid, y_valid)],
        "eval_metric": lightgbm_metric,
        "callbacks": [lightgbm_reporter],
    }
