"""The metrics a catalog study can optimize: the evaluation's headline metrics, computed as
:mod:`flowscope.tracking.evaluation` computes them (macro averages, ``zero_division=0``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowscope.errors import FlowscopeError

CLASSIFICATION = ("binary", "multiclass")


@dataclass(frozen=True)
class Metric:
    """One metric: its direction and how it scores held-out rows.

    ``score(y_true, proba)`` takes true class codes 0..k-1 and an (n, k) probability
    matrix for classifiers, or true values and predictions for regressors."""

    name: str
    direction: str  # "maximize" or "minimize"
    problems: tuple[str, ...]
    score: Callable[[np.ndarray, np.ndarray], float]


def _labels(proba: np.ndarray) -> np.ndarray:
    return np.asarray(np.argmax(proba, axis=1))


def _macro(function: Any) -> Callable[[np.ndarray, np.ndarray], float]:
    def score(y_true: np.ndarray, proba: np.ndarray) -> float:
        codes = list(range(proba.shape[1]))
        return float(
            function(y_true, _labels(proba), labels=codes, average="macro", zero_division=0)
        )

    return score


def _accuracy(y_true: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, _labels(proba)))


def _log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    return float(log_loss(y_true, proba, labels=list(range(proba.shape[1]))))


def _roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if proba.shape[1] == 2:
        return float(roc_auc_score(y_true == 1, proba[:, 1]))
    codes = list(range(proba.shape[1]))
    return float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=codes))


def _average_precision(y_true: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y_true == 1, proba[:, 1]))


def _rmse(y_true: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import root_mean_squared_error

    return float(root_mean_squared_error(y_true, predicted))


def _mae(y_true: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(y_true, predicted))


def _r2(y_true: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y_true, predicted))


def _metrics() -> dict[str, Metric]:
    from sklearn.metrics import f1_score, precision_score, recall_score

    entries = [
        Metric("accuracy", "maximize", CLASSIFICATION, _accuracy),
        Metric("precision", "maximize", CLASSIFICATION, _macro(precision_score)),
        Metric("recall", "maximize", CLASSIFICATION, _macro(recall_score)),
        Metric("f1", "maximize", CLASSIFICATION, _macro(f1_score)),
        Metric("roc_auc", "maximize", CLASSIFICATION, _roc_auc),
        Metric("log_loss", "minimize", CLASSIFICATION, _log_loss),
        Metric("average_precision", "maximize", ("binary",), _average_precision),
        Metric("rmse", "minimize", ("regression",), _rmse),
        Metric("mae", "minimize", ("regression",), _mae),
        Metric("r2", "maximize", ("regression",), _r2),
    ]
    return {metric.name: metric for metric in entries}


DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}


def metric_for(name: str | None, problem: str) -> Metric:
    """The metric ``name`` (the problem's default when None), refused by name when the
    evaluation of a ``problem`` does not produce it."""
    if problem not in DEFAULT_METRIC:
        raise FlowscopeError(
            f"tuning supports classification and regression targets, not {problem}"
        )
    metrics = _metrics()
    chosen = metrics.get(name or DEFAULT_METRIC[problem])
    if chosen is None or problem not in chosen.problems:
        known = [metric.name for metric in metrics.values() if problem in metric.problems]
        raise FlowscopeError(
            f"metric {name!r} is not one the evaluation of a {problem} problem produces; "
            f"use one of: {', '.join(known)}"
        )
    return chosen
