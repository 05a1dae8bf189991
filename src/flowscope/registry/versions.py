"""Registered models and their versions, with the metrics of the runs that made them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.mlflow_client import client_for
from flowscope.registry.history import decision_history
from flowscope.registry.tags import LIFECYCLE_TAG, LOCK_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from flowscope.config import Settings

_HEADLINE = ("accuracy", "f1", "roc_auc", "precision_1", "recall_1", "r2", "rmse", "pinball_0.5")


def models_overview(
    settings: Settings, visible: Callable[[str], bool] | None = None
) -> dict[str, Any]:
    """Every registered model (``visible`` says which the user may read): its versions
    count, aliases and last update."""
    client = client_for(settings)
    models = []
    for model in client.search_registered_models(max_results=1000):
        if (model.tags or {}).get(LOCK_TAG):
            continue  # a promotion's lock (registry/lock.py), not a model
        if visible is not None and not visible(model.name):
            continue
        versions = client.search_model_versions(f"name = '{_quote(model.name)}'")
        models.append(
            {
                "name": model.name,
                "description": model.description,
                "versions": len(versions),
                "latest_version": max((int(v.version) for v in versions), default=None),
                "aliases": dict(sorted(model.aliases.items())) if model.aliases else {},
                "tags": dict(model.tags or {}),
                "last_updated": model.last_updated_timestamp,
            }
        )
    return {"models": sorted(models, key=lambda m: m["name"])}


def model_detail(settings: Settings, name: str) -> dict[str, Any]:
    """One model's versions, newest first, each with aliases, tags, lifecycle state and
    the headline metrics of its source run."""
    from mlflow.exceptions import MlflowException

    client = client_for(settings)
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        raise NotFoundError(f"no registered model named {name!r}") from None
    aliases_by_version: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases_by_version.setdefault(str(version), []).append(alias)
    versions: list[dict[str, Any]] = []
    metric_names: set[str] = set()
    for version in client.search_model_versions(f"name = '{_quote(name)}'"):
        metrics = _run_metrics(client, version.run_id)
        metric_names.update(metrics)
        versions.append(
            {
                "version": int(version.version),
                "status": version.status,
                "run_id": version.run_id,
                "source": version.source,
                "description": version.description,
                "created": version.creation_timestamp,
                "aliases": sorted(aliases_by_version.get(str(version.version), [])),
                "tags": dict(version.tags or {}),
                "lifecycle": (version.tags or {}).get(LIFECYCLE_TAG),
                "metrics": metrics,
            }
        )
    versions.sort(key=lambda v: -v["version"])
    shown = [m for m in _HEADLINE if m in metric_names] or sorted(metric_names)[:6]
    return {
        "model": {
            "name": model.name,
            "description": model.description,
            "aliases": dict(model.aliases or {}),
            "tags": dict(model.tags or {}),
        },
        "versions": versions,
        "metric_columns": shown,
        "lifecycle": _alias_history(settings, name),
    }


def version_choices(settings: Settings, name: str) -> dict[str, Any]:
    """What a user can pick of one model: its ``versions`` (newest first), its
    ``aliases`` (alias -> version) and ``default``, the reference to start from: the
    ``champion`` alias, else the first alias, else the newest version (``"@alias"`` or
    ``"3"``, as the prediction URLs write them)."""
    from mlflow.exceptions import MlflowException

    client = client_for(settings)
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        raise NotFoundError(f"no registered model named {name!r}") from None
    versions = sorted(
        (int(v.version) for v in client.search_model_versions(f"name = '{_quote(name)}'")),
        reverse=True,
    )
    aliases = {alias: str(version) for alias, version in sorted((model.aliases or {}).items())}
    if "champion" in aliases:
        default = "@champion"
    elif aliases:
        default = f"@{next(iter(aliases))}"
    else:
        default = str(versions[0]) if versions else ""
    return {"name": model.name, "versions": versions, "aliases": aliases, "default": default}


def _alias_history(settings: Settings, name: str) -> dict[str, Any]:
    """Which version held each lifecycle alias when, from the recorded promotions."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(decision_history(settings, name)["aliases"])
    except MlflowException:  # a store that cannot search runs still shows its versions
        return {}


def compare_versions(settings: Settings, name: str, numbers: list[str]) -> dict[str, Any]:
    """Versions of one model side by side through their source runs."""
    from flowscope.analysis import run_row
    from flowscope.analysis.compare import compare_runs

    detail = model_detail(settings, name)
    by_number = {str(v["version"]): v for v in detail["versions"]}
    unknown = [number for number in numbers if number not in by_number]
    if unknown:
        raise NotFoundError(f"model {name!r} has no version {', '.join(unknown)}")
    if len(numbers) < 2:
        raise FlowscopeError("choose at least two versions to compare")
    client = client_for(settings)
    rows = []
    for number in numbers:
        version = by_number[number]
        row = run_row(client.get_run(version["run_id"])) if version["run_id"] else {}
        rows.append({**row, "run_id": version["run_id"] or number, "run_name": f"v{number}"})
    return {"model": detail["model"], "versions": numbers, **compare_runs(rows)}


def _run_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    if not run_id:
        return {}
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_run(run_id).data.metrics)
    except MlflowException:  # the source run was deleted; the version still stands
        return {}


def _quote(name: str) -> str:
    return name.replace("'", "\\'")
