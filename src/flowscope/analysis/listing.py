"""What the experiments and runs pages show: built from a run store, one dict per page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowscope.analysis.best import default_direction
from flowscope.analysis.task_runs import search_all, with_inference
from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    from flowscope.analysis.query import RunStore

TABS = ("all", "training", "inference", "tuning")
# The metric an experiment is judged by when nobody says: the first of these it has.
MAIN_METRICS = ("accuracy", "f1", "roc_auc", "pinball_0.5", "r2", "rmse", "mae", "log_loss")
ATTRIBUTE_COLUMNS = ("run_name", "kind", "status", "start_time", "duration_s")
MAX_PAGE_SIZE = 500
_EXPORT_PAGE_SIZE = 500  # runs read at a time for an export


def main_metric(metric_names: list[str]) -> str | None:
    """The experiment's headline metric: a known one it has, else its first metric."""
    present = set(metric_names)
    for name in MAIN_METRICS:
        if name in present:
            return name
    return sorted(present)[0] if present else None


def experiments_overview(
    store: RunStore, visible: Callable[[str], bool] | None = None
) -> dict[str, Any]:
    """Every experiment (``visible`` says which the user may read) with run counts per
    kind, last activity and the best value of its main metric."""
    rows = []
    for experiment in store.experiments():
        if visible is not None and not visible(str(experiment["experiment_id"])):
            continue
        ids = [experiment["experiment_id"]]
        metric = main_metric(store.keys(ids)["metrics"]) if experiment["runs"] else None
        best = None
        if metric is not None:
            stats = store.summary(ids, kind="training", metric=metric)["metric"]
            if stats and stats["count"]:
                best = {"metric": metric, "value": stats["best"], "direction": stats["direction"]}
        rows.append({**experiment, "main_metric": metric, "best": best})
    return {"experiments": rows}


@dataclass
class RunsQuery:
    """What the runs page was asked for (query parameters, all optional)."""

    tab: str = "all"
    filter: str = ""
    order: str = ""
    page: int = 1
    page_size: int = 50
    columns: list[str] = field(default_factory=list)
    metric: str = ""
    direction: str = ""

    def check(self) -> None:
        if self.tab not in TABS:
            raise FlowscopeError(f"unknown tab {self.tab!r}; use one of {', '.join(TABS)}")
        if self.page < 1:
            raise FlowscopeError(f"page must be 1 or more, not {self.page}")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise FlowscopeError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if self.direction not in ("", "max", "min"):
            raise FlowscopeError(f"direction must be max or min, not {self.direction!r}")

    @property
    def kind(self) -> str | None:
        return None if self.tab == "all" else self.tab


def default_columns(keys: dict[str, list[str]], metric: str | None) -> list[str]:
    metrics = [name for name in MAIN_METRICS if name in set(keys["metrics"])]
    if metric and metric not in metrics:
        metrics.insert(0, metric)
    if not metrics:
        metrics = keys["metrics"][:6]
    params = [name for name in ("model_type",) if name in set(keys["params"])]
    return [*(f"params.{name}" for name in params), *(f"metrics.{name}" for name in metrics[:6])]


# Parameters every training run has that say little about the model itself.
_BOOKKEEPING_PARAMS = ("params.dataset", "params.target", "params.problem", "params.seed.")


def varying_params(rows: list[dict[str, Any]], *, exclude: list[str], limit: int = 4) -> list[str]:
    """Up to ``limit`` parameter columns whose values differ between ``rows``."""
    seen: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith("params.") and not key.startswith(_BOOKKEEPING_PARAMS):
                seen.setdefault(key, set()).add(str(value))
    differing = [key for key, values in seen.items() if len(values) > 1 and key not in exclude]
    present = {key: sum(key in row for row in rows) for key in differing}
    return sorted(differing, key=lambda key: (-present[key], key))[:limit]


def sort_key(column: str) -> str | None:
    """The MLflow ``order_by`` key of a column (None for columns MLflow cannot sort by)."""
    if column in ("run_name", "status", "start_time", "end_time"):
        return f"attributes.{column}"
    prefix, dot, name = column.partition(".")
    if not dot or prefix not in ("metrics", "params", "tags"):
        return None
    return f"{prefix}.`{name}`"


