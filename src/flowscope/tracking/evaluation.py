"""Evaluation of held-out predictions: metrics, JSON tables, figures and a predictions frame.

Pure functions: nothing here talks to MLflow. :func:`flowscope.tracking.records.log_evaluation`
logs the :class:`Evaluation` they return as metrics and ``evaluation/`` artifacts. Every
number is computed with scikit-learn, so it equals what scikit-learn gives on the same input.

Decisions worth knowing:

- Precision, recall and F1 use ``zero_division=0``: a class never predicted scores 0 rather
  than NaN (which MLflow would store and JSON cannot carry).
- A metric that is undefined for the input is left out of ``metrics`` and explained under
  ``skipped`` in ``metrics.json`` instead of failing: ``roc_auc`` when y_true lacks a class,
  the ROC curve when y_true holds one class, the PR curve when it holds no positive,
  ``r2`` with fewer than two rows, ``mape`` when a target is 0.
- Class names (breast cancer's 0 is "malignant") are for people: ``class_names`` in
  ``metrics.json`` and ``confusion_matrix.json`` (aligned with ``labels``) and the figures
  show them, while metric names keep the labels (``recall_0``), which policies use.
- Binary problems with scores get the ``*_at_<t>`` metrics for ``thresholds`` (default
  [0.5]); thresholds on a multiclass problem, or without y_score, are an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_pinball_loss,
    precision_recall_fscore_support,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from flowscope.errors import FlowscopeError
from flowscope.tracking import _evaluation_curves as curves
from flowscope.tracking import evaluation_checks as checks

__all__ = [
    "Evaluation",
    "class_display",
    "class_names_for",
    "evaluate_classification",
    "evaluate_quantiles",
    "evaluate_regression",
    "format_level",
    "metric_key_part",
    "table_class_names",
]

logger = logging.getLogger(__name__)

# MLflow also accepts '/' and ':' in metric keys, but '/' nests keys as paths (a label "a/"
# makes an invalid key) and ':' is refused by stores on Windows, so both become '_' too.
_UNSAFE_KEY_CHARACTERS = re.compile(r"[^\w.\- ]")


@dataclass
class Evaluation:
    """What an evaluation produced; ``tables`` and ``figures`` map artifact file names (logged
    under ``evaluation/``) to JSON-able data and matplotlib figures."""

    problem: str
    metrics: dict[str, float]
    tables: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)


def metric_key_part(value: Any) -> str:
    """``value`` (a class label) as a fragment of an MLflow metric key: every character
    other than letters, digits, ``_``, ``-``, ``.`` and space becomes ``_``, so
    ``"setosa/virginica"`` gives ``precision_setosa_virginica``."""
    return _UNSAFE_KEY_CHARACTERS.sub("_", str(value))


def format_level(value: float) -> str:
    """A threshold or quantile level as written in metric names: the shortest decimal that
    reads back as the same float, never in exponent form (0.43 -> "0.43", 0.5 -> "0.5")."""
    return str(np.format_float_positional(float(value), trim="-"))


def _key_parts(labels: list[Any]) -> list[str]:
    parts = [metric_key_part(label) for label in labels]
    if len(set(parts)) != len(parts):
        raise FlowscopeError(
            f"labels {labels} give clashing metric names {parts} once characters MLflow "
            "refuses are replaced; rename the classes"
        )
    return parts


def class_names_for(classes: Sequence[Any], class_names: Mapping[Any, Any] | None) -> list[str]:
    """Each class's name, aligned with ``classes``: from ``class_names`` (keyed by label or
    by the label as text), else the label as text; two classes of one name are an error."""
    given = class_names or {}
    if not isinstance(given, Mapping):
        raise FlowscopeError("class_names must map class labels to names")
    names = [str(given.get(label, given.get(str(label), label))) for label in classes]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise FlowscopeError(f"class_names gives two classes the same name: {twice}")
    return names


def class_display(label: Any, name: str) -> str:
    """A class as a figure shows it: its name, with the label when they differ
    (``"malignant (0)"``), so a reader can find it in metric names."""
    return name if name == str(label) else f"{name} ({label})"


def table_class_names(table: Mapping[str, Any]) -> list[str]:
    """The class names of an evaluation table (metrics.json, confusion_matrix.json),
    aligned with its ``labels``; the labels as text for one logged without names."""
    labels = list(table.get("labels") or [])
    names = table.get("class_names")
    if not isinstance(names, list) or len(names) != len(labels):
        return [str(label) for label in labels]
    return [str(name) for name in names]


def _skip(skipped: dict[str, str], name: str, reason: str) -> None:
    logger.warning("evaluation: %s skipped: %s", name, reason)
    skipped[name] = reason


def evaluate_classification(
    y_true: Any,
    y_pred: Any = None,
    y_score: Any = None,
    *,
    labels: Any = None,
    thresholds: Any = None,
    class_names: Mapping[Any, Any] | None = None,
) -> Evaluation:
    """Evaluate binary or multiclass predictions: accuracy, macro precision/recall/F1, per
    class precision/recall/F1/support, and with ``y_score`` (a 1-D positive-class score for
    binary, else an (n, n_classes) probability matrix in ``labels`` order) log loss, ROC AUC
    and curves; binary problems also get per-threshold metrics. ``labels`` fixes the class
    order (default: sorted union of y_true and y_pred), the positive class being
    ``labels[1]``; without ``y_pred`` the prediction is ``score >= 0.5`` (binary) or the
    argmax. ``class_names`` (label → name) names the classes in the JSON tables and the
    figures.

    >>> result = evaluate_classification(y_test, y_score=model.predict_proba(X_test)[:, 1],
    ...                                  thresholds=[0.5, 0.35])  # doctest: +SKIP
    >>> result.metrics["recall_at_0.35"]                           # doctest: +SKIP
    """
    truth = checks.labels_vector(y_true, "y_true")
    if y_pred is None and y_score is None:
        raise FlowscopeError("a classification evaluation needs y_pred or y_score")
    predicted = None
    if y_pred is not None:
        predicted = checks.labels_vector(y_pred, "y_pred")
        checks.same_length(truth, predicted, "y_pred", "y_true")
    classes = checks.resolve_labels(labels, truth, predicted)
    parts = _key_parts(classes)
    names = class_names_for(classes, class_names)
    shown = [class_display(label, name) for label, name in zip(classes, names, strict=True)]
    binary = len(classes) == 2
    true_codes = checks.encode(truth, classes, "y_true")
    has_scores = y_score is not None
    proba, positive = np.empty((0, 0)), np.empty(0)
    if has_scores:
        proba, positive = checks.probabilities(y_score, len(truth), classes)
    cuts = checks.decision_thresholds(thresholds, binary=binary, has_scores=has_scores)
    if predicted is not None:
        pred_codes = checks.encode(predicted, classes, "y_pred")
    else:
        pred_codes = (positive >= 0.5).astype(int) if binary else np.argmax(proba, axis=1)
        predicted = pd.Index(classes).take(pred_codes).to_numpy()
    from flowscope.tracking import _evaluation_figures as plots

    problem = "binary" if binary else "multiclass"
    metrics = _label_metrics(true_codes, pred_codes, parts)
    skipped: dict[str, str] = {}
    confusion = curves.confusion_table(true_codes, pred_codes, classes)
    confusion["class_names"] = names
    tables: dict[str, Any] = {"metrics.json": {}, "confusion_matrix.json": confusion}
    figures: dict[str, Any] = {
        "confusion_matrix.png": plots.confusion_figure(
            np.asarray(confusion["counts"]), shown, normalized=False
        ),
        "confusion_matrix_normalized.png": plots.confusion_figure(
            np.asarray(confusion["normalized"]), shown, normalized=True
        ),
    }
    if has_scores:
        score_metrics, score_tables, score_figures = _score_metrics(
            true_codes, proba, positive, classes, shown, skipped
        )
        metrics.update(score_metrics)
        tables.update(score_tables)
        figures.update(score_figures)
    rows = []
    for cut in cuts:
        values = _threshold_values(true_codes == 1, positive, cut)
        rows.append({"threshold": cut, **values})
        suffix = format_level(cut)
        metrics.update({f"{name}_at_{suffix}": float(value) for name, value in values.items()})
    if rows:
        tables["thresholds.json"] = {"positive_label": classes[1], "rows": rows}
    tables["metrics.json"] = {
        "problem": problem,
        "labels": classes,
        "class_names": names,
        "positive_label": classes[1] if binary else None,
        "metrics": metrics,
        "skipped": skipped,
    }
    frame = pd.DataFrame({"row": np.arange(len(truth)), "y_true": truth, "y_pred": predicted})
    if has_scores:
        for index, part in enumerate(parts):
            frame[f"proba_{part}"] = proba[:, index]
    return Evaluation(problem, metrics, tables, figures, frame)


def _label_metrics(
    true_codes: np.ndarray, pred_codes: np.ndarray, parts: list[str]
) -> dict[str, float]:
    codes = list(range(len(parts)))
    precision, recall, f1, _ = precision_recall_fscore_support(
        true_codes, pred_codes, labels=codes, average="macro", zero_division=0
    )
    metrics = {
        "accuracy": float(accuracy_score(true_codes, pred_codes)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }
    per_class = precision_recall_fscore_support(
        true_codes, pred_codes, labels=codes, average=None, zero_division=0
    )
    for name, values in zip(("precision", "recall", "f1", "support"), per_class, strict=True):
        for part, value in zip(parts, values, strict=True):
            metrics[f"{name}_{part}"] = float(value)
    return metrics


def _score_metrics(
    true_codes: np.ndarray,
    proba: np.ndarray,
    positive: np.ndarray,
    classes: list[Any],
    shown: list[str],
    skipped: dict[str, str],
) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
    """Log loss, ROC AUC and curves: the metrics, tables and figures that need scores;
    ``shown`` is each class as the figures show it."""
    from flowscope.tracking import _evaluation_figures as plots

    codes = list(range(len(classes)))
    metrics: dict[str, float] = {}
    tables: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    missing = [label for code, label in enumerate(classes) if not np.any(true_codes == code)]
    if missing:
        _skip(skipped, "roc_auc", f"y_true has no rows of class(es) {missing}")
    elif len(classes) == 2:
        metrics["roc_auc"] = float(roc_auc_score(true_codes == 1, positive))
    else:
        metrics["roc_auc"] = float(
            roc_auc_score(true_codes, proba, multi_class="ovr", average="macro", labels=codes)
        )
    metrics["log_loss"] = float(log_loss(true_codes, proba, labels=codes))

    if len(classes) == 2:
        is_positive = true_codes == 1
        if "roc_auc" in metrics:
            roc = curves.roc_table(is_positive, positive)
            tables["roc_curve.json"] = {"positive_label": classes[1], **roc}
            figures["roc_curve.png"] = plots.roc_figure(
                [(shown[1], roc["fpr"], roc["tpr"], roc["auc"])]
            )
        else:
            _skip(skipped, "roc_curve", "y_true holds a single class")
        if is_positive.any():
            pr = curves.pr_table(is_positive, positive)
            metrics["average_precision"] = pr["average_precision"]
            tables["pr_curve.json"] = {"positive_label": classes[1], **pr}
            figures["pr_curve.png"] = plots.pr_figure(pr)
        else:
            _skip(skipped, "pr_curve", f"y_true has no positive ({classes[1]!r}) rows")
    else:
        ovr = curves.ovr_roc_table(true_codes, proba, classes)
        tables["roc_curve_ovr.json"] = ovr
        if ovr["curves"]:
            figures["roc_curve_ovr.png"] = plots.roc_figure(
                [
                    (shown[classes.index(c["label"])], c["fpr"], c["tpr"], c["auc"])
                    for c in ovr["curves"]
                ]
            )
    return metrics, tables, figures


def _threshold_values(
    is_positive: np.ndarray, score: np.ndarray, cut: float
) -> dict[str, float | int]:
    """The numbers behind ``<name>_at_<cut>``, predicting positive where ``score >= cut``."""
    predicted = score >= cut
    tp = int(np.count_nonzero(predicted & is_positive))
    fp = int(np.count_nonzero(predicted & ~is_positive))
    fn = int(np.count_nonzero(~predicted & is_positive))
    tn = len(predicted) - tp - fp - fn
    return {
        "accuracy": float(accuracy_score(is_positive, predicted)),
        "precision": float(precision_score(is_positive, predicted, zero_division=0)),
        "recall": float(recall_score(is_positive, predicted, zero_division=0)),
        "f1": float(f1_score(is_positive, predicted, zero_division=0)),
        "tp": tp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
    }


def _regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, skipped: dict[str, str]
) -> dict[str, float]:
    metrics = {
        "rmse": float(root_mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
    }
    if len(y_true) >= 2:
        metrics["r2"] = float(r2_score(y_true, y_pred))
    else:
        _skip(skipped, "r2", "needs at least two rows")
    if np.all(y_true != 0):
        metrics["mape"] = float(mean_absolute_percentage_error(y_true, y_pred))
    else:
        # Skipped quietly: zero targets are common and MAPE is an optional extra.
        skipped["mape"] = "y_true contains zeros"
    return metrics


def evaluate_regression(y_true: Any, y_pred: Any) -> Evaluation:
    """Evaluate point predictions of a numeric target: ``rmse``, ``mae``, ``r2`` and, when no
    target is zero, ``mape`` (a fraction, as scikit-learn gives it). The predictions frame
    holds ``row``, ``y_true``, ``y_pred`` and ``residual`` (true minus predicted); the figure
    ``residuals.png`` plots predicted against true and the residuals."""
    truth = checks.numbers(y_true, "y_true")
    predicted = checks.numbers(y_pred, "y_pred")
    checks.same_length(truth, predicted, "y_pred", "y_true")
    from flowscope.tracking import _evaluation_figures as plots

    skipped: dict[str, str] = {}
    metrics = _regression_metrics(truth, predicted, skipped)
    frame = pd.DataFrame(
        {
            "row": np.arange(len(truth)),
            "y_true": truth,
            "y_pred": predicted,
            "residual": truth - predicted,
        }
    )
    tables = {"metrics.json": {"problem": "regression", "metrics": metrics, "skipped": skipped}}
    figures = {"residuals.png": plots.residuals_figure(truth, predicted)}
    return Evaluation("regression", metrics, tables, figures, frame)


def evaluate_quantiles(
    y_true: Any,
    quantiles: Mapping[float, Any],
    intervals: Any = None,
) -> Evaluation:
    """Evaluate quantile predictions (``{level: predictions}``, levels in (0, 1)):
    ``pinball_<q>`` per level (scikit-learn's mean_pinball_loss with alpha=q), and per
    interval ``(lo, hi)`` (default: every symmetric pair such as (0.1, 0.9)) the share of
    y_true inside ``[pred_lo, pred_hi]`` as ``coverage_<lo>_<hi>`` and the mean width as
    ``interval_width_<lo>_<hi>``; with a 0.5 level, the regression metrics of the median.

    >>> evaluate_quantiles(y_test, {0.1: lo, 0.5: mid, 0.9: hi}).metrics["coverage_0.1_0.9"]
    ... # doctest: +SKIP
    """
    truth = checks.numbers(y_true, "y_true")
    if not quantiles:
        raise FlowscopeError("a quantile evaluation needs predictions for at least one level")
    predictions: dict[float, np.ndarray] = {}
    for key, values in quantiles.items():
        level = checks.quantile_level(key)
        if level in predictions:
            raise FlowscopeError(f"quantile level {level:g} is given twice")
        name = f"the predictions for quantile {format_level(level)}"
        predictions[level] = checks.numbers(values, name)
        checks.same_length(truth, predictions[level], name, "y_true")
    levels = sorted(predictions)
    pairs = checks.quantile_intervals(intervals, levels)
    from flowscope.tracking import _evaluation_figures as plots

    skipped: dict[str, str] = {}
    metrics: dict[str, float] = {}
    rows = []
    for level in levels:
        loss = float(mean_pinball_loss(truth, predictions[level], alpha=level))
        metrics[f"pinball_{format_level(level)}"] = loss
        # The share of targets at or below the prediction should be close to the level.
        share_below = float(np.mean(truth <= predictions[level]))
        rows.append({"level": level, "pinball": loss, "share_below": share_below})
    figures: dict[str, Any] = {}
    for lo, hi in pairs:
        lower, upper = predictions[lo], predictions[hi]
        name = f"{format_level(lo)}_{format_level(hi)}"
        metrics[f"coverage_{name}"] = float(np.mean((truth >= lower) & (truth <= upper)))
        metrics[f"interval_width_{name}"] = float(np.mean(upper - lower))
    if pairs:
        # The first pair is the widest by default; one figure keeps the artifact list short.
        lo, hi = pairs[0]
        figures["interval.png"] = plots.interval_figure(
            truth, predictions[lo], predictions[hi], f"[{lo:g}, {hi:g}]"
        )
    if 0.5 in predictions:
        metrics.update(_regression_metrics(truth, predictions[0.5], skipped))
    frame = pd.DataFrame({"row": np.arange(len(truth)), "y_true": truth})
    for level in levels:
        frame[f"q_{format_level(level)}"] = predictions[level]
    tables = {
        "metrics.json": {
            "problem": "quantile",
            "levels": levels,
            "intervals": [list(pair) for pair in pairs],
            "metrics": metrics,
            "skipped": skipped,
        },
        "quantiles.json": {"rows": rows},
    }
    return Evaluation("quantile", metrics, tables, figures, frame)
