"""Listing, filtering, sorting, summarising and ranking the runs of experiments, at dashboard
speed, with MLflow's answers.

:func:`open_run_store` gives a :class:`SqlRunStore` for a database tracking URI: it reads
MLflow's own tables with one SQL query per question (the page's run ids in MLflow's order,
then params, metrics and tags for those runs only), where ``MlflowClient.search_runs`` loads
every matching run. Anything it does not translate (``datasets.*`` filters, databases other
than SQLite and PostgreSQL) goes to :class:`ClientRunStore`, which answers the same calls
through ``MlflowClient.search_runs`` and serves ``http(s)://`` tracking servers.

The first :class:`SqlRunStore` on a database adds one index to MLflow's ``runs`` table,
``flowscope_runs_experiment (experiment_id, lifecycle_stage, start_time)``, with ``CREATE
INDEX IF NOT EXISTS``: MLflow has no index on a run's experiment, so every question about one
experiment reads the runs of all of them. Measured on SQLite for a 1,000-run experiment next
to a 10,000-run one: summary 28 ms without it, 4 ms with it; column names 149 ms, 10 ms (on
PostgreSQL at that size the planner mostly scans anyway). MLflow's migrations never touch
those columns; dropping the index is always safe, and a database user without the right to
create it only loses speed.

Rows have the columns of :func:`flowscope.analysis.runs.run_row` plus ``experiment_id``,
``user_id`` and ``tags.*`` (user and ``flowscope.*`` tags and ``mlflow.parentRunId``; MLflow's
other system tags are left out). Only active runs are listed; a run without the
``flowscope.kind`` tag is a training run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from flowscope.analysis import _sql
from flowscope.analysis.best import BestRun, best_run, default_direction
from flowscope.analysis.runs import DEFAULT_KIND, KIND_TAG
from flowscope.errors import FlowscopeError, NotFoundError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from mlflow import MlflowClient
    from mlflow.entities import Run as MlflowRun

    from flowscope.config import Settings

KINDS = ("training", "inference", "tuning", "trial", "evaluation")
BEST_VALUES = ("last", "min", "max")
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


class RunStore(Protocol):
    """What the dashboard asks of the runs of a store; see the module docstring."""

    def experiments(self) -> list[dict[str, Any]]: ...

    def experiment(self, experiment_id: str) -> dict[str, Any]: ...

    def search(
        self,
        experiment_ids: list[str],
        *,
        kind: str | None = None,
        filter_string: str = "",
        order_by: list[str] | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> RunPage: ...

    def summary(
        self,
        experiment_ids: list[str],
        *,
        kind: str | None = None,
        filter_string: str = "",
        metric: str | None = None,
        direction: str | None = None,
    ) -> dict[str, Any]: ...

    def best(
        self,
        experiment_ids: list[str],
        *,
        metric: str,
        direction: str | None = None,
        value: str = "last",
        kind: str | None = "training",
        filter_string: str = "",
        runners_up: int = 3,
    ) -> BestRun: ...

    def runs(self, run_ids: list[str]) -> list[dict[str, Any]]: ...

    def keys(self, experiment_ids: list[str], kind: str | None = None) -> dict[str, list[str]]: ...


def open_run_store(settings: Settings) -> RunStore:
    """The fastest store for ``settings.tracking_uri``: SQL on a database, else MLflow's client.

    Open it once and keep it (it holds a connection pool)::

        store = open_run_store(load_settings())
        page = store.search(["1"], filter_string="metrics.f1 > 0.8", order_by=["metrics.f1 DESC"])
    """
    if settings.is_database:
        return SqlRunStore(settings)
    return ClientRunStore(settings)


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
        "kind": str(tags.get(KIND_TAG, DEFAULT_KIND)),
        "status": status,
        "start_time": start_time,
        "end_time": end_time,
    }
    for key in sorted(params):
        row[f"params.{key}"] = params[key]
    for key in sorted(metrics):
        row[f"metrics.{key}"] = metrics[key]
    for key in sorted(tags):
        if _shown_tag(key):
            row[f"tags.{key}"] = tags[key]
    return row


def _shown_tag(key: str) -> bool:
    return not key.startswith("mlflow.") or key == PARENT_RUN_TAG


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise FlowscopeError(f"unknown run kind {kind!r}; choose one of {', '.join(KINDS)}")


def _check_page(page: int, page_size: int) -> None:
    if page < 1:
        raise FlowscopeError(f"page must be 1 or more, not {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise FlowscopeError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")


def _check_best(metric: str, direction: str | None, value: str, runners_up: int) -> str:
    direction = direction or default_direction(metric)
    if direction not in ("max", "min"):
        raise FlowscopeError(f"direction must be 'max' or 'min', not {direction!r}")
    if value not in BEST_VALUES:
        raise FlowscopeError(f"value must be one of {', '.join(BEST_VALUES)}, not {value!r}")
    if runners_up < 0:
        raise FlowscopeError(f"runners_up must be 0 or more, not {runners_up}")
    return direction


def _no_metric_error(metric: str, constraints: str | None, looked_at: int) -> FlowscopeError:
    where = f" matching {constraints!r}" if constraints else ""
    return FlowscopeError(f"no run{where} has the metric {metric!r} ({looked_at} runs looked at)")


def _tie_break(metric: str, value: float, sharing: int) -> str | None:
    if sharing < 2:
        return None
    return f"{sharing} runs share {metric} = {value:g}; the earliest started wins"


def _metric_summary(metric: str, direction: str | None, values: Sequence[float]) -> dict[str, Any]:
    """Count, mean, min, max and best of a metric's values, NaN left out as pandas does."""
    direction = direction or default_direction(metric)
    if direction not in ("max", "min"):
        raise FlowscopeError(f"direction must be 'max' or 'min', not {direction!r}")
    present = [value for value in values if not math.isnan(value)]
    low = min(present) if present else None
    high = max(present) if present else None
    return {
        "name": metric,
        "count": len(present),
        "mean": _sql.mean(present) if present else None,
        "min": low,
        "max": high,
        "best": high if direction == "max" else low,
        "direction": direction,
    }


