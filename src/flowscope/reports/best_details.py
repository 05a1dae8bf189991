"""What the comparison report reads for its best run alone: the evaluation tables training
logged under ``evaluation/``, its registered versions, whether it has a model to register.

Per-class precision, recall and F1 are the run's metrics (``precision_<label>``...); the
labels, their names and the positive class come from ``evaluation/metrics.json``, the
counts from ``evaluation/confusion_matrix.json`` (true classes down, predicted across).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from flowscope.analysis.artifacts import confusion_matrix_of
from flowscope.artifacts import read_json_artifact
from flowscope.mlflow_client import client_for
from flowscope.registry.tags import LIFECYCLE_TAG
from flowscope.tracking.evaluation import class_display, metric_key_part, table_class_names

if TYPE_CHECKING:
    from flowscope.config import Settings

__all__ = ["evaluation_details", "model_links"]

_PER_CLASS = ("precision", "recall", "f1", "support")


def evaluation_details(settings: Settings, row: Mapping[str, Any]) -> dict[str, Any]:
    """``problem``, ``per_class`` rows (label, name, precision, recall, f1, support, the
    macro averages last) and ``confusion`` (labels, names, counts and, for a binary
    task, ``binary``: positive label, TP, TN, FP, FN) of the run ``row``; None for what
    it did not log."""
    run_id = str(row["run_id"])
    client = client_for(settings)
    table = read_json_artifact(client, run_id, "evaluation/metrics.json")
    table = table if isinstance(table, dict) else {}
    confusion = confusion_matrix_of(settings, run_id)
    labels = list(table.get("labels") or (confusion or {}).get("labels") or [])
    per_class = None
    if labels:
        names = table_class_names({"labels": labels, "class_names": table.get("class_names")})
        per_class = [
            {
                "label": label,
                "name": name,
                **{
                    metric: row.get(f"metrics.{metric}_{metric_key_part(label)}")
                    for metric in _PER_CLASS
                },
            }
            for label, name in zip(labels, names, strict=True)
        ]
        per_class.append(
            {
                "label": None,
                "name": "macro average",
                **{metric: row.get(f"metrics.{metric}") for metric in _PER_CLASS[:3]},
                "support": None,
            }
        )
    return {
        "problem": table.get("problem"),
        "per_class": per_class,
        "confusion": _confusion(confusion, table.get("positive_label")),
    }


def _confusion(confusion: dict[str, Any] | None, positive: Any) -> dict[str, Any] | None:
    if confusion is None:
        return None
    labels = list(confusion["labels"])
    counts = [[int(count) for count in row] for row in confusion["counts"]]
    names = table_class_names(confusion)
    result: dict[str, Any] = {"labels": labels, "class_names": names, "counts": counts}
    if len(labels) == 2:
        index = labels.index(positive) if positive in labels else 1
        other = 1 - index
        result["binary"] = {
            "positive_label": labels[index],
            "positive_name": class_display(labels[index], names[index]),
            "tp": counts[index][index],
            "tn": counts[other][other],
            "fp": counts[other][index],
            "fn": counts[index][other],
        }
    return result


def model_links(settings: Settings, run_id: str) -> dict[str, Any]:
    """``registered``: every model version made from the run (name, version, lifecycle
    state, aliases, ``models:/`` URI and dashboard path), and ``has_model``: whether the
    run logged a ``model/`` to register."""
    from mlflow.exceptions import MlflowException

    client = client_for(settings)
    registered = []
    versions: list[Any]
    try:
        versions = list(client.search_model_versions(f"run_id = '{run_id}'"))
    except MlflowException:
        versions = []
    for version in sorted(versions, key=lambda v: (v.name, int(v.version))):
        registered.append(
            {
                "name": version.name,
                "version": int(version.version),
                "state": (version.tags or {}).get(LIFECYCLE_TAG),
                "aliases": sorted(getattr(version, "aliases", None) or []),
                "uri": f"models:/{version.name}/{version.version}",
                "page": f"/models/{quote(version.name, safe='')}",
            }
        )
    try:
        has_model = any(item.path == "model" for item in client.list_artifacts(run_id))
    except (MlflowException, OSError):
        has_model = False
    return {"registered": registered, "has_model": has_model}
