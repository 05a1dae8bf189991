"""A task's runs read through a run store: what ``flowscope runs`` lists, what ``flowscope
best`` ranks and what the demo sums up, the same runs the dashboard shows.

A task stands for its experiment (``<task>``, or the name ``flowscope.yaml`` maps it to) and
the ``<name>-inference`` experiment beside it, where its predictions are logged: the runs
page shows both, its tabs choosing a kind, and so do these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowscope.analysis._rows import MAX_PAGE_SIZE
from flowscope.analysis.best import best_run, check_best
from flowscope.errors import FlowscopeError, NotFoundError

if TYPE_CHECKING:
    from flowscope.analysis.best import BestRun
    from flowscope.analysis.query import RunStore
    from flowscope.config import Settings


def with_inference(store: RunStore, experiment_id: str, name: str) -> list[str]:
    """The experiment and, when it exists, its ``<name>-inference`` sibling."""
    sibling = store.experiment_id_named(f"{name}-inference")
    return [str(experiment_id)] + ([sibling] if sibling is not None else [])


def task_experiment_ids(store: RunStore, settings: Settings, task: str) -> list[str]:
    """The ids of ``task``'s experiment and its inference sibling, those that exist; neither
    is a :class:`NotFoundError` naming the experiment."""
    name = settings.experiment_name(task)
    found = store.experiment_id_named(name)
    if found is not None:
        return with_inference(store, found, name)
    inference = store.experiment_id_named(settings.experiment_name(task, "inference"))
    if inference is None:
        raise NotFoundError(f"no experiment named {name!r} in {settings.tracking_uri}")
    return [inference]


def search_all(
    store: RunStore,
    experiment_ids: list[str],
    *,
    kind: str | None = None,
    filter_string: str = "",
    order_by: Sequence[str] | None = None,
    limit: int | None = None,
    page_size: int = MAX_PAGE_SIZE,
    tags: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Every run matching (at most ``limit``), in order, read ``page_size`` at a time. The
    kind is chosen before the limit is counted; ``tags`` as in ``RunStore.search``."""
    if limit is not None and limit < 1:
        raise FlowscopeError(f"limit must be 1 or more, not {limit}")
    size = min(limit or page_size, page_size)
    rows: list[dict[str, Any]] = []
    number = 1
    while True:
        found = store.search(
            experiment_ids,
            kind=kind,
            filter_string=filter_string,
            order_by=list(order_by) if order_by else None,
            page=number,
            page_size=size,
            tags=tags,
        )
        rows.extend(found.rows)
        if not found.rows or len(rows) >= found.total:
            break
        if limit is not None and len(rows) >= limit:
            break
        number += 1
    return rows if limit is None else rows[:limit]


def list_task_runs(
    store: RunStore,
    settings: Settings,
    task: str,
    *,
    kind: str | None = None,
    where: str | None = None,
    order_by: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The runs of ``task`` (of one ``kind``, or all), matching ``where`` (MLflow's filter
    syntax), newest first unless ``order_by`` says otherwise, at most ``limit`` of them.

    >>> with reading_runs(settings) as store:  # doctest: +SKIP
    ...     list_task_runs(store, settings, "iris", kind="trial", limit=5)
    """
    return search_all(
        store,
        task_experiment_ids(store, settings, task),
        kind=kind,
        filter_string=where or "",
        order_by=order_by,
        limit=limit,
    )


def best_task_run(
    store: RunStore,
    settings: Settings,
    task: str,
    *,
    metric: str,
    direction: str | None = None,
    value: str = "last",
    where: str | None = None,
    kind: str | None = "training",
    runners_up: int = 3,
) -> BestRun:
    """The best of ``task``'s runs of ``kind`` (training by default) matching ``where``, by
    ``metric``'s ``value`` (last, or min/max over its steps) in ``direction`` (by the
    metric's name when not given); see :mod:`flowscope.analysis.best`."""
    return store.best(
        task_experiment_ids(store, settings, task),
        metric=metric,
        direction=direction,
        value=value,
        kind=kind,
        filter_string=where or "",
        runners_up=runners_up,
    )


def ranked_runs(
    store: RunStore,
    experiment_ids: list[str],
    *,
    metric: str,
    direction: str | None = None,
    value: str = "last",
    where: str | None = None,
    kind: str | None = "training",
) -> tuple[BestRun, list[dict[str, Any]]]:
    """Every run of ``experiment_ids`` of ``kind`` matching ``where``, ranked: the
    :class:`BestRun` whose ``ranking`` and ``scores`` hold every scored run best first, and
    the runs without the metric, newest first.

    By the last value the runs are read once and ranked here by :func:`best_run`, the rule
    the stores rank by; by the min or max over steps the store ranks them from the metric
    histories, and the runs without the metric are read after, only when there are some.
    """
    filter_string = where or ""
    if value == "last":
        check_best(metric, direction, value, 0)
        rows = search_all(store, experiment_ids, kind=kind, filter_string=filter_string)
        ranked = best_run(
            rows, metric, direction, constraints=where or None, runners_up=max(len(rows) - 1, 0)
        )
        ids = {row["run_id"] for row in ranked.ranking}
        return ranked, [row for row in rows if row["run_id"] not in ids]
    first = store.best(
        experiment_ids,
        metric=metric,
        direction=direction,
        value=value,
        kind=kind,
        filter_string=filter_string,
        runners_up=0,
    )
    scored = first.considered - first.without_metric
    ranked = first
    if scored > 1:
        ranked = store.best(
            experiment_ids,
            metric=metric,
            direction=first.direction,
            value=value,
            kind=kind,
            filter_string=filter_string,
            runners_up=scored - 1,
        )
    if not ranked.without_metric:
        return ranked, []
    ids = {row["run_id"] for row in ranked.ranking}
    rest = search_all(store, experiment_ids, kind=kind, filter_string=filter_string)
    return ranked, [row for row in rest if row["run_id"] not in ids]


def every_run_ranked(
    store: RunStore,
    settings: Settings,
    task: str,
    best: BestRun,
    *,
    value: str = "last",
    where: str | None = None,
    kind: str | None = "training",
) -> list[dict[str, Any]]:
    """Every run ``best`` considered: the scored ones best first, then those without the
    metric, newest first."""
    ranked, rest = ranked_runs(
        store,
        task_experiment_ids(store, settings, task),
        metric=best.metric,
        direction=best.direction,
        value=value,
        where=where,
        kind=kind,
    )
    return [*map(dict, ranked.ranking), *rest]
