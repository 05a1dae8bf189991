"""Reading runs back from MLflow as flat rows: what the CLI lists and the best run ranks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError, NotFoundError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run as MlflowRun

    from flowscope.config import Settings

KIND_TAG = "flowscope.kind"
DEFAULT_KIND = "training"  # plain MLflow runs, without the tag, count as training


def client_for(settings: Settings) -> MlflowClient:
    """MLflow's client on ``settings``' store, opened the one way that creates a new store
    whole (:func:`flowscope.tracking.opening.mlflow_client`)."""
    from flowscope.tracking.opening import mlflow_client

    return mlflow_client(settings)


def search_runs(
    settings: Settings,
    task: str,
    *,
    kind: str | None = None,
    where: str | None = None,
    order_by: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[MlflowRun]:
    """The runs of ``task``'s experiment (``<task>-inference`` for inference runs), filtered
    with MLflow's search syntax; a bad filter is a :class:`FlowscopeError` with MLflow's
    message."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.entities.paged_list import PagedList

    client = client_for(settings)
    name = settings.experiment_name(task, kind or "training")
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise NotFoundError(f"no experiment named {name!r} in {settings.tracking_uri}")
    runs: list[MlflowRun] = []
    token = None
    try:
        while True:
            page: PagedList[MlflowRun] = client.search_runs(
                [experiment.experiment_id],
                filter_string=where or "",
                order_by=list(order_by or ["attributes.start_time DESC"]),
                max_results=min(limit or 10_000, 10_000),
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token or (limit is not None and len(runs) >= limit):
                break
    except MlflowException as exc:
        raise FlowscopeError(f"bad filter or sort: {exc.message}") from None
    if kind is not None:
        runs = [run for run in runs if run_kind(run) == kind]
    return runs[:limit] if limit is not None else runs


def run_kind(run: MlflowRun) -> str:
    return str(run.data.tags.get(KIND_TAG, DEFAULT_KIND))


def run_row(run: MlflowRun) -> dict[str, Any]:
    """One run as a flat dict: attributes, then ``params.*`` and ``metrics.*`` columns."""
    info = run.info
    row: dict[str, Any] = {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "kind": run_kind(run),
        "status": info.status,
        "start_time": info.start_time,
        "end_time": info.end_time,
    }
    for key in sorted(run.data.params):
        row[f"params.{key}"] = run.data.params[key]
    for key in sorted(run.data.metrics):
        row[f"metrics.{key}"] = run.data.metrics[key]
    return row


def run_rows(runs: Sequence[MlflowRun]) -> list[dict[str, Any]]:
    return [run_row(run) for run in runs]
