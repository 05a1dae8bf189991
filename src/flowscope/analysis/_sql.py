"""SQL pieces of :class:`flowscope.analysis.query.SqlRunStore`, built on MLflow's own table models.

Filters and orderings are translated clause by clause the way
``SqlAlchemyStore._search_runs`` translates them (same comparison functions, same NaN and
NULL placement, same tie-breakers), so the answers are MLflow's; only the shape of the query
differs: EXISTS instead of joined subqueries and DISTINCT, LIMIT before any run is loaded,
and params, metrics and tags read for the page's runs alone.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.dbmodels.models import (
    SqlExperiment,
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.search_utils import SearchUtils
from sqlalchemy.orm import aliased

from flowscope.analysis.runs import DEFAULT_KIND, KIND_TAG
from flowscope.errors import FlowscopeError

_log = logging.getLogger(__name__)

ACTIVE = "active"
# Dialects whose translation is tested against MLflow's answers; others go to the client.
TESTED_DIALECTS = ("sqlite", "postgresql")
# SQLite allows 32,766 bound parameters a statement (999 before 3.32); stay far below.
_CHUNK = 500

# What the dashboard needs that MLflow's own indexes do not give: the runs table has no
# index on experiment_id, so every query on one experiment scans the runs of all of them.
# Prefixed ``flowscope_`` and built only on columns MLflow's migrations have never changed.
INDEXES = {
    "flowscope_runs_experiment": (
        "runs",
        "experiment_id, lifecycle_stage, start_time",
    ),
}


class Unsupported(Exception):
    """A filter the SQL translation does not cover; the call goes to MLflow's client."""


def bad_filter(exc: MlflowException) -> FlowscopeError:
    return FlowscopeError(f"bad filter: {exc.message}")


def parse_filter(filter_string: str) -> list[dict[str, Any]]:
    """MLflow's own parse of a filter string; its error message on bad input."""
    try:
        return list(SearchUtils.parse_search_filter(filter_string))
    except MlflowException as exc:
        raise bad_filter(exc) from None


def parse_order_by(order_by: Sequence[str]) -> list[tuple[str, str, bool]]:
    """``(key_type, key, ascending)`` per item, rejected as ``_get_orderby_clauses`` rejects."""
    parsed: list[tuple[str, str, bool]] = []
    seen: set[tuple[str, str]] = set()
    for item in order_by:
        try:
            key_type, key, ascending = SearchUtils.parse_order_by_for_search_runs(item)
        except MlflowException as exc:
            raise FlowscopeError(f"bad order_by {item!r}: {exc.message}") from None
        key = SearchUtils.translate_key_alias(key)
        if key_type not in ("attribute", "metric", "parameter", "tag"):
            raise FlowscopeError(f"bad order_by {item!r}: Invalid identifier type '{key_type}'")
        if (key_type, key) in seen:
            raise FlowscopeError(
                f"bad order_by {item!r}: `order_by` contains duplicate fields: {list(order_by)}"
            )
        seen.add((key_type, key))
        parsed.append((key_type, key, ascending))
    return parsed


def _exists(entity: Any, *conditions: Any) -> sa.Exists:
    return (
        sa.select(entity.run_uuid).where(entity.run_uuid == SqlRun.run_uuid, *conditions).exists()
    )


