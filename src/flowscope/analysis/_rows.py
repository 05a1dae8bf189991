"""Rows, checks and summaries shared by the SQL and the client run stores."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowscope.analysis.best import check_direction
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.tracking.kinds import KINDS, run_kind

if TYPE_CHECKING:
    from mlflow.entities import Run as MlflowRun

MAX_PAGE_SIZE = 50_000  # MLflow's own ceiling on max_results
PARENT_RUN_TAG = "mlflow.parentRunId"


@dataclass
class RunPage:
    """One page of runs and how many runs match in all."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    page_size: int
    order_by: list[str] = field(default_factory=list)


def make_row(
    *,
    run_id: str,
    run_name: str | None,
    experiment_id: str,
    user_id: str | None,
    status: str,
    start_time: int | None,
    end_time: int | None,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    tags: Mapping[str, str | None],
) -> dict[str, Any]:
    """One run as a flat dict, the same from either store."""
    row: dict[str, Any] = {
        "run_id": run_id,
        "run_name": run_name,
        "experiment_id": experiment_id,
        "user_id": user_id,
        "kind": run_kind(tags),
        "status": status,
        "start_time": start_time,
        "end_time": end_time,
    }
    for key in sorted(params):
        row[f"params.{key}"] = params[key]
    for key in sorted(metrics):
        row[f"metrics.{key}"] = metrics[key]
    for key in sorted(tags):
        if shown_tag(key):
            row[f"tags.{key}"] = tags[key]
    return row


def run_row(run: MlflowRun) -> dict[str, Any]:
    """A run from ``MlflowClient`` as a row: the same row either run store gives for it.

    >>> run_row(MlflowClient().get_run(run_id))["metrics.accuracy"]  # doctest: +SKIP
    """
    info = run.info
    return make_row(
        run_id=info.run_id,
        run_name=info.run_name,
        experiment_id=str(info.experiment_id),
        user_id=info.user_id,
        status=info.status,
        start_time=info.start_time,
        end_time=info.end_time,
        params=run.data.params,
        metrics=run.data.metrics,
        tags=run.data.tags,
    )


def shown_tag(key: str) -> bool:
    return not key.startswith("mlflow.") or key == PARENT_RUN_TAG


def check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise FlowscopeError(f"unknown run kind {kind!r}; choose one of {', '.join(KINDS)}")


def check_count_by(by: Sequence[str]) -> None:
    """Runs are counted by their ``status`` and by tags (``tags.<key>``), nothing else."""
    if not by:
        raise FlowscopeError("count_by needs at least one column")
    for item in by:
        if item != "status" and not (item.startswith("tags.") and len(item) > len("tags.")):
            raise FlowscopeError(f"cannot count runs by {item!r}; use status or tags.<key>")


def check_page(page: int, page_size: int) -> None:
    if page < 1:
        raise FlowscopeError(f"page must be 1 or more, not {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise FlowscopeError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")


def metric_summary(metric: str, direction: str | None, values: Sequence[float]) -> dict[str, Any]:
    """Count, mean, min, max and best of a metric's values, NaN left out as pandas does;
    a name no metric can have (MLflow's key rule) is a 400 naming it."""
    check_metric_name(metric)
    direction = check_direction(metric, direction)
    present = [value for value in values if not math.isnan(value)]
    low = min(present) if present else None
    high = max(present) if present else None
    return {
        "name": metric,
        "count": len(present),
        "mean": mean(present) if present else None,
        "min": low,
        "max": high,
        "best": high if direction == "max" else low,
        "direction": direction,
    }


def check_metric_name(metric: str) -> None:
    """A metric name as MLflow's key rule allows one (letters, digits and ``_-. /:``):
    anything else, such as SQL, names no metric and is refused rather than counted as
    one that no run has."""
    from mlflow.utils.validation import validate_param_and_metric_name

    if not validate_param_and_metric_name(metric):
        raise FlowscopeError(
            f"{metric[:100]!r} is not a metric name: MLflow's metric names hold only "
            "letters, digits, spaces and _ - . / :"
        )


def experiment_ints(experiment_ids: Sequence[str]) -> list[int]:
    if not experiment_ids:
        raise FlowscopeError("no experiment given")
    ints = []
    for experiment_id in experiment_ids:
        try:
            ints.append(int(experiment_id))
        except (TypeError, ValueError):
            raise NotFoundError(f"no experiment with id {experiment_id!r}") from None
    return ints


def mean(values: Sequence[float]) -> float:
    """The mean, exact to the last bit where no sum overflows; infinite where one does."""
    try:
        return math.fsum(values) / len(values)
    except OverflowError:  # fsum refuses to overflow; pandas just returns inf
        return sum(values) / len(values)
