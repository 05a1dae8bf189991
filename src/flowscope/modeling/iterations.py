"""Validation metrics after each boosting round: the per-epoch history of iterative models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

# Enough points for a smooth curve without logging thousands of near-identical values.
MAX_CHECKPOINTS = 100


def _checkpoints(rounds: int) -> list[int]:
    if rounds <= MAX_CHECKPOINTS:
        return list(range(1, rounds + 1))
    return sorted({int(x) for x in np.linspace(1, rounds, MAX_CHECKPOINTS).round()})


def _staged_outputs(model: Any, X: Any, *, proba: bool) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(round, output after that many rounds)`` for the model kinds that have rounds."""
    module = type(model).__module__
    if module.startswith("xgboost"):
        rounds = int(model.get_booster().num_boosted_rounds())
        method = model.predict_proba if proba else model.predict
        for n in _checkpoints(rounds):
            yield n, method(X, iteration_range=(0, n))
    elif module.startswith("lightgbm"):
        rounds = int(model.booster_.current_iteration())
        method = model.predict_proba if proba else model.predict
        for n in _checkpoints(rounds):
            yield n, method(X, num_iteration=n)
    elif hasattr(model, "staged_predict_proba" if proba else "staged_predict"):
        staged = model.staged_predict_proba(X) if proba else model.staged_predict(X)
        wanted = set(_checkpoints(int(model.n_estimators_)))
        for n, output in enumerate(staged, start=1):
            if n in wanted:
                yield n, output


def is_iterative(model: Any) -> bool:
    module = type(model).__module__
    return (
        module.startswith(("xgboost", "lightgbm")) or hasattr(model, "staged_predict")
    ) and hasattr(model, "n_estimators")


def validation_history(
    model: Any, X: Any, y: Any, *, problem: str, classes: Any = None
) -> Iterator[tuple[int, dict[str, float]]]:
    """Yield ``(round, {"val_accuracy", "val_log_loss"})`` for classifiers or
    ``(round, {"val_rmse", "val_mae"})`` for regressors, after each boosting round.

    ``model`` is the fitted booster itself (outside its pipeline) and ``X`` its already
    transformed input; ``classes`` orders the probability columns (the pipeline's labels).
    """
    from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error

    y = np.asarray(y)
    if problem in ("binary", "multiclass"):
        labels = np.asarray(classes)
        for n, proba in _staged_outputs(model, X, proba=True):
            predicted = labels[np.argmax(proba, axis=1)]
            yield (
                n,
                {
                    "val_accuracy": float(accuracy_score(y, predicted)),
                    "val_log_loss": float(log_loss(y, proba, labels=labels)),
                },
            )
    else:
        for n, predicted in _staged_outputs(model, X, proba=False):
            yield (
                n,
                {
                    "val_rmse": float(np.sqrt(mean_squared_error(y, predicted))),
                    "val_mae": float(mean_absolute_error(y, predicted)),
                },
            )
