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

Rows are :func:`make_row`'s (:func:`run_row` for a run from ``MlflowClient``): attributes
with ``experiment_id``, ``user_id`` and ``kind``, then ``params.*``, ``metrics.*`` (latest
values) and ``tags.*`` (user and ``flowscope.*`` tags and ``mlflow.parentRunId``; MLflow's
other system tags are left out). Only active runs are listed; a run without the
``flowscope.kind`` tag is a training run. The best run is ranked by the rule of
:mod:`flowscope.analysis.best` on either store.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from flowscope.analysis import _sql
from flowscope.analysis._client import ClientRunStore
from flowscope.analysis._rows import (
    RunPage,
    check_count_by,
    check_kind,
    check_page,
    experiment_ints,
    make_row,
    metric_summary,
    run_row,
    shown_tag,
)
from flowscope.analysis.best import BestRun, check_best, ranked_result
from flowscope.errors import NotFoundError

__all__ = [
    "ClientRunStore",
    "RunPage",
    "RunStore",
    "SqlRunStore",
    "make_row",
    "open_run_store",
    "reading_runs",
    "run_row",
]

if TYPE_CHECKING:
    import sqlalchemy as sa

    from flowscope.config import Settings


class RunStore(Protocol):
    """What the dashboard, the CLI and the rest ask of the runs of a store; see the module
    docstring."""

    def close(self) -> None: ...

    def experiments(self) -> list[dict[str, Any]]: ...

    def experiment_id_named(self, name: str) -> str | None: ...

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
        tags: list[str] | None = None,
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

    def count_by(
        self,
        experiment_ids: list[str],
        by: list[str],
        *,
        kind: str | None = None,
        filter_string: str = "",
    ) -> dict[tuple[str | None, ...], int]: ...

    def metric_histories(
        self, run_ids: list[str], key: str
    ) -> dict[str, list[tuple[int, float]]]: ...


def open_run_store(settings: Settings) -> RunStore:
    """The fastest store for ``settings.tracking_uri``: SQL on a database, else MLflow's client.

    Open it once and keep it (it holds a connection pool)::

        store = open_run_store(load_settings())
        page = store.search(["1"], filter_string="metrics.f1 > 0.8", order_by=["metrics.f1 DESC"])
    """
    if settings.is_database:
        return SqlRunStore(settings)
    return ClientRunStore(settings)


