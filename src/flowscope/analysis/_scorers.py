"""Scorers for the paired bootstrap: a metric computed for many resamples at once.

A resample is a weight per unit (how often it was drawn); a unit is a row, or for label
metrics one distinct (y_true, pred_a, pred_b) triple, which makes accuracy, precision,
recall and F1 cost the number of distinct triples rather than the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from flowscope.errors import FlowscopeError
from flowscope.tracking import evaluation_checks as checks

CLASSIFICATION_METRICS = ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
PROBABILITY_METRICS = ("roc_auc", "log_loss")

# Resamples are drawn in blocks of about this many cells, so memory stays in the tens of
# megabytes whatever the number of rows.
BLOCK_CELLS = 2_000_000
# A multinomial draw per distinct row costs about as much as this many uniform row draws.
_MULTINOMIAL_COST = 16

# Weights (k resamples x m units: how often each unit was drawn) -> the metric per resample.
# A unit is a row, or for label metrics one distinct (y_true, pred_a, pred_b) triple.
Scorer = Callable[[np.ndarray], np.ndarray]


def _weighted_mean(values: np.ndarray) -> Scorer:
    return lambda weights: weights @ values / weights.sum(axis=1)


def _auc_scorer(positive: np.ndarray, score: np.ndarray) -> Scorer:
    """ROC AUC as the Mann-Whitney statistic over weighted rows, ties counting half (which is
    what scikit-learn's trapezoids give): sorted once, then cumulative sums per resample."""
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    is_positive = positive[order].astype(np.float64)
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))

    def auc(weights: np.ndarray) -> np.ndarray:
        weights = weights[:, order]
        pos_cum = np.cumsum(weights * is_positive, axis=1)[:, ends]
        neg_cum = np.cumsum(weights * (1.0 - is_positive), axis=1)[:, ends]
        pos_in = np.diff(pos_cum, axis=1, prepend=0.0)
        neg_in = np.diff(neg_cum, axis=1, prepend=0.0)
        wins = (pos_in * (neg_cum - 0.5 * neg_in)).sum(axis=1)  # ties count half
        with np.errstate(divide="ignore", invalid="ignore"):
            return wins / (pos_cum[:, -1] * neg_cum[:, -1])

    return auc


def _label_scorer(metric: str, truth: np.ndarray, predicted: np.ndarray, k: int) -> Scorer:
    hit = truth == predicted
    if metric == "accuracy":
        return _weighted_mean(hit.astype(np.float64))
    eye = np.eye(k)
    true_onehot, pred_onehot = eye[truth], eye[predicted]
    stats = np.hstack([true_onehot * hit[:, None], pred_onehot, true_onehot])

    def macro(weights: np.ndarray) -> np.ndarray:
        tp, n_pred, n_true = np.split(weights @ stats, 3, axis=1)
        numerator, denominator = {
            "precision": (tp, n_pred),
            "recall": (tp, n_true),
            "f1": (2.0 * tp, n_pred + n_true),
        }[metric]
        ratio = np.divide(
            numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0
        )
        return ratio.mean(axis=1)

    return macro


def _proba_scorer(metric: str, truth: np.ndarray, proba: np.ndarray) -> Scorer:
    if metric == "log_loss":
        eps = np.finfo(np.float64).eps  # scikit-learn clips the same way
        picked = np.clip(proba[np.arange(len(truth)), truth], eps, 1.0 - eps)
        return _weighted_mean(-np.log(picked))
    k = proba.shape[1]
    if k == 2:
        return _auc_scorer(truth == 1, proba[:, 1])
    per_class = [_auc_scorer(truth == code, proba[:, code]) for code in range(k)]
    return lambda weights: np.mean([auc(weights) for auc in per_class], axis=0)


def _regression_scorer(metric: str, truth: np.ndarray, predicted: np.ndarray) -> Scorer:
    residual = truth - predicted
    if metric == "mae":
        return _weighted_mean(np.abs(residual))
    if metric == "rmse":
        mse = _weighted_mean(residual**2)
        return lambda weights: np.sqrt(mse(weights))
    # R² is shift-invariant in y_true; centring keeps the sums of squares from cancelling.
    centred = truth - truth.mean()
    stats = np.column_stack([residual**2, centred, centred**2])

    def r2(weights: np.ndarray) -> np.ndarray:
        sse, total, squares = (weights @ stats).T
        sst = squares - total**2 / weights.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sst > 0, 1.0 - sse / sst, np.nan)

    return r2


def check_metric(metric: str) -> None:
    if metric not in CLASSIFICATION_METRICS + REGRESSION_METRICS:
        known = ", ".join(CLASSIFICATION_METRICS + REGRESSION_METRICS)
        raise FlowscopeError(f"no paired test for metric {metric!r}; choose one of {known}")


def scorers(
    metric: str, y_true: Any, pred_a: Any, pred_b: Any, proba_a: Any, proba_b: Any, labels: Any
) -> tuple[Scorer, Scorer, np.ndarray]:
    """Scorers for both models over units, and how many rows each unit stands for."""
    if metric in REGRESSION_METRICS:
        truth = checks.numbers(y_true, "y_true")
        a, b = checks.numbers(pred_a, "pred_a"), checks.numbers(pred_b, "pred_b")
        for values, name in ((a, "pred_a"), (b, "pred_b")):
            checks.same_length(truth, values, name, "y_true")
        ones = np.ones(len(truth), dtype=np.int64)
        return _regression_scorer(metric, truth, a), _regression_scorer(metric, truth, b), ones
    check_metric(metric)
    truth = checks.labels_vector(y_true, "y_true")
    a, b = checks.labels_vector(pred_a, "pred_a"), checks.labels_vector(pred_b, "pred_b")
    for values, name in ((a, "pred_a"), (b, "pred_b")):
        checks.same_length(truth, values, name, "y_true")
    classes = checks.resolve_labels(labels, truth, np.concatenate([a, b]))
    codes = checks.encode(truth, classes, "y_true")
    ones = np.ones(len(codes), dtype=np.int64)
    if metric not in PROBABILITY_METRICS:
        k = len(classes)
        triples = np.column_stack(
            [codes, checks.encode(a, classes, "pred_a"), checks.encode(b, classes, "pred_b")]
        )
        units, counts = np.unique(triples, axis=0, return_counts=True)
        if len(units) * _MULTINOMIAL_COST > len(codes):  # many classes: rows are cheaper
            units, counts = triples, ones
        t, code_a, code_b = units.T
        return _label_scorer(metric, t, code_a, k), _label_scorer(metric, t, code_b, k), counts
    if proba_a is None or proba_b is None:
        raise FlowscopeError(f"{metric} needs the probabilities of both models (proba_a, proba_b)")
    matrix_a, matrix_b = (
        checks.probabilities(proba, len(truth), classes)[0].astype(np.float64)
        for proba in (proba_a, proba_b)
    )
    return _proba_scorer(metric, codes, matrix_a), _proba_scorer(metric, codes, matrix_b), ones


def resample(rng: np.random.Generator, counts: np.ndarray, k: int) -> np.ndarray:
    """How often each unit is drawn in each of ``k`` resamples of the n rows with replacement.

    Rows of one unit are interchangeable, so drawing how many of each unit (a multinomial) has
    exactly the distribution of drawing rows; either way a draw takes both models' predictions
    of the row together, which is what pairs the bootstrap.
    """
    n, m = int(counts.sum()), len(counts)
    if m < n:
        return rng.multinomial(n, counts / n, size=k).astype(np.float64)
    draws = rng.integers(0, n, size=(k, n)) + (np.arange(k) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=k * n).reshape(k, n).astype(np.float64)