def filter_clauses(parsed: Iterable[dict[str, Any]], dialect: str) -> list[sa.ColumnElement[bool]]:
    """WHERE conditions on ``runs`` for MLflow's parsed filter, one per comparison.

    Each mirrors ``_get_sqlalchemy_filter_clauses``: run names compare the ``mlflow.runName``
    tag, metrics compare the latest value and never match NaN except with ``!=``.
    """
    clauses: list[sa.ColumnElement[bool]] = []
    for statement in parsed:
        key_type = statement["type"]
        key = SearchUtils.translate_key_alias(statement["key"])
        value = statement["value"]
        comparator = statement["comparator"].upper()
        compare = SearchUtils.get_sql_comparison_func(comparator, dialect)
        equals = SearchUtils.get_sql_comparison_func("=", dialect)
        try:
            is_attribute = SearchUtils.is_string_attribute(
                key_type, key, comparator
            ) or SearchUtils.is_numeric_attribute(key_type, key, comparator)
            if is_attribute and key == "run_name":
                clauses.append(
                    _exists(
                        SqlTag, equals(SqlTag.key, MLFLOW_RUN_NAME), compare(SqlTag.value, value)
                    )
                )
                continue
            if is_attribute:
                clauses.append(compare(getattr(SqlRun, SqlRun.get_attribute_name(key)), value))
                continue
            if SearchUtils.is_metric(key_type, comparator):
                entity: Any = SqlLatestMetric
                value = float(value)
            elif SearchUtils.is_param(key_type, comparator):
                entity = SqlParam
            elif SearchUtils.is_tag(key_type, comparator):
                entity = SqlTag
            elif SearchUtils.is_dataset(key_type, comparator):
                raise Unsupported(f"dataset filter on {key!r}")
            else:
                raise MlflowException(f"Invalid search expression type '{key_type}'")
        except MlflowException as exc:
            raise bad_filter(exc) from None
        if comparator in ("IS NULL", "IS NOT NULL"):
            present = _exists(entity, entity.key == key)
            clauses.append(~present if comparator == "IS NULL" else present)
            continue
        matches = compare(entity.value, value)
        if entity is SqlLatestMetric:
            # NaN is stored as 0 with is_nan: it satisfies "!=" and nothing else.
            if comparator == "!=":
                matches = sa.or_(matches, entity.is_nan == sa.true())
            else:
                matches = sa.and_(matches, entity.is_nan == sa.false())
        clauses.append(_exists(entity, equals(entity.key, key), matches))
    return clauses


def kind_clause(kind: str) -> sa.ColumnElement[bool]:
    """Runs of ``kind``; a run without the kind tag is a training run."""
    tagged = sa.select(SqlTag.run_uuid).where(
        SqlTag.run_uuid == SqlRun.run_uuid, SqlTag.key == KIND_TAG
    )
    if kind == DEFAULT_KIND:
        return ~tagged.where(sa.or_(SqlTag.value.is_(None), SqlTag.value != kind)).exists()
    return tagged.where(SqlTag.value == kind).exists()


def kind_column() -> tuple[Any, sa.ColumnElement[Any]]:
    """An outer-joinable alias of the kind tag, and the run's kind read from it."""
    tag = aliased(SqlTag)
    kind = sa.case((tag.run_uuid.is_(None), DEFAULT_KIND), else_=tag.value)
    return tag, kind


def join_kind(stmt: sa.Select[Any], tag: Any) -> sa.Select[Any]:
    return stmt.outerjoin(tag, sa.and_(tag.run_uuid == SqlRun.run_uuid, tag.key == KIND_TAG))


def run_conditions(
    experiment_ids: Sequence[int], kind: str | None, clauses: Sequence[sa.ColumnElement[bool]]
) -> list[sa.ColumnElement[bool]]:
    conditions = [
        SqlRun.experiment_id.in_(experiment_ids),
        SqlRun.lifecycle_stage == ACTIVE,
        *clauses,
    ]
    if kind is not None:
        conditions.append(kind_clause(kind))
    return conditions


def ordered_ids(
    conditions: Sequence[sa.ColumnElement[bool]],
    order_by: Sequence[tuple[str, str, bool]],
    offset: int,
    limit: int,
) -> sa.Select[Any]:
    """Run ids in MLflow's order for ``order_by``, one page of them.

    As in ``_get_orderby_clauses``: every key sorts first on a CASE that puts missing values
    last (and NaN metrics just before them) whatever the direction, then on its value; then
    ``start_time DESC`` unless it was given, and ``run_uuid``.
    """
    stmt = sa.select(SqlRun.run_uuid).select_from(SqlRun)
    clauses: list[Any] = []
    for key_type, key, ascending in order_by:
        if key_type == "attribute":
            value = getattr(SqlRun, SqlRun.get_attribute_name(key))
            missing = sa.case((value.is_(None), 1), else_=0)
        else:
            entity = {"metric": SqlLatestMetric, "parameter": SqlParam, "tag": SqlTag}[key_type]
            joined = aliased(entity)
            stmt = stmt.outerjoin(
                joined, sa.and_(joined.run_uuid == SqlRun.run_uuid, joined.key == key)
            )
            value = joined.value
            if key_type == "metric":
                missing = sa.case((joined.is_nan == sa.true(), 1), (value.is_(None), 2), else_=0)
            else:
                missing = sa.case((value.is_(None), 1), else_=0)
        clauses += [missing, value if ascending else value.desc()]
    if ("attribute", "start_time") not in {(key_type, key) for key_type, key, _ in order_by}:
        clauses.append(SqlRun.start_time.desc())
    clauses.append(SqlRun.run_uuid)
    return stmt.where(*conditions).order_by(*clauses).offset(offset).limit(limit)