def _experiment_ints(experiment_ids: Sequence[str]) -> list[int]:
    if not experiment_ids:
        raise FlowscopeError("no experiment given")
    ints = []
    for experiment_id in experiment_ids:
        try:
            ints.append(int(experiment_id))
        except (TypeError, ValueError):
            raise NotFoundError(f"no experiment with id {experiment_id!r}") from None
    return ints


class SqlRunStore:
    """Answers from MLflow's tables in SQL; falls back to :class:`ClientRunStore` per call
    for what it does not translate."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._fallback_store: ClientRunStore | None = None
        self._engine = _sql.open_engine(settings)
        self._dialect = self._engine.dialect.name

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    @property
    def _fallback(self) -> ClientRunStore:
        if self._fallback_store is None:
            self._fallback_store = ClientRunStore(self._settings)
        return self._fallback_store

    def _conditions(
        self,
        conn: sa.Connection,
        experiment_ids: Sequence[str],
        kind: str | None,
        filter_string: str,
    ) -> list[Any]:
        """WHERE conditions for these runs; :class:`_sql.Unsupported` sends the call to the
        client, after a bad filter has been refused either way."""
        _check_kind(kind)
        clauses = _sql.filter_clauses(_sql.parse_filter(filter_string), self._dialect)
        if self._dialect not in _sql.TESTED_DIALECTS:
            raise _sql.Unsupported(f"the {self._dialect} dialect")
        wanted = _experiment_ints(experiment_ids)
        missing = sorted(set(wanted) - _sql.active_experiments(conn, wanted))
        if missing:
            raise NotFoundError(f"no active experiment with id {', '.join(map(str, missing))}")
        return _sql.run_conditions(wanted, kind, clauses)

    def experiments(self) -> list[dict[str, Any]]:
        """Active experiments with their run counts by kind, newest first."""
        with self._engine.connect() as conn:
            return _sql.experiment_rows(conn)

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        """One active experiment with its run counts; :class:`NotFoundError` otherwise."""
        with self._engine.connect() as conn:
            rows = _sql.experiment_rows(conn, _experiment_ints([experiment_id]))
        if not rows:
            raise NotFoundError(f"no active experiment with id {experiment_id!r}")
        return rows[0]

    def search(
        self,
        experiment_ids: list[str],
        *,
        kind: str | None = None,
        filter_string: str = "",
        order_by: list[str] | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> RunPage:
        """One page of the runs matching ``filter_string`` (MLflow's syntax), in MLflow's order
        for ``order_by``, and how many match in all."""
        _check_page(page, page_size)
        order = _sql.parse_order_by(order_by or [])
        try:
            with self._engine.connect() as conn:
                conditions = self._conditions(conn, experiment_ids, kind, filter_string)
                total = _sql.count_runs(conn, conditions)
                offset = (page - 1) * page_size
                ids = list(conn.scalars(_sql.ordered_ids(conditions, order, offset, page_size)))
                runs = _sql.fetch_runs(conn, ids)
        except _sql.Unsupported:
            return self._fallback.search(
                experiment_ids,
                kind=kind,
                filter_string=filter_string,
                order_by=order_by,
                page=page,
                page_size=page_size,
            )
        rows = [make_row(**runs[run_id]) for run_id in ids if run_id in runs]
        return RunPage(rows, total, page, page_size, list(order_by or []))

    def summary(
        self,
        experiment_ids: list[str],
        *,
        kind: str | None = None,
        filter_string: str = "",
        metric: str | None = None,
        direction: str | None = None,
    ) -> dict[str, Any]:
        """How many runs match, by kind, and count/mean/min/max/best of ``metric`` over them
        (latest values, NaN left out)."""
        described = None if metric is None else _metric_summary(metric, direction, [])
        try:
            with self._engine.connect() as conn:
                conditions = self._conditions(conn, experiment_ids, kind, filter_string)
                by_kind, (count, average, low, high) = _sql.run_summary(conn, conditions, metric)
                if described is not None and count:
                    best = high if described["direction"] == "max" else low
                    described.update(count=count, mean=average, min=low, max=high, best=best)
        except _sql.Unsupported:
            return self._fallback.summary(
                experiment_ids,
                kind=kind,
                filter_string=filter_string,
                metric=metric,
                direction=direction,
            )
        return {"total": sum(by_kind.values()), "by_kind": by_kind, "metric": described}

    def best(
        self,
        experiment_ids: list[str],
        *,
        metric: str,
        direction: str | None = None,
        value: str = "last",
        kind: str | None = "training",
        filter_string: str = "",
        runners_up: int = 3,
    ) -> BestRun:
        """The best run by ``metric`` among those matching, as
        :func:`flowscope.analysis.best.best_run` ranks them: NaN and missing left out, ties to
        the earliest start. ``value`` "min"/"max" scores each run by its metric history (the
        rows still show the latest value). ``ranking`` holds the winner and runners-up only."""
        direction = _check_best(metric, direction, value, runners_up)
        constraints = filter_string or None
        try:
            with self._engine.connect() as conn:
                conditions = self._conditions(conn, experiment_ids, kind, filter_string)
                ranked = _sql.best_ranking(
                    conditions, metric, value, direction, 1 + runners_up, self._dialect
                )
                rows = conn.execute(ranked).all()
                top = [row for row in rows if row.score is not None]
                runs = _sql.fetch_runs(conn, [row.run_uuid for row in top])
        except _sql.Unsupported:
            return self._fallback.best(
                experiment_ids,
                metric=metric,
                direction=direction,
                value=value,
                kind=kind,
                filter_string=filter_string,
                runners_up=runners_up,
            )
        considered = int(rows[0].considered) if rows else 0
        if not top:
            raise _no_metric_error(metric, constraints, considered)
        ranking: list[Mapping[str, Any]] = [make_row(**runs[row.run_uuid]) for row in top]
        return BestRun(
            metric=metric,
            direction=direction,
            constraints=constraints,
            winner=ranking[0],
            value=float(top[0].score),
            runners_up=ranking[1:],
            considered=considered,
            without_metric=considered - int(top[0].with_metric),
            tie_break=_tie_break(metric, float(top[0].score), int(top[0].sharing)),
            ranking=ranking,
        )

    def runs(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Full rows of these active runs, in the order asked; :class:`NotFoundError` names
        the ids that are unknown or deleted."""
        wanted = list(dict.fromkeys(run_ids))
        with self._engine.connect() as conn:
            runs = _sql.fetch_runs(conn, wanted)
        missing = [run_id for run_id in wanted if run_id not in runs]
        if missing:
            raise NotFoundError(f"no active run with id {', '.join(map(repr, missing))}")
        return [make_row(**runs[run_id]) for run_id in wanted]

    def keys(self, experiment_ids: list[str], kind: str | None = None) -> dict[str, list[str]]:
        """The param, metric and tag names present in these experiments' active runs (tags
        as the rows show them)."""
        try:
            with self._engine.connect() as conn:
                found = _sql.present_keys(conn, self._conditions(conn, experiment_ids, kind, ""))
        except _sql.Unsupported:
            return self._fallback.keys(experiment_ids, kind)
        found["tags"] = [key for key in found["tags"] if _shown_tag(key)]
        return found


class ClientRunStore:
    """The same answers through ``MlflowClient.search_runs``, reading every matching run:
    for tracking servers, and for what :class:`SqlRunStore` does not translate."""

    def __init__(self, settings: Settings, client: MlflowClient | None = None) -> None:
        from flowscope.analysis.runs import client_for

        self._client = client or client_for(settings)

    def close(self) -> None:
        """Nothing to release; here so both stores can be closed alike."""

    def _experiments(self, experiment_ids: Sequence[str]) -> list[str]:
        _experiment_ints(experiment_ids)
        for experiment_id in experiment_ids:
            self._experiment_entity(experiment_id)
        return [str(i) for i in experiment_ids]

    def _experiment_entity(self, experiment_id: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            experiment = self._client.get_experiment(str(experiment_id))
        except MlflowException:
            experiment = None
        if experiment is None or experiment.lifecycle_stage != "active":
            raise NotFoundError(f"no active experiment with id {experiment_id!r}")
        return experiment

    def _all_runs(
        self,
        experiment_ids: Sequence[str],
        kind: str | None,
        filter_string: str,
        order_by: Sequence[str] | None = None,
    ) -> list[MlflowRun]:
        from mlflow.exceptions import MlflowException

        _check_kind(kind)
        # Parsed here too so that both stores word a bad filter or order_by alike.
        _sql.parse_filter(filter_string)
        _sql.parse_order_by(order_by or [])
        ids = self._experiments(experiment_ids)
        where = filter_string
        if kind is not None and kind != DEFAULT_KIND:
            # Other kinds are a plain tag filter; training also means "no tag", which
            # MLflow's AND-only syntax cannot say, so it is filtered below.
            clause = f"tags.`{KIND_TAG}` = '{kind}'"
            where = f"{filter_string} AND {clause}" if filter_string.strip() else clause
        runs: list[MlflowRun] = []
        token = None
        try:
            while True:
                found = self._client.search_runs(
                    ids,
                    filter_string=where,
                    order_by=list(order_by or []),
                    max_results=MAX_PAGE_SIZE,
                    page_token=token,
                )
                runs.extend(found)
                token = found.token
                if not token:
                    break
        except MlflowException as exc:
            raise FlowscopeError(f"bad filter or order_by: {exc.message}") from None
        if kind is not None:
            runs = [run for run in runs if str(run.data.tags.get(KIND_TAG, DEFAULT_KIND)) == kind]
        return runs

    def experiments(self) -> list[dict[str, Any]]:
        """Active experiments with their run counts by kind, newest first."""
        from mlflow.entities import ViewType

        experiments: list[Any] = []
        token = None
        while True:
            found = self._client.search_experiments(
                view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
            )
            experiments.extend(found)
            token = found.token
            if not token:
                break
        return [self._describe(experiment) for experiment in experiments]

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        """One active experiment with its run counts; :class:`NotFoundError` otherwise."""
        _experiment_ints([experiment_id])
        return self._describe(self._experiment_entity(experiment_id))

    def _describe(self, experiment: Any) -> dict[str, Any]:
        runs = self._all_runs([experiment.experiment_id], None, "")
        by_kind: dict[str, int] = {}
        times = []
        for run in runs:
            kind = str(run.data.tags.get(KIND_TAG, DEFAULT_KIND))
            by_kind[kind] = by_kind.get(kind, 0) + 1
            times += [t for t in (run.info.start_time, run.info.end_time) if t]
        return {
            "experiment_id": experiment.experiment_id,
            "name": experiment.name,
            "creation_time": experiment.creation_time,
            "last_activity": max(times) if times else None,
            "runs": len(runs),
            "by_kind": dict(sorted(by_kind.items())),
        }

    def search(
        self,
        experiment_ids: list[str],
        *,
        kind: str | None = None,
        filter_string: str = "",
        order_by: list[str] | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> RunPage:
        """One page of the matching runs in MLflow's order, and how many match in all."""
        _check_page(page, page_size)
        runs = self._all_runs(experiment_ids, kind, filter_string, order_by)
        start = (page - 1) * page_size
        rows = [client_row(run) for run in runs[start : start + page_size]]
        return RunPage(rows, len(runs), page, page_size, list(order_by or []))

    def summary(
        self,
        experiment_ids: list[str],
        *,
        kind: str | None = None,
        filter_string: str = "",
        metric: str | None = None,
        direction: str | None = None,
    ) -> dict[str, Any]:
        """How many runs match, by kind, and statistics of ``metric``'s latest values."""
        if metric is not None:
            _metric_summary(metric, direction, [])
        runs = self._all_runs(experiment_ids, kind, filter_string)
        by_kind: dict[str, int] = {}
        for run in runs:
            run_kind = str(run.data.tags.get(KIND_TAG, DEFAULT_KIND))
            by_kind[run_kind] = by_kind.get(run_kind, 0) + 1
        stats = None
        if metric is not None:
            values = [run.data.metrics[metric] for run in runs if metric in run.data.metrics]
            stats = _metric_summary(metric, direction, values)
        return {"total": len(runs), "by_kind": dict(sorted(by_kind.items())), "metric": stats}

    def best(
        self,
        experiment_ids: list[str],
        *,
        metric: str,
        direction: str | None = None,
        value: str = "last",
        kind: str | None = "training",
        filter_string: str = "",
        runners_up: int = 3,
    ) -> BestRun:
        """The best run as :meth:`SqlRunStore.best` finds it, from every matching run."""
        direction = _check_best(metric, direction, value, runners_up)
        rows = [client_row(run) for run in self._all_runs(experiment_ids, kind, filter_string)]
        column = f"metrics.{metric}"
        scored = rows
        if value != "last":
            pick = max if value == "max" else min
            scored = []
            for row in rows:
                copy = {k: v for k, v in row.items() if k != column}
                if column in row:
                    history = self._client.get_metric_history(row["run_id"], metric)
                    points = [p.value for p in history if not math.isnan(p.value)]
                    if points:
                        copy[column] = pick(points)
                scored.append(copy)
        result = best_run(
            scored, metric, direction, constraints=filter_string or None, runners_up=runners_up
        )
        originals = {row["run_id"]: row for row in rows}
        ranking: list[Mapping[str, Any]] = [
            originals[row["run_id"]] for row in result.ranking[: 1 + runners_up]
        ]
        result.winner, result.runners_up, result.ranking = ranking[0], ranking[1:], ranking
        return result

    def runs(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Full rows of these active runs, in the order asked."""
        from mlflow.exceptions import MlflowException

        rows, missing = [], []
        for run_id in dict.fromkeys(run_ids):
            try:
                run = self._client.get_run(run_id)
            except MlflowException:
                run = None
            if run is None or run.info.lifecycle_stage != "active":
                missing.append(run_id)
            else:
                rows.append(client_row(run))
        if missing:
            raise NotFoundError(f"no active run with id {', '.join(map(repr, missing))}")
        return rows

    def keys(self, experiment_ids: list[str], kind: str | None = None) -> dict[str, list[str]]:
        """The param, metric and tag names present in these experiments' active runs."""
        params: set[str] = set()
        metrics: set[str] = set()
        tags: set[str] = set()
        for run in self._all_runs(experiment_ids, kind, ""):
            params.update(run.data.params)
            metrics.update(run.data.metrics)
            tags.update(key for key in run.data.tags if _shown_tag(key))
        return {"params": sorted(params), "metrics": sorted(metrics), "tags": sorted(tags)}


def client_row(run: MlflowRun) -> dict[str, Any]:
    """A run from ``MlflowClient`` as a row (see :func:`make_row`)."""
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
