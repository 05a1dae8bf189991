"""Fairness by group with fairlearn: per-group metrics and the gaps between groups."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from flowscope._imports import try_import
from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    from flowscope.explain.records import RecordSink

FAIRNESS_ARTIFACT = "fairness/by_group.json"
# More groups than this means the column is continuous, or an identifier: bin it first.
MAX_GROUPS = 50


@dataclass
class FairnessReport:
    """Per-group accuracy, precision, recall and selection rate, and the run metrics
    (``fairness_demographic_parity_difference``, ``fairness_equalized_odds_difference`` ...)."""

    sensitive: str
    problem: str
    positive_label: str | None
    by_group: list[dict[str, Any]]
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)

    def table(self) -> dict[str, Any]:
        """What ``fairness/by_group.json`` holds."""
        return {
            "sensitive_feature": self.sensitive,
            "problem": self.problem,
            "positive_label": self.positive_label,
            "by_group": self.by_group,
            "metrics": self.metrics,
            "per_class": self.per_class,
        }


def check_sensitive(features: Any, sensitive: str, target: str, problem: str) -> None:
    """Refuse, before a training run starts, a sensitive column fairness cannot use."""
    if sensitive == target:
        raise FlowscopeError(f"the sensitive column {sensitive!r} is the target")
    if sensitive not in features.columns:
        raise FlowscopeError(
            f"there is no column {sensitive!r} to compare groups by; columns: "
            + ", ".join(str(column) for column in features.columns)
        )
    if problem not in ("binary", "multiclass"):
        raise FlowscopeError(
            f"fairness by group compares classifications; the target {target!r} is {problem}"
        )
    groups = features[sensitive].astype(str).nunique()
    if groups > MAX_GROUPS:
        raise FlowscopeError(
            f"the sensitive column {sensitive!r} has {groups} groups; at most {MAX_GROUPS} "
            "make sense (bin a numeric column first)"
        )


def fairness_report(
    y_true: Any, y_pred: Any, sensitive_features: Any, *, pos_label: Any = None
) -> FairnessReport:
    """Compare a classifier's predictions across the groups of ``sensitive_features``.

    Binary: precision, recall and selection rate are of ``pos_label`` (default: the
    larger of the two labels, as scikit-learn's 1 of 0/1); demographic parity and
    equalized odds differences are fairlearn's. Multiclass: precision and recall are
    macro averages, and the two differences are the largest over classes taken one
    against the rest (each class's own is in ``per_class``).
    """
    import pandas as pd

    metrics_module = try_import("fairlearn.metrics", "explain")
    from sklearn.metrics import accuracy_score, precision_score, recall_score

    truth = pd.Series(np.asarray(y_true)).reset_index(drop=True)
    predicted = pd.Series(np.asarray(y_pred)).reset_index(drop=True)
    name = str(getattr(sensitive_features, "name", None) or "sensitive")
    groups = pd.Series(np.asarray(sensitive_features).astype(str), name=name)
    if not len(truth) == len(predicted) == len(groups):
        raise FlowscopeError(
            f"y_true, y_pred and the sensitive feature have {len(truth)}, {len(predicted)} "
            f"and {len(groups)} rows; they must have the same"
        )
    if len(truth) == 0:
        raise FlowscopeError("there are no predictions to compare across groups")
    if groups.nunique() > MAX_GROUPS:
        raise FlowscopeError(
            f"the sensitive feature {name!r} has {groups.nunique()} groups; at most "
            f"{MAX_GROUPS} make sense (bin a numeric column first)"
        )
    labels = _sorted_labels(set(truth) | set(predicted))
    if len(labels) > 2:
        return _multiclass(metrics_module, truth, predicted, groups, labels, name)
    positive = pos_label if pos_label is not None else labels[-1]
    true01 = (truth == positive).astype(int)
    pred01 = (predicted == positive).astype(int)
    score = functools.partial(precision_score, zero_division=0)
    frame = metrics_module.MetricFrame(
        metrics={
            "accuracy": accuracy_score,
            "precision": score,
            "recall": functools.partial(recall_score, zero_division=0),
            "selection_rate": metrics_module.selection_rate,
            "count": metrics_module.count,
        },
        y_true=true01,
        y_pred=pred01,
        sensitive_features=groups,
    )
    values = {
        "fairness_demographic_parity_difference": metrics_module.demographic_parity_difference(
            true01, pred01, sensitive_features=groups
        ),
        "fairness_demographic_parity_ratio": metrics_module.demographic_parity_ratio(
            true01, pred01, sensitive_features=groups
        ),
        "fairness_equalized_odds_difference": metrics_module.equalized_odds_difference(
            true01, pred01, sensitive_features=groups
        ),
        "fairness_accuracy_difference": frame.difference()["accuracy"],
    }
    return FairnessReport(
        sensitive=name,
        problem="binary",
        positive_label=str(positive),
        by_group=_rows(frame, name),
        metrics={key: float(value) for key, value in values.items()},
    )


def _multiclass(
    metrics_module: Any, truth: Any, predicted: Any, groups: Any, labels: list[Any], name: str
) -> FairnessReport:
    from sklearn.metrics import accuracy_score, precision_score, recall_score

    frame = metrics_module.MetricFrame(
        metrics={
            "accuracy": accuracy_score,
            "precision": functools.partial(precision_score, average="macro", zero_division=0),
            "recall": functools.partial(recall_score, average="macro", zero_division=0),
            "count": metrics_module.count,
        },
        y_true=truth.astype(str),
        y_pred=predicted.astype(str),
        sensitive_features=groups,
    )
    per_class: dict[str, dict[str, float]] = {}
    for label in labels:
        true01 = (truth == label).astype(int)
        pred01 = (predicted == label).astype(int)
        per_class[str(label)] = {
            "demographic_parity_difference": float(
                metrics_module.demographic_parity_difference(
                    true01, pred01, sensitive_features=groups
                )
            ),
            "equalized_odds_difference": float(
                metrics_module.equalized_odds_difference(true01, pred01, sensitive_features=groups)
            ),
        }
    metrics = {
        "fairness_demographic_parity_difference": max(
            values["demographic_parity_difference"] for values in per_class.values()
        ),
        "fairness_equalized_odds_difference": max(
            values["equalized_odds_difference"] for values in per_class.values()
        ),
        "fairness_accuracy_difference": float(frame.difference()["accuracy"]),
    }
    return FairnessReport(
        sensitive=name,
        problem="multiclass",
        positive_label=None,
        by_group=_rows(frame, name),
        metrics=metrics,
        per_class=per_class,
    )


def _sorted_labels(labels: set[Any]) -> list[Any]:
    try:
        return sorted(labels)
    except TypeError:  # labels of mixed types
        return sorted(labels, key=str)


def _rows(frame: Any, name: str) -> list[dict[str, Any]]:
    rows = []
    for group, values in frame.by_group.iterrows():
        row: dict[str, Any] = {name: str(group)}
        for metric, value in values.items():
            row[str(metric)] = int(value) if metric == "count" else _number(value)
        rows.append(row)
    return rows


def _number(value: Any) -> float | None:
    number = float(value)
    return None if np.isnan(number) else number


def log_fairness(
    sink: RecordSink, y_true: Any, y_pred: Any, sensitive_features: Any, *, pos_label: Any = None
) -> FairnessReport:
    """Compute the :func:`fairness_report` and log its metrics and ``fairness/by_group.json``;
    a metric fairlearn cannot compute (a group without positives) is left out."""
    report = fairness_report(y_true, y_pred, sensitive_features, pos_label=pos_label)
    sink.log_metrics({key: value for key, value in report.metrics.items() if np.isfinite(value)})
    sink.log_dict(report.table(), FAIRNESS_ARTIFACT)
    return report