def metric_value(metric: str, value: str) -> sa.ColumnElement[Any]:
    """A run's score for ``best``: its latest value, or the min or max over its history,
    NaN left out (NULL when it has none)."""
    if value == "last":
        source: Any = SqlLatestMetric
        aggregate = sa.func.max(source.value)  # one row per run and key: the value itself
    else:
        source = SqlMetric
        aggregate = getattr(sa.func, value)(source.value)
    return (
        sa.select(aggregate)
        .where(
            source.run_uuid == SqlRun.run_uuid, source.key == metric, source.is_nan == sa.false()
        )
        .scalar_subquery()
    )


def latest_metric_join(stmt: sa.Select[Any], metric: str) -> tuple[sa.Select[Any], Any]:
    joined = aliased(SqlLatestMetric)
    stmt = stmt.join(
        joined,
        sa.and_(
            joined.run_uuid == SqlRun.run_uuid,
            joined.key == metric,
            joined.is_nan == sa.false(),
        ),
    )
    return stmt, joined


def metric_stats(
    conn: sa.Connection, conditions: Sequence[sa.ColumnElement[bool]], metric: str
) -> tuple[int, float | None, float | None, float | None]:
    """Count, mean, min and max of the latest non-NaN values of ``metric``."""
    from flowscope.analysis.query import mean

    stmt, joined = latest_metric_join(sa.select().select_from(SqlRun), metric)
    stmt = stmt.where(*conditions)
    values = joined.value
    # sum, not avg: PostgreSQL's avg also sums squares, which overflow near 1.8e308 (where
    # MLflow stores an infinite metric) long before the mean does.
    totals = stmt.add_columns(
        sa.func.count(values), sa.func.sum(values), sa.func.min(values), sa.func.max(values)
    )
    try:
        count, total, low, high = conn.execute(totals).one()
    except sa.exc.DataError:  # the sum itself overflows: add up in Python, as pandas does
        conn.rollback()
        found = [float(v) for v in conn.scalars(stmt.add_columns(values))]
        count, total, low, high = len(found), None, min(found), max(found)
        return count, mean(found), low, high
    if not count:
        return 0, None, None, None
    return int(count), float(total) / int(count), float(low), float(high)


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def fetch_runs(conn: sa.Connection, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Attributes, params, latest metrics and tags of the active runs among ``run_ids``."""
    runs: dict[str, dict[str, Any]] = {}
    for chunk in chunks(run_ids):
        for row in conn.execute(
            sa.select(
                SqlRun.run_uuid,
                SqlRun.name,
                SqlRun.experiment_id,
                SqlRun.user_id,
                SqlRun.status,
                SqlRun.start_time,
                SqlRun.end_time,
            ).where(SqlRun.run_uuid.in_(chunk), SqlRun.lifecycle_stage == ACTIVE)
        ):
            runs[row.run_uuid] = {
                "run_id": row.run_uuid,
                "run_name": row.name,
                "experiment_id": str(row.experiment_id),
                "user_id": row.user_id,
                "status": row.status,
                "start_time": row.start_time,
                "end_time": row.end_time,
                "params": {},
                "metrics": {},
                "tags": {},
            }
    found = list(runs)
    for chunk in chunks(found):
        for run_uuid, key, value in conn.execute(
            sa.select(SqlParam.run_uuid, SqlParam.key, SqlParam.value).where(
                SqlParam.run_uuid.in_(chunk)
            )
        ):
            runs[run_uuid]["params"][key] = value
        for run_uuid, key, value, is_nan in conn.execute(
            sa.select(
                SqlLatestMetric.run_uuid,
                SqlLatestMetric.key,
                SqlLatestMetric.value,
                SqlLatestMetric.is_nan,
            ).where(SqlLatestMetric.run_uuid.in_(chunk))
        ):
            runs[run_uuid]["metrics"][key] = float("nan") if is_nan else float(value)
        for run_uuid, key, value in conn.execute(
            sa.select(SqlTag.run_uuid, SqlTag.key, SqlTag.value).where(SqlTag.run_uuid.in_(chunk))
        ):
            runs[run_uuid]["tags"][key] = value
    for run in runs.values():
        # As SqlRun.to_mlflow_entity: runs logged by MLflow <= 1.29 have only the tag.
        if not run["run_name"] and run["tags"].get(MLFLOW_RUN_NAME):
            run["run_name"] = run["tags"][MLFLOW_RUN_NAME]
    return runs


def experiment_rows(
    conn: sa.Connection, experiment_ids: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """Active experiments (all, or those among ``experiment_ids``) with their run counts,
    newest first as ``search_experiments`` lists them."""
    stmt = sa.select(
        SqlExperiment.experiment_id,
        SqlExperiment.name,
        SqlExperiment.creation_time,
    ).where(SqlExperiment.lifecycle_stage == ACTIVE)
    if experiment_ids is not None:
        stmt = stmt.where(SqlExperiment.experiment_id.in_(experiment_ids))
    stmt = stmt.order_by(SqlExperiment.creation_time.desc(), SqlExperiment.experiment_id)
    experiments = {
        row.experiment_id: {
            "experiment_id": str(row.experiment_id),
            "name": row.name,
            "creation_time": row.creation_time,
            "last_activity": None,
            "runs": 0,
            "by_kind": {},
        }
        for row in conn.execute(stmt)
    }
    if not experiments:
        return []
    tag, kind = kind_column()
    counts = join_kind(
        sa.select(
            SqlRun.experiment_id,
            kind.label("kind"),
            sa.func.count().label("runs"),
            sa.func.max(SqlRun.start_time).label("last_start"),
            sa.func.max(SqlRun.end_time).label("last_end"),
        ).select_from(SqlRun),
        tag,
    )
    counts = counts.where(
        SqlRun.experiment_id.in_(list(experiments)), SqlRun.lifecycle_stage == ACTIVE
    ).group_by(SqlRun.experiment_id, kind)
    by_kind: dict[int, dict[str, int]] = defaultdict(dict)
    for row in conn.execute(counts):
        experiment = experiments[row.experiment_id]
        experiment["runs"] += row.runs
        by_kind[row.experiment_id][row.kind] = row.runs
        times = [t for t in (experiment["last_activity"], row.last_start, row.last_end) if t]
        experiment["last_activity"] = max(times) if times else None
    for experiment_id, kinds in by_kind.items():
        experiments[experiment_id]["by_kind"] = dict(sorted(kinds.items()))
    return list(experiments.values())


def create_engine(uri: str) -> sa.Engine:
    """An engine on MLflow's database that compares strings as MLflow's sessions do."""
    engine = sa.create_engine(uri, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _as_mlflow(dbapi_connection: Any, _record: Any) -> None:
            # MLflow sets both on every SQLite session: LIKE is case-sensitive on every
            # other database, and a writer in another process holds the file briefly.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA case_sensitive_like = true")
            cursor.execute("PRAGMA busy_timeout = 20000")
            cursor.close()

    return engine


def ensure_indexes(engine: sa.Engine) -> None:
    """Create flowscope's few indexes in MLflow's database, once; a failure (no right to
    create indexes, a concurrent creator) only costs speed."""
    existing = {
        index["name"]
        for table, _ in INDEXES.values()
        for index in sa.inspect(engine).get_indexes(table)
    }
    for name, (table, columns) in INDEXES.items():
        if name in existing:
            continue
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"))
        except sa.exc.SQLAlchemyError as exc:
            _log.warning(
                "could not create index %s (queries stay correct, only slower): %s", name, exc
            )
