"""JSON tables behind the evaluation artifacts: confusion matrix and ROC/PR curve points, as
plain lists of Python floats (no NaN or inf, so they load in any JSON reader)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    auc,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_curve,
)


def json_floats(values: Any) -> list[float | None]:
    """Floats with every non-finite value as ``None``: scikit-learn's first ROC threshold is
    ``inf`` ("predict nothing positive"), and no finite number says that honestly."""
    return [float(value) if np.isfinite(value) else None for value in np.asarray(values)]


def confusion_table(true_codes: np.ndarray, pred_codes: np.ndarray, labels: list[Any]) -> dict:
    """Counts (rows: true class, columns: predicted) and the row-normalised matrix; a class
    absent from y_true gets a row of zeros rather than NaN."""
    counts = confusion_matrix(true_codes, pred_codes, labels=list(range(len(labels))))
    totals = counts.sum(axis=1, keepdims=True)
    normalized = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    return {
        "labels": labels,
        "counts": counts.astype(int).tolist(),
        "normalized": normalized.astype(float).tolist(),
    }


def roc_table(is_positive: np.ndarray, score: np.ndarray) -> dict:
    fpr, tpr, thresholds = roc_curve(is_positive, score)
    return {
        "fpr": json_floats(fpr),
        "tpr": json_floats(tpr),
        "thresholds": json_floats(thresholds),
        "auc": float(auc(fpr, tpr)),
    }


def pr_table(is_positive: np.ndarray, score: np.ndarray) -> dict:
    """Precision/recall points; as in scikit-learn, the last point (recall 0, precision 1) has
    no threshold, so ``thresholds`` is one shorter than the other two lists."""
    precision, recall, thresholds = precision_recall_curve(is_positive, score)
    return {
        "precision": json_floats(precision),
        "recall": json_floats(recall),
        "thresholds": json_floats(thresholds),
        "average_precision": float(average_precision_score(is_positive, score)),
        "prevalence": float(np.mean(is_positive)),
    }


def ovr_roc_table(true_codes: np.ndarray, proba: np.ndarray, labels: list[Any]) -> dict:
    """One-vs-rest ROC curve per class; a class absent from y_true (or the only one present)
    has no curve and is listed under ``skipped``."""
    curves = []
    skipped = []
    for index, label in enumerate(labels):
        is_positive = true_codes == index
        if is_positive.all() or not is_positive.any():
            skipped.append(label)
            continue
        curves.append({"label": label, **roc_table(is_positive, proba[:, index])})
    return {"multi_class": "ovr", "curves": curves, "skipped": skipped}
