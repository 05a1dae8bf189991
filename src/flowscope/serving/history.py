"""A model's inference runs read back as windows: the data of the dashboard's inference page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowscope.errors import NotFoundError
from flowscope.serving.inference_run import CLASS_NAMES_TAG, MODEL_TAG

if TYPE_CHECKING:
    from mlflow.entities import Run as MlflowRun

    from flowscope.config import Settings

_HEADLINE = (
    "samples",
    "requests",
    "errors",
    "avg_confidence",
    "min_confidence",
    "max_confidence",
    "unique_classes",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "drift_max_psi",
    "drift_detected",
    "prediction_mean",
)


def inference_history(settings: Settings, name: str, limit: int = 200) -> dict[str, Any]:
    """The latest ``limit`` inference runs of registered model ``name``, oldest first, as
    windows with their counts, confidence, class distribution, latency and per-feature
    drift; plus the classes and features seen, and totals.

    Runs are found in the ``<task>-inference`` experiments of the tasks the model's versions
    were trained for, by the ``flowscope.model_name`` tag the monitor sets.
    """
    from mlflow.exceptions import MlflowException

    from flowscope.mlflow_client import client_for

    client = client_for(settings)
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        raise NotFoundError(f"no registered model named {name!r}") from None
    quoted = name.replace("'", "\\'")
    versions = client.search_model_versions(f"name = '{quoted}'")
    experiment_ids = []
    for task in sorted({_task(settings, client, v.run_id) for v in versions if v.run_id}):
        experiment = client.get_experiment_by_name(settings.experiment_name(task, "inference"))
        if experiment is not None:
            experiment_ids.append(experiment.experiment_id)
    runs: list[MlflowRun] = []
    if experiment_ids:
        runs = list(
            client.search_runs(
                experiment_ids,
                filter_string=f"tags.`{MODEL_TAG}` = '{quoted}'",
                order_by=["attributes.start_time DESC"],
                max_results=limit,
            )
        )
    windows = sorted((_window(run) for run in runs), key=lambda w: (w["start"] or "", w["run_id"]))
    classes = sorted({label for w in windows for label in w["classes"]})
    class_names = {key: name for w in windows for key, name in w["class_names"].items()}
    features = sorted({feature for w in windows for feature in w["drift"]})
    return {
        "model": {
            "name": model.name,
            "aliases": dict(model.aliases or {}),
            "versions": sorted((str(v.version) for v in versions), key=int),
        },
        "windows": windows,
        "classes": classes,
        "class_names": class_names,
        "features": features,
        "drift_threshold": settings.drift_threshold,
        "totals": {
            "runs": len(windows),
            "samples": int(sum(w["metrics"].get("samples", 0) for w in windows)),
            "errors": int(sum(w["metrics"].get("errors", 0) for w in windows)),
            "drifted_windows": sum(1 for w in windows if w["metrics"].get("drift_detected")),
        },
    }


def _task(settings: Settings, client: Any, run_id: str) -> str:
    from flowscope.serving.model import training_task

    try:
        return training_task(settings, client, run_id, "")
    except Exception:  # a source run deleted since: its versions have no inference runs
        return ""


def _window(run: MlflowRun) -> dict[str, Any]:
    metrics = run.data.metrics
    params = run.data.params
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "version": params.get("model_version"),
        "type": params.get("prediction_type"),
        "input_file": params.get("input_file"),
        "start": params.get("window_start"),
        "end": params.get("window_end"),
        "metrics": {key: metrics[key] for key in _HEADLINE if key in metrics},
        "classes": {k[len("count_") :]: v for k, v in metrics.items() if k.startswith("count_")},
        "class_names": _class_names(run.data.tags.get(CLASS_NAMES_TAG)),
        "percentages": {
            k[len("percentage_") :]: v for k, v in metrics.items() if k.startswith("percentage_")
        },
        "drift": {
            k[len("drift_psi_") :]: v for k, v in metrics.items() if k.startswith("drift_psi_")
        },
    }


def _class_names(tag: str | None) -> dict[str, str]:
    """The names the monitor tagged a run with, by class key; none from an odd tag."""
    import json

    try:
        names = json.loads(tag) if tag else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}
