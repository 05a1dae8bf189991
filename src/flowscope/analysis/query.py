"""Listing, filtering, sorting, summarising and ranking the runs of experiments, at dashboard
speed, with MLflow's answers.

:func:`open_run_store` gives a :class:`SqlRunStore` for a database tracking URI: it reads
MLflow's own tables with one SQL query per question (the page's run ids in MLflow's order,
then params, metrics and tags for those runs only), where ``MlflowClient.search_runs`` loads
every matching run. Anything it does not translate (``datasets.*`` filters, databases other
than SQLite and PostgreSQL) goes to :class:`ClientRunStore`, which answers the same calls
through ``MlflowClient.search_runs`` and serves ``http(s)://`` tracking servers.

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
        if shown_tag(key):
            row[f"tags.{key}"] = tags[key]
    return row


def shown_tag(key: str) -> bool:
    return not key.startswith("mlflow.") or key == PARENT_RUN_TAG


def check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise FlowscopeError(f"unknown run kind {kind!r}; choose one of {', '.join(KINDS)}")


def check_page(page: int, page_size: int) -> None:
    if page < 1:
        raise FlowscopeError(f"page must be 1 or more, not {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise FlowscopeError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")


def check_best(metric: str, direction: str | None, value: str, runners_up: int) -> str:
    direction = direction or default_direction(metric)
    if direction not in ("max", "min"):
        raise FlowscopeError(f"direction must be 'max' or 'min', not {direction!r}")
    if value not in BEST_VALUES:
        raise FlowscopeError(f"value must be one of {', '.join(BEST_VALUES)}, not {value!r}")
    if runners_up < 0:
        raise FlowscopeError(f"runners_up must be 0 or more, not {runners_up}")
    return direction


def no_metric_error(metric: str, constraints: str | None, looked_at: int) -> FlowscopeError:
    where = f" matching {constraints!r}" if constraints else ""
    return FlowscopeError(f"no run{where} has the metric {metric!r} ({looked_at} runs looked at)")


def tie_break(metric: str, value: float, sharing: int) -> str | None:
    if sharing < 2:
        return None
    return f"{sharing} runs share {metric} = {value:g}; the earliest started wins"


def metric_summary(metric: str, direction: str | None, values: Sequence[float]) -> dict[str, Any]:
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
        "mean": mean(present) if present else None,
        "min": low,
        "max": high,
        "best": high if direction == "max" else low,
        "direction": direction,
    }


def mean(values: Sequence[float]) -> float:
    """The mean, exact to the last bit where no sum overflows; infinite where one does."""
    try:
        return math.fsum(values) / len(values)
    except OverflowError:  # fsum refuses to overflow; pandas just returns inf
        return sum(values) / len(values)


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
        import sqlalchemy as sa

        from flowscope.analysis import _sql

        self._settings = settings
        self._fallback_store: ClientRunStore | None = None
        self._engine = _sql.create_engine(settings.tracking_uri)
        self._dialect = self._engine.dialect.name
        self._sql_ok = self._dialect in _sql.TESTED_DIALECTS
        if not sa.inspect(self._engine).has_table("latest_metrics"):
            # A new database: MLflow creates its own tables, as the first client call would.
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            SqlAlchemyStore(settings.tracking_uri, str(settings.artifacts_dir)).engine.dispose()
        if self._sql_ok:
            _sql.ensure_indexes(self._engine)

    def close(self) -> None:
        """Release the connection pool (and the fallback client's)."""
        self._engine.dispose()

    @property
    def _fallback(self) -> ClientRunStore:
        if self._fallback_store is None:
            self._fallback_store = ClientRunStore(self._settings)
        return self._fallback_store

    def _connect(self) -> sa.Connection:
        return self._engine.connect()

    def _experiment_ids(self, conn: sa.Connection, experiment_ids: Sequence[str]) -> list[int]:
        from flowscope.analysis import _sql

        wanted = _experiment_ints(experiment_ids)
        found = {int(row["experiment_id"]) for row in _sql.experiment_rows(conn, wanted)}
        missing = [str(i) for i in wanted if i not in found]
        if missing:
            raise NotFoundError(f"no active experiment with id {', '.join(missing)}")
        return wanted

    def _conditions(
        self,
        conn: sa.Connection,
        experiment_ids: Sequence[str],
        kind: str | None,
        filter_string: str,
    ) -> list[Any]:
        from flowscope.analysis import _sql

        check_kind(kind)
        parsed = _sql.parse_filter(filter_string)
        clauses = _sql.filter_clauses(parsed, self._dialect)
        if not self._sql_ok:
            raise _sql.Unsupported(f"the {self._dialect} dialect")
        return _sql.run_conditions(self._experiment_ids(conn, experiment_ids), kind, clauses)

    def experiments(self) -> list[dict[str, Any]]:
        """Active experiments with their run counts by kind, newest first."""
        from flowscope.analysis import _sql

        with self._connect() as conn:
            return _sql.experiment_rows(conn)

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        """One active experiment with its run counts; :class:`NotFoundError` otherwise."""
        from flowscope.analysis import _sql

        with self._connect() as conn:
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
        import sqlalchemy as sa
        from mlflow.store.tracking.dbmodels.models import SqlRun

        from flowscope.analysis import _sql

        check_page(page, page_size)
        order = _sql.parse_order_by(order_by or [])
        try:
            with self._connect() as conn:
                conditions = self._conditions(conn, experiment_ids, kind, filter_string)
                total = conn.scalar(
                    sa.select(sa.func.count()).select_from(SqlRun).where(*conditions)
                )
                stmt = _sql.ordered_ids(conditions, order, (page - 1) * page_size, page_size)
                ids = list(conn.scalars(stmt))
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
        return RunPage(rows, int(total or 0), page, page_size, list(order_by or []))

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
        import sqlalchemy as sa
        from mlflow.store.tracking.dbmodels.models import SqlRun

        from flowscope.analysis import _sql

        if metric is not None:
            metric_summary(metric, direction, [])  # a bad direction fails before any query
        try:
            with self._connect() as conn:
                conditions = self._conditions(conn, experiment_ids, kind, filter_string)
                tag, kind_value = _sql.kind_column()
                counts = _sql.join_kind(
                    sa.select(kind_value, sa.func.count()).select_from(SqlRun), tag
                )
                by_kind = dict(conn.execute(counts.where(*conditions).group_by(kind_value)).all())
                stats = None
                if metric is not None:
                    stats = _sql.metric_stats(conn, conditions, metric)
        except _sql.Unsupported:
            return self._fallback.summary(
                experiment_ids,
                kind=kind,
                filter_string=filter_string,
                metric=metric,
                direction=direction,
            )
        summary: dict[str, Any] = {
            "total": sum(by_kind.values()),
            "by_kind": dict(sorted(by_kind.items())),
            "metric": None,
        }
        if metric is not None and stats is not None:
            count, mean, low, high = stats
            described = metric_summary(metric, direction, [])
            if count:
                described.update(count=count, mean=mean, min=low, max=high)
                described["best"] = high if described["direction"] == "max" else low
            summary["metric"] = described
        return summary

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
        the earliest start. ``value`` "min"/"max" scores each run by its metric history.
        ``ranking`` holds the winner and runners-up only."""
        import sqlalchemy as sa
        from mlflow.store.tracking.dbmodels.models import SqlRun

        from flowscope.analysis import _sql

        direction = check_best(metric, direction, value, runners_up)
        constraints = filter_string or None
        try:
            with self._connect() as conn:
                conditions = self._conditions(conn, experiment_ids, kind, filter_string)
                score = _sql.metric_value(metric, value).label("score")
                scored = sa.select(SqlRun.run_uuid, SqlRun.start_time, score).where(*conditions)
                scored = scored.subquery()
                ranked = (
                    sa.select(scored.c.run_uuid, scored.c.score)
                    .where(scored.c.score.is_not(None))
                    .order_by(
                        scored.c.score.desc() if direction == "max" else scored.c.score,
                        sa.func.coalesce(scored.c.start_time, 0),
                        scored.c.start_time.desc(),
                        scored.c.run_uuid,
                    )
                    .limit(1 + runners_up)
                )
                top = conn.execute(ranked).all()
                considered, with_metric, sharing = 0, 0, 0
                if top:
                    considered, with_metric, sharing = conn.execute(
                        sa.select(
                            sa.func.count(),
                            sa.func.count(scored.c.score),
                            sa.func.count(sa.case((scored.c.score == top[0].score, 1))),
                        )
                    ).one()
                else:
                    considered = conn.scalar(sa.select(sa.func.count()).select_from(scored))
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
        if not top:
            raise no_metric_error(metric, constraints, int(considered or 0))
        ranking = [make_row(**runs[row.run_uuid]) for row in top]
        return BestRun(
            metric=metric,
            direction=direction,
            constraints=constraints,
            winner=ranking[0],
            value=float(top[0].score),
            runners_up=ranking[1:],
            considered=int(considered),
            without_metric=int(considered) - int(with_metric),
            tie_break=tie_break(metric, float(top[0].score), int(sharing)),
            ranking=ranking,
        )

    def runs(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Full rows of these active runs, in the order asked; :class:`NotFoundError` names
        the ids that are unknown or deleted."""
        from flowscope.analysis import _sql

        wanted = list(dict.fromkeys(run_ids))
        with self._connect() as conn:
            runs = _sql.fetch_runs(conn, wanted)
        missing = [run_id for run_id in wanted if run_id not in runs]
        if missing:
            raise NotFoundError(f"no active run with id {', '.join(map(repr, missing))}")
        return [make_row(**runs[run_id]) for run_id in wanted]

    def keys(self, experiment_ids: list[str], kind: str | None = None) -> dict[str, list[str]]:
        """The param, metric and tag names present in these experiments' active runs (tags
        as the rows show them)."""
        import sqlalchemy as sa
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun, SqlTag
        from sqlalchemy.orm import aliased

        from flowscope.analysis import _sql

        try:
            with self._connect() as conn:
                conditions = self._conditions(conn, experiment_ids, kind, "")
                found = {}
                for name, entity in (
                    ("params", SqlParam),
                    ("metrics", SqlLatestMetric),
                    ("tags", SqlTag),
                ):
                    # An alias, or the EXISTS of a kind filter would correlate with it.
                    table = aliased(entity)
                    stmt = (
                        sa.select(table.key)
                        .distinct()
                        .join(SqlRun, SqlRun.run_uuid == table.run_uuid)
                        .where(*conditions)
                    )
                    found[name] = sorted(conn.scalars(stmt))
        except _sql.Unsupported:
            return self._fallback.keys(experiment_ids, kind)
        found["tags"] = [key for key in found["tags"] if shown_tag(key)]
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
            self.experiment_entity(experiment_id)
        return [str(i) for i in experiment_ids]

    def experiment_entity(self, experiment_id: str) -> Any:
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

        from flowscope.analysis import _sql

        check_kind(kind)
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

        experiments = []
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
        return self._describe(self.experiment_entity(experiment_id))

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
        check_page(page, page_size)
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
            metric_summary(metric, direction, [])
        runs = self._all_runs(experiment_ids, kind, filter_string)
        by_kind: dict[str, int] = {}
        for run in runs:
            run_kind = str(run.data.tags.get(KIND_TAG, DEFAULT_KIND))
            by_kind[run_kind] = by_kind.get(run_kind, 0) + 1
        stats = None
        if metric is not None:
            values = [run.data.metrics[metric] for run in runs if metric in run.data.metrics]
            stats = metric_summary(metric, direction, values)
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
        direction = check_best(metric, direction, value, runners_up)
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
        ranking = [originals[row["run_id"]] for row in result.ranking[: 1 + runners_up]]
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
            tags.update(key for key in run.data.tags if shown_tag(key))
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
