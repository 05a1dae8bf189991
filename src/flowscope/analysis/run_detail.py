"""Everything the run page shows about one run, and safe access to its artifacts."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from flowscope.artifacts import artifact_store_reached
from flowscope.errors import FlowscopeError, NotFoundError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from flowscope.config import Settings

_EVALUATION_TABLES = ("metrics", "confusion_matrix", "thresholds", "roc_curve", "pr_curve")
_MAX_HISTORIES = 40
_MAX_ARTIFACTS = 500
_SYSTEM_TAG_PREFIX = "mlflow."


def get_run(client: MlflowClient, run_id: str) -> Any:
    """The MLflow run, or :class:`NotFoundError` for an id the store does not know."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise NotFoundError(f"no run with id {run_id!r}") from None
        raise


def run_detail(
    settings: Settings, run_id: str, explain: dict[str, str] | None = None
) -> dict[str, Any]:
    """Params, latest metrics, metric histories, tags, the evaluation tables, the dataset
    profile, the explanation (``explain`` chooses its class, feature and row; see
    :func:`flowscope.explain.view.explain_view`) and the artifact listing of one run."""
    from flowscope.explain.view import explain_view
    from flowscope.mlflow_client import client_for
    from flowscope.tracking.kinds import run_kind

    client = client_for(settings)
    run = get_run(client, run_id)
    info = run.info
    experiment = client.get_experiment(info.experiment_id)
    tags = run.data.tags
    duration = (info.end_time - info.start_time) / 1000 if info.end_time else None
    artifacts = _list_artifacts(client, run_id)
    files = {item["path"] for item in artifacts}
    data: dict[str, Any] = {
        "run": {
            "run_id": run_id,
            "run_name": info.run_name,
            "experiment_id": info.experiment_id,
            "experiment_name": experiment.name,
            "status": info.status,
            "kind": run_kind(run.data.tags),
            "start_time": info.start_time,
            "end_time": info.end_time,
            "duration_s": duration,
            "user_id": info.user_id,
            "artifact_uri": info.artifact_uri,
            "parent_run_id": tags.get("mlflow.parentRunId"),
            "description": tags.get("mlflow.note.content"),
        },
        "params": dict(sorted(run.data.params.items())),
        "metrics": dict(sorted(run.data.metrics.items())),
        "tags": {k: v for k, v in sorted(tags.items()) if not k.startswith(_SYSTEM_TAG_PREFIX)},
        "system_tags": {k: v for k, v in sorted(tags.items()) if k.startswith(_SYSTEM_TAG_PREFIX)},
        "histories": _histories(client, run_id, sorted(run.data.metrics)),
        "evaluation": _evaluation(client, run_id, files, run.data.metrics),
        "profile": _json_artifact(client, run_id, "dataset/profile.json", files),
        "fairness": _json_artifact(client, run_id, "fairness/by_group.json", files),
        "explain": explain_view(client, run_id, files, explain),
        "artifacts": artifacts,
        "mlflow_url": _mlflow_url(settings, info.experiment_id, run_id),
    }
    return data


def _histories(client: MlflowClient, run_id: str, keys: list[str]) -> dict[str, list[list[float]]]:
    """``{metric: [[step, value], ...]}`` for the metrics logged at more than one step."""
    histories: dict[str, list[list[float]]] = {}
    for key in keys[: _MAX_HISTORIES * 4]:
        points = client.get_metric_history(run_id, key)
        if len(points) > 1:
            ordered = sorted(points, key=lambda point: (point.step, point.timestamp))
            histories[key] = [[point.step, point.value] for point in ordered]
            if len(histories) >= _MAX_HISTORIES:
                break
    return histories


def _evaluation(
    client: MlflowClient, run_id: str, files: set[str], metrics: dict[str, float]
) -> dict[str, Any] | None:
    tables = {
        name: _json_artifact(client, run_id, f"evaluation/{name}.json", files)
        for name in _EVALUATION_TABLES
    }
    if not any(tables.values()):
        return None
    confusion = tables.get("confusion_matrix")
    per_class = []
    if confusion:
        from flowscope.tracking.evaluation import metric_key_part, table_class_names

        names = table_class_names(confusion)
        for label, class_name in zip(confusion["labels"], names, strict=True):
            part = metric_key_part(label)
            per_class.append(
                {
                    "label": label,
                    "name": class_name,
                    **{
                        name: metrics.get(f"{name}_{part}")
                        for name in ("precision", "recall", "f1", "support")
                    },
                }
            )
    return {**tables, "per_class": per_class}


def _json_artifact(client: MlflowClient, run_id: str, path: str, files: set[str]) -> Any | None:
    from flowscope.artifacts import read_json_artifact

    # the listing is already at hand: absent files cost no download attempt
    return read_json_artifact(client, run_id, path) if path in files else None


def _list_artifacts(client: MlflowClient, run_id: str) -> list[dict[str, Any]]:
    """Every artifact file of the run (breadth first, at most ``_MAX_ARTIFACTS``)."""
    found: list[dict[str, Any]] = []
    folders: list[str | None] = [None]
    with artifact_store_reached(f"the artifacts of run {run_id}"):
        while folders and len(found) < _MAX_ARTIFACTS:
            folder = folders.pop(0)
            for item in client.list_artifacts(run_id, folder):
                if item.is_dir:
                    folders.append(item.path)
                else:
                    found.append({"path": item.path, "size": item.file_size})
    return found[:_MAX_ARTIFACTS]


def _mlflow_url(settings: Settings, experiment_id: str, run_id: str) -> str | None:
    base = settings.mlflow_ui_url
    if not base:
        return None
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def check_artifact_path(path: str) -> str:
    """``path`` if it names a place inside a run's artifacts; a :class:`FlowscopeError`
    (400) for ``..``, absolute, backslashed or percent-encoded paths."""
    if not path or "\x00" in path:
        raise FlowscopeError("an artifact path is required")
    if path != unquote(path) or "\\" in path:
        raise FlowscopeError(f"artifact path {path!r} is encoded; give it plainly")
    posix = PurePosixPath(path)
    if posix.is_absolute() or ".." in posix.parts or path.startswith("~"):
        raise FlowscopeError(f"artifact path {path!r} leaves the run's artifacts")
    return str(posix)


def artifact_file(settings: Settings, run_id: str, path: str, folder: Path) -> Path:
    """Download one artifact file of the run into ``folder`` and return its local path.

    The path is checked against the run's own artifact listing, so only files the run
    logged can be fetched.
    """
    from flowscope.mlflow_client import client_for

    checked = check_artifact_path(path)
    client = client_for(settings)
    get_run(client, run_id)
    parent = str(PurePosixPath(checked).parent)
    with artifact_store_reached(f"{checked!r} of run {run_id}"):
        listing = client.list_artifacts(run_id, None if parent == "." else parent)
        if not any(item.path == checked and not item.is_dir for item in listing):
            raise NotFoundError(f"run {run_id} has no artifact file {checked!r}")
        return Path(client.download_artifacts(run_id, checked, str(folder)))