def _sorted_by(order: str) -> dict[str, Any]:
    """Which column an ``order_by`` item sorts, and which way."""
    text = order.strip()
    descending = text.upper().endswith(" DESC")
    key = text.rsplit(" ", 1)[0] if text.upper().endswith((" DESC", " ASC")) else text
    column = key.replace("`", "").removeprefix("attributes.")
    return {"column": column, "descending": descending}


def runs_listing(store: RunStore, experiment_id: str, query: RunsQuery) -> dict[str, Any]:
    """The runs page: tabs with counts, summary statistics, one page of runs, the columns.

    A bad filter or sort key does not raise: it comes back as ``error`` (with status 400)
    so that the page can show it next to the filter box.
    """
    query.check()
    experiment = store.experiment(experiment_id)
    ids = with_inference(store, experiment["experiment_id"], experiment["name"])
    keys = store.keys(ids)
    metric = query.metric or main_metric(keys["metrics"])
    direction = query.direction or (default_direction(metric) if metric else "max")
    if query.order:
        order = [query.order]
    elif metric:
        order = [f"metrics.`{metric}` {'DESC' if direction == 'max' else 'ASC'}"]
    else:
        order = ["attributes.start_time DESC"]
    columns = query.columns or default_columns(keys, metric)
    data: dict[str, Any] = {
        "experiment": experiment,
        "experiment_ids": ids,
        "query": {**query.__dict__, "order": query.order},
        "order_by": order,
        "metric": metric,
        "direction": direction,
        "columns": columns,
        "sorted_by": _sorted_by(order[0]),
        "sort_keys": {column: sort_key(column) for column in [*ATTRIBUTE_COLUMNS, *columns]},
        "available_columns": [
            *ATTRIBUTE_COLUMNS,
            *(f"params.{name}" for name in keys["params"]),
            *(f"metrics.{name}" for name in keys["metrics"]),
            *(f"tags.{name}" for name in keys["tags"]),
        ],
        "tabs": [],
        "summary": None,
        "runs": [],
        "total": 0,
        "pages": 0,
        "error": None,
    }
    try:
        counts = store.summary(ids, filter_string=query.filter)["by_kind"]
        found = store.search(
            ids,
            kind=query.kind,
            filter_string=query.filter,
            order_by=order,
            page=query.page,
            page_size=query.page_size,
        )
        summary = store.summary(
            ids, kind=query.kind, filter_string=query.filter, metric=metric, direction=direction
        )
    except FlowscopeError as exc:
        if exc.status >= 500:
            raise
        data["error"] = exc.message
        return data
    data["tabs"] = [
        {"name": tab, "count": sum(counts.values()) if tab == "all" else _tab_count(counts, tab)}
        for tab in TABS
    ]
    data["summary"] = summary
    if not query.columns:  # what sets these runs apart: a grid's parameters, say
        varying = varying_params(found.rows, exclude=columns)
        data["columns"] = columns = [*columns[:1], *varying, *columns[1:]]
        data["sort_keys"].update({column: sort_key(column) for column in varying})
    data["runs"] = [_with_duration(row) for row in found.rows]
    data["total"] = found.total
    data["pages"] = max(1, -(-found.total // query.page_size))
    return data


def every_listed_run(store: RunStore, experiment_id: str, query: RunsQuery) -> list[dict[str, Any]]:
    """Every run the runs page lists for ``query``, all its pages in its order: the CSV
    export. The page's default sort is not applied: without ``order``, newest first."""
    query.check()
    experiment = store.experiment(experiment_id)
    return search_all(
        store,
        with_inference(store, experiment["experiment_id"], experiment["name"]),
        kind=query.kind,
        filter_string=query.filter,
        order_by=[query.order] if query.order else None,
        page_size=_EXPORT_PAGE_SIZE,
    )


def _tab_count(counts: dict[str, int], tab: str) -> int:
    # the tuning tab lists studies (their parent runs); trials are shown inside a study
    return counts.get(tab, 0)


def _with_duration(row: dict[str, Any]) -> dict[str, Any]:
    start, end = row.get("start_time"), row.get("end_time")
    duration = (end - start) / 1000 if start and end else None
    return {**row, "duration_s": duration}