@contextmanager
def reading_runs(settings: Settings) -> Iterator[RunStore]:
    """:func:`open_run_store` for one piece of work (a command, a report), closed after it::

    with reading_runs(settings) as store:
        rows = list_task_runs(store, settings, "iris", kind="trial", limit=10)
    """
    store = open_run_store(settings)
    try:
        yield store
    finally:
        store.close()


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
        check_kind(kind)
        clauses = _sql.filter_clauses(_sql.parse_filter(filter_string), self._dialect)
        if self._dialect not in _sql.TESTED_DIALECTS:
            raise _sql.Unsupported(f"the {self._dialect} dialect")
        wanted = experiment_ints(experiment_ids)
        missing = sorted(set(wanted) - _sql.active_experiments(conn, wanted))
        if missing:
            raise NotFoundError(f"no active experiment with id {', '.join(map(str, missing))}")
        return _sql.run_conditions(wanted, kind, clauses)

    def experiments(self) -> list[dict[str, Any]]:
        """Active experiments with their run counts by kind, newest first."""
        with self._engine.connect() as conn:
            return _sql.experiment_rows(conn)

    def experiment_id_named(self, name: str) -> str | None:
        """The id of the active experiment called ``name``, if there is one."""
        with self._engine.connect() as conn:
            return _sql.experiment_id_named(conn, name)

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        """One active experiment with its run counts; :class:`NotFoundError` otherwise."""
        with self._engine.connect() as conn:
            rows = _sql.experiment_rows(conn, experiment_ints([experiment_id]))
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
        tags: list[str] | None = None,
    ) -> RunPage:
        """One page of the runs matching ``filter_string`` (MLflow's syntax), in MLflow's order
        for ``order_by``, and how many match in all. With ``tags``, the rows show only those
        tags (and the kind and parent tags): a page of thousands of runs that needs two of
        a run's tags reads no more of them."""
        check_page(page, page_size)
        order = _sql.parse_order_by(order_by or [])
        try:
            with self._engine.connect() as conn:
                conditions = self._conditions(conn, experiment_ids, kind, filter_string)
                total = _sql.count_runs(conn, conditions)
                offset = (page - 1) * page_size
                ids = _sql.page_of_ids(conn, conditions, order, offset, page_size)
                runs = _sql.fetch_runs(conn, ids, tags)
        except _sql.Unsupported:
            return self._fallback.search(
                experiment_ids,
                kind=kind,
                filter_string=filter_string,
                order_by=order_by,
                page=page,
                page_size=page_size,
                tags=tags,
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
        described = None if metric is None else metric_summary(metric, direction, [])
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
        counts: bool = True,
    ) -> BestRun:
        """The best run by ``metric`` among those matching, ranked in SQL by the rule of
        :mod:`flowscope.analysis.best` (NaN and missing left out, ties to the earliest start).
        ``value`` "min"/"max" scores each run by its metric history (the rows still show the
        latest value, ``scores`` the ranked ones). ``ranking`` holds the winner and runners-up
        only. Without ``counts``, the runs considered are not counted when that would cost
        more than the ranking (by the latest value)."""
        direction = check_best(metric, direction, value, runners_up)
        constraints = filter_string or None
        try:
            with self._engine.connect() as conn:
                conditions = self._conditions(conn, experiment_ids, kind, filter_string)
                if value == "last":
                    top, counted = _sql.best_by_latest(
                        conn, conditions, metric, direction, 1 + runners_up, counts
                    )
                    considered = len(top) if counted is None else counted
                else:
                    ranked = _sql.best_ranking(
                        conditions, metric, value, direction, 1 + runners_up, self._dialect
                    )
                    rows = conn.execute(ranked).all()
                    top = [
                        _sql.Ranked(
                            row.run_uuid,
                            float(row.score),
                            int(row.considered),
                            int(row.with_metric),
                            int(row.sharing),
                        )
                        for row in rows
                        if row.score is not None
                    ]
                    considered = int(rows[0].considered) if rows else 0
                    counted = considered
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
        ranking: list[Mapping[str, Any]] = [make_row(**runs[row.run_uuid]) for row in top]
        return ranked_result(
            metric,
            direction,
            constraints,
            ranking,
            [float(row.score) for row in top],
            considered=considered,
            scored=int(top[0].with_metric) if top else 0,
            sharing=int(top[0].sharing) if top else 0,
            runners_up=runners_up,
            counted=counted is not None,
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
        found["tags"] = [key for key in found["tags"] if shown_tag(key)]
        return found

    def count_by(
        self,
        experiment_ids: list[str],
        by: list[str],
        *,
        kind: str | None = None,
        filter_string: str = "",
    ) -> dict[tuple[str | None, ...], int]:
        """How many matching runs share each combination of ``by`` (``status`` or
        ``tags.<key>``; None where a run lacks the tag): a study's trials per parent and
        state, say, in one grouped query."""
        check_count_by(by)
        try:
            with self._engine.connect() as conn:
                conditions = self._conditions(conn, experiment_ids, kind, filter_string)
                return _sql.grouped_counts(conn, conditions, by)
        except _sql.Unsupported:
            return self._fallback.count_by(
                experiment_ids, by, kind=kind, filter_string=filter_string
            )

    def metric_histories(self, run_ids: list[str], key: str) -> dict[str, list[tuple[int, float]]]:
        """Every ``(step, value)`` of metric ``key`` of these runs, by step, in one query per
        500 runs; runs without the metric are left out."""
        with self._engine.connect() as conn:
            return _sql.metric_points(conn, list(dict.fromkeys(run_ids)), key, self._dialect)
