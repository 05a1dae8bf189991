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
from typing import TYPE_CHECKING, Any, NamedTuple

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
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from flowscope.analysis._rows import PARENT_RUN_TAG, mean
from flowscope.errors import FlowscopeError
from flowscope.tracking.kinds import DEFAULT_KIND, KIND_TAG

if TYPE_CHECKING:
    from flowscope.config import Settings

_log = logging.getLogger(__name__)

ACTIVE = "active"
# Dialects whose translation is tested against MLflow's answers; others go to the client.
TESTED_DIALECTS = ("sqlite", "postgresql")
# SQLite allows 32,766 bound parameters a statement (999 before 3.32); stay far below.
_CHUNK = 500

# A run is of another kind than the default when its kind tag says so; written out (not
# bound) in the queries that use it, so that PostgreSQL matches them to the partial index.
OTHER_KINDS_PREDICATE = f"key = '{KIND_TAG}' AND (value IS NULL OR value <> '{DEFAULT_KIND}')"

# What the dashboard needs that MLflow's own indexes do not give: the runs table has no
# index on experiment_id, so every query on one experiment scans the runs of all of them.
# And latest_metrics is keyed (key, run_uuid): the best runs by a metric, or the first
# page sorted by it, read every run's value and sort them all. Ordered by value, the top
# ones are a short walk down the index, and the counts over all values read the index
# alone (PostgreSQL's index-only scans) instead of the table. Prefixed ``flowscope_``; a
# migration that rebuilds a table drops them, and the next start makes them again. On
# PostgreSQL they are built CONCURRENTLY: MLflow's writes go on meanwhile. (The price: a
# latest value's update writes this index too, where it was a heap-only update.)
INDEXES: dict[str, tuple[str, str, str | None]] = {  # name: table, columns, partial
    "flowscope_runs_experiment": (
        "runs",
        "experiment_id, lifecycle_stage, start_time",
        None,
    ),
    "flowscope_latest_metrics_value": (
        "latest_metrics",
        "key, value, run_uuid, is_nan",
        None,
    ),
    # the runs of a kind other than training: counting runs by kind counts all runs (an
    # index-only count) and these few, instead of reading every run's kind tag
    "flowscope_tags_other_kinds": ("tags", "run_uuid", OTHER_KINDS_PREDICATE),
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
    """Runs of ``kind``; a run without the kind tag is a training run. Both sides look
    only at the runs of other kinds (:data:`OTHER_KINDS_PREDICATE`, a partial index)."""
    tag = aliased(SqlTag)
    other: Any = sa.select(tag.run_uuid).where(
        tag.run_uuid == SqlRun.run_uuid, _of_other_kinds(tag)
    )
    if kind == DEFAULT_KIND:
        return ~other.exists()
    return other.where(tag.value == kind).exists()


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
    *,
    leading_values_only: bool = False,
) -> sa.Select[Any]:
    """Run ids in MLflow's order for ``order_by``, one page of them.

    As in ``_get_orderby_clauses``: every key sorts first on a CASE that puts missing values
    last (and NaN metrics just before them) whatever the direction, then on its value; then
    ``start_time DESC`` unless it was given, and ``run_uuid``.

    ``leading_values_only`` (the first key a metric) keeps only the runs with a non-NaN
    value of it, which that CASE puts first in the same order: the page is a walk down
    the metric's value index instead of a sort of every run. It is the whole answer when
    it fills the page (see :func:`page_of_ids`).
    """
    stmt: Any = sa.select(SqlRun.run_uuid).select_from(SqlRun)
    clauses: list[Any] = []
    for position, (key_type, key, ascending) in enumerate(order_by):
        if key_type == "attribute":
            value = getattr(SqlRun, SqlRun.get_attribute_name(key))
            missing = sa.case((value.is_(None), 1), else_=0)
        else:
            entity: Any = {"metric": SqlLatestMetric, "parameter": SqlParam, "tag": SqlTag}
            joined = aliased(entity[key_type])
            on = sa.and_(joined.run_uuid == SqlRun.run_uuid, joined.key == key)
            if leading_values_only and position == 0 and key_type == "metric":
                stmt = stmt.join(joined, sa.and_(on, joined.is_nan == sa.false()))
                clauses.append(joined.value if ascending else joined.value.desc())
                continue
            stmt = stmt.outerjoin(joined, on)
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


def page_of_ids(
    conn: sa.Connection,
    conditions: Sequence[sa.ColumnElement[bool]],
    order_by: Sequence[tuple[str, str, bool]],
    offset: int,
    limit: int,
) -> list[str]:
    """One page of :func:`ordered_ids`. Sorted by a metric first, the runs with a value of
    it come first: when they fill the page it is read from them alone, and only a page
    reaching past them sorts every run."""
    if order_by and order_by[0][0] == "metric":
        leading = ordered_ids(conditions, order_by, offset, limit, leading_values_only=True)
        ids = list(conn.scalars(leading))
        if len(ids) == limit:
            return ids
    return list(conn.scalars(ordered_ids(conditions, order_by, offset, limit)))


def history_value(metric: str, aggregate: str, dialect: str) -> sa.ColumnElement[Any]:
    """The min or max of a run's points of ``metric``, NaN left out (NULL if none)."""
    key: Any = SqlMetric.key
    if dialect == "sqlite":
        # Without statistics SQLite looks a run's points up through the primary key, which
        # starts with the metric's key: every point of that metric in the database, for each
        # run (13 s at 10,000 runs). "+key" is SQLite's way to keep it on the run_uuid index.
        key = UnaryExpression(key, operator=operators.custom_op("+"), type_=key.type)
    return (
        sa.select(getattr(sa.func, aggregate)(SqlMetric.value))
        .where(SqlMetric.run_uuid == SqlRun.run_uuid, key == metric, SqlMetric.is_nan == sa.false())
        .scalar_subquery()
    )


def best_ranking(
    conditions: Sequence[sa.ColumnElement[bool]],
    metric: str,
    value: str,
    direction: str,
    limit: int,
    dialect: str,
) -> sa.Select[Any]:
    """The top ``limit`` runs by score in the order of :func:`flowscope.analysis.best.rank_key`
    (best score, earliest start with none as 0, smaller run id), each with the counts
    ``ranked_result`` needs: runs considered, runs with a score, runs sharing this score.
    One pass over the runs. (By the latest value, :func:`best_by_latest` is faster.)"""
    history = history_value(metric, value, dialect).label("score")
    runs = sa.select(SqlRun.run_uuid, SqlRun.start_time, history).where(*conditions).subquery()
    score = runs.c.score
    return (
        sa.select(
            runs.c.run_uuid,
            score,
            sa.func.count().over().label("considered"),
            sa.func.count(score).over().label("with_metric"),
            sa.func.count().over(partition_by=score).label("sharing"),
        )
        .order_by(
            score.is_(None),
            score.desc() if direction == "max" else score,
            sa.func.coalesce(runs.c.start_time, 0),
            runs.c.run_uuid,
        )
        .limit(limit)
    )


class Ranked(NamedTuple):
    """A ranked run, with the counts of the whole ranking (``sharing``: the runs sharing
    the winner's score)."""

    run_uuid: str
    score: float
    considered: int
    with_metric: int
    sharing: int


def best_by_latest(
    conn: sa.Connection,
    conditions: Sequence[sa.ColumnElement[bool]],
    metric: str,
    direction: str,
    limit: int,
    counts: bool = True,
) -> tuple[list[Ranked], int | None]:
    """What :func:`best_ranking` gives by the latest value of ``metric`` (the runs with a
    score, and how many runs were considered), in three short queries instead of a sort of
    every run: the top ``limit`` walk down the metric's value index, the two counts read
    it alone, and the runs sharing the winner's score are looked up by that value.

    Without ``counts``, the two counts are left out (``None``; each run's are its rank's
    lower bound): they read every matching run, which is most of the time at 100,000
    runs, and a caller asking only for the winner (as ``search_runs`` does) need not wait
    for them. With no run scored they are counted anyway, for the error to name."""
    ranking: Any = sa.select(SqlRun.run_uuid, SqlRun.start_time).select_from(SqlRun)
    top_query, joined = latest_metric_join(ranking, metric)
    score = joined.value
    top = conn.execute(
        top_query.add_columns(score.label("score"))
        .where(*conditions)
        .order_by(
            score.desc() if direction == "max" else score,
            sa.func.coalesce(SqlRun.start_time, 0),
            SqlRun.run_uuid,
        )
        .limit(limit)
    ).all()
    counting: Any = sa.select(sa.func.count()).select_from(SqlRun)
    considered, with_metric = len(top), len(top)
    if counts or not top:
        counted, joined = latest_metric_join(counting, metric, outer=True)
        considered, with_metric = conn.execute(
            counted.add_columns(sa.func.count(joined.value)).where(*conditions)
        ).one()
    if not top:
        return [], int(considered)
    sharing_query, joined = latest_metric_join(counting, metric)
    sharing = int(conn.scalar(sharing_query.where(*conditions, joined.value == top[0].score)) or 0)
    # three statements, three snapshots: a run logged in between must not make the counts
    # smaller than what the top itself shows
    sharing = max(sharing, sum(row.score == top[0].score for row in top))
    with_metric = max(int(with_metric), len(top))
    considered = max(int(considered), int(with_metric))
    ranked = [
        Ranked(row.run_uuid, float(row.score), int(considered), int(with_metric), sharing)
        for row in top
    ]
    return ranked, int(considered) if counts else None


def latest_metric_join(
    stmt: sa.Select[Any], metric: str, *, outer: bool = False
) -> tuple[sa.Select[Any], Any]:
    """``stmt`` joined to the latest non-NaN value of ``metric``."""
    joined = aliased(SqlLatestMetric)
    stmt = (stmt.outerjoin if outer else stmt.join)(
        joined,
        sa.and_(
            joined.run_uuid == SqlRun.run_uuid,
            joined.key == metric,
            joined.is_nan == sa.false(),
        ),
    )
    return stmt, joined


def count_runs(conn: sa.Connection, conditions: Sequence[sa.ColumnElement[bool]]) -> int:
    stmt: Any = sa.select(sa.func.count()).select_from(SqlRun).where(*conditions)
    return int(conn.scalar(stmt) or 0)


def present_keys(
    conn: sa.Connection, conditions: Sequence[sa.ColumnElement[bool]]
) -> dict[str, list[str]]:
    """The param, latest-metric and tag names of the runs, sorted.

    Each table is keyed (key, run_uuid): its distinct keys are a skip down that index (a
    recursive query asking for the next key after each), and each key is kept when a
    matching run has it, found by the same index. A DISTINCT over every run's rows read
    all of them (0.5 s at 100,000 runs on PostgreSQL)."""
    found = {}
    for name, entity in (("params", SqlParam), ("metrics", SqlLatestMetric), ("tags", SqlTag)):
        found[name] = sorted(conn.scalars(_present_keys_of(entity, conditions)))
    return found


def _present_keys_of(entity: Any, conditions: Sequence[sa.ColumnElement[bool]]) -> Any:
    # Aliases throughout: the EXISTS of a filter on this table must correlate with the
    # run, not with these.
    first = aliased(entity)
    keys = sa.select(sa.func.min(first.key).label("key")).cte("present_keys", recursive=True)
    following = aliased(entity)
    after = (
        sa.select(sa.func.min(following.key)).where(following.key > keys.c.key).scalar_subquery()
    )
    keys = keys.union_all(sa.select(after).where(keys.c.key.is_not(None)))
    holder = aliased(entity)
    # a scalar subquery with LIMIT 1, not EXISTS: PostgreSQL would turn EXISTS into one
    # join over every row of the table; this it asks key by key, stopping at the first run
    one_run = (
        sa.select(holder.run_uuid)
        .join(SqlRun, SqlRun.run_uuid == holder.run_uuid)
        .where(holder.key == keys.c.key, *conditions)
        .limit(1)
        .scalar_subquery()
    )
    return sa.select(keys.c.key).where(keys.c.key.is_not(None), one_run.is_not(None))


def kind_counts(
    conn: sa.Connection,
    conditions: Sequence[sa.ColumnElement[bool]],
    *extra: Any,
    by_experiment: bool = False,
    metric: str | None = None,
) -> tuple[dict[Any, dict[str, int]], list[Any]]:
    """Runs per kind (per experiment with ``by_experiment``, else under the key None), and
    the rows of the count of all runs with the ``extra`` aggregates asked for.

    The runs of other kinds than training are few and indexed
    (``flowscope_tags_other_kinds``): counted alone and taken from the count of all runs
    (an index-only count), instead of reading every run's kind tag. With ``metric``, the
    count of all runs is joined to its latest non-NaN value, which ``extra`` may use as
    ``metric_value``, in the same pass."""
    group: list[Any] = [SqlRun.experiment_id] if by_experiment else []
    base: Any = sa.select(*group, sa.func.count().label("runs")).select_from(SqlRun)
    if metric is not None:
        base, joined = latest_metric_join(base, metric, outer=True)
        extra = tuple(aggregate(joined.value) for aggregate in extra)
    totals = conn.execute(base.add_columns(*extra).where(*conditions).group_by(*group)).all()
    tag = aliased(SqlTag)
    others = conn.execute(
        sa.select(*group, tag.value, sa.func.count())
        .select_from(SqlRun)
        .join(tag, sa.and_(tag.run_uuid == SqlRun.run_uuid, _of_other_kinds(tag)))
        .where(*conditions)
        .group_by(*group, tag.value)
    ).all()
    counts: dict[Any, dict[str, int]] = defaultdict(dict)
    for row in others:
        key = row[0] if by_experiment else None
        counts[key][row[-2]] = int(row[-1])
    for row in totals:
        key = row.experiment_id if by_experiment else None
        rest = int(row.runs) - sum(counts[key].values())
        if rest:
            counts[key][DEFAULT_KIND] = rest
    return {key: dict(sorted(kinds.items())) for key, kinds in counts.items()}, list(totals)


def _of_other_kinds(tag: Any) -> sa.ColumnElement[bool]:
    """:data:`OTHER_KINDS_PREDICATE` on the alias ``tag`` of the tags table, its constants
    written out."""
    return sa.and_(
        tag.key == sa.literal_column(f"'{KIND_TAG}'"),
        sa.or_(tag.value.is_(None), tag.value != sa.literal_column(f"'{DEFAULT_KIND}'")),
    )


def run_summary(
    conn: sa.Connection, conditions: Sequence[sa.ColumnElement[bool]], metric: str | None
) -> tuple[dict[str, int], tuple[int, float | None, float | None, float | None]]:
    """Runs per kind (:func:`kind_counts`), and count, mean, min and max of the latest
    non-NaN values of ``metric`` over the runs, in the same pass as the count of all."""
    if metric is None:
        return kind_counts(conn, conditions)[0].get(None, {}), (0, None, None, None)
    # sum, not avg: PostgreSQL's avg also sums squares, which overflow near 1.8e308 (where
    # MLflow stores an infinite metric) long before the mean does.
    aggregates = (sa.func.count, sa.func.sum, sa.func.min, sa.func.max)
    try:
        counts, totals = kind_counts(conn, conditions, *aggregates, metric=metric)
    except sa.exc.DataError:  # a sum overflows: add the values up in Python, as pandas does
        conn.rollback()
        values, joined = latest_metric_join(sa.select().select_from(SqlRun), metric)
        found = [
            float(v) for v in conn.scalars(values.add_columns(joined.value).where(*conditions))
        ]
        by_kind = kind_counts(conn, conditions)[0].get(None, {})
        return by_kind, (len(found), mean(found), min(found), max(found))
    by_kind = counts.get(None, {})
    row: Any = totals[0] if totals else (0, 0, None, None, None)
    _, count, total, low, high = row
    if not count:
        return by_kind, (0, None, None, None)
    return by_kind, (int(count), float(total) / int(count), float(low), float(high))


def grouped_counts(
    conn: sa.Connection, conditions: Sequence[sa.ColumnElement[bool]], by: Sequence[str]
) -> dict[tuple[str | None, ...], int]:
    """How many runs share each combination of the ``by`` columns (``status`` or
    ``tags.<key>``, None where a run lacks the tag), in one grouped pass."""
    columns: list[Any] = []
    stmt: Any = sa.select(SqlRun.run_uuid).select_from(SqlRun)
    for item in by:
        if item == "status":
            columns.append(SqlRun.status)
            continue
        key = item.removeprefix("tags.").strip("`")
        tag = aliased(SqlTag)
        stmt = stmt.outerjoin(tag, sa.and_(tag.run_uuid == SqlRun.run_uuid, tag.key == key))
        columns.append(tag.value)
    stmt = stmt.with_only_columns(*columns, sa.func.count()).where(*conditions).group_by(*columns)
    return {tuple(row[:-1]): int(row[-1]) for row in conn.execute(stmt)}


def metric_points(
    conn: sa.Connection, run_ids: Sequence[str], key: str, dialect: str
) -> dict[str, list[tuple[int, float]]]:
    """Every ``(step, value)`` of metric ``key`` of each run, by step then timestamp (NaN
    as NaN); runs without a point are left out."""
    column: Any = SqlMetric.key
    if dialect == "sqlite":  # on the run_uuid index, as in history_value
        column = UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)
    points: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for chunk in chunks(run_ids):
        stmt: Any = (
            sa.select(SqlMetric.run_uuid, SqlMetric.step, SqlMetric.value, SqlMetric.is_nan)
            .where(SqlMetric.run_uuid.in_(chunk), column == key)
            .order_by(SqlMetric.run_uuid, SqlMetric.step, SqlMetric.timestamp)
        )
        for run_uuid, step, value, is_nan in conn.execute(stmt):
            points[run_uuid].append((int(step), float("nan") if is_nan else float(value)))
    return dict(points)


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _rows(conn: sa.Connection, stmt: Any) -> list[Any]:
    return list(conn.execute(stmt))


def fetch_runs(
    conn: sa.Connection, run_ids: Sequence[str], tags: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Attributes, params, latest metrics and tags of the active runs among ``run_ids``;
    with ``tags``, only those tags (with the kind and parent tags every row shows)."""
    tag_keys = None if tags is None else sorted({*tags, KIND_TAG, PARENT_RUN_TAG, MLFLOW_RUN_NAME})
    runs: dict[str, dict[str, Any]] = {}
    for chunk in chunks(run_ids):
        for row in _rows(
            conn,
            sa.select(
                SqlRun.run_uuid,
                SqlRun.name,
                SqlRun.experiment_id,
                SqlRun.user_id,
                SqlRun.status,
                SqlRun.start_time,
                SqlRun.end_time,
            ).where(SqlRun.run_uuid.in_(chunk), SqlRun.lifecycle_stage == ACTIVE),
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
        for run_uuid, key, value in _rows(
            conn,
            sa.select(SqlParam.run_uuid, SqlParam.key, SqlParam.value).where(
                SqlParam.run_uuid.in_(chunk)
            ),
        ):
            runs[run_uuid]["params"][key] = value
        for run_uuid, key, value, is_nan in _rows(
            conn,
            sa.select(
                SqlLatestMetric.run_uuid,
                SqlLatestMetric.key,
                SqlLatestMetric.value,
                SqlLatestMetric.is_nan,
            ).where(SqlLatestMetric.run_uuid.in_(chunk)),
        ):
            runs[run_uuid]["metrics"][key] = float("nan") if is_nan else float(value)
        wanted_tags: Any = sa.select(SqlTag.run_uuid, SqlTag.key, SqlTag.value).where(
            SqlTag.run_uuid.in_(chunk)
        )
        if tag_keys is not None:
            wanted_tags = wanted_tags.where(SqlTag.key.in_(tag_keys))
        for run_uuid, key, value in _rows(conn, wanted_tags):
            runs[run_uuid]["tags"][key] = value
    for run in runs.values():
        # As SqlRun.to_mlflow_entity: runs logged by MLflow <= 1.29 have only the tag.
        if not run["run_name"] and run["tags"].get(MLFLOW_RUN_NAME):
            run["run_name"] = run["tags"][MLFLOW_RUN_NAME]
    return runs


def experiment_id_named(conn: sa.Connection, name: str) -> str | None:
    """The id of the active experiment called ``name``, if there is one."""
    stmt: Any = sa.select(SqlExperiment.experiment_id).where(
        SqlExperiment.name == name, SqlExperiment.lifecycle_stage == ACTIVE
    )
    found = conn.scalar(stmt)
    return None if found is None else str(found)


def active_experiments(conn: sa.Connection, experiment_ids: Sequence[int]) -> set[int]:
    stmt: Any = sa.select(SqlExperiment.experiment_id).where(
        SqlExperiment.experiment_id.in_(experiment_ids), SqlExperiment.lifecycle_stage == ACTIVE
    )
    return set(conn.scalars(stmt))


def experiment_rows(
    conn: sa.Connection, experiment_ids: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """Active experiments (all, or those among ``experiment_ids``) with their run counts,
    newest first as ``search_experiments`` lists them."""
    stmt: Any = sa.select(
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
    by_kind, totals = kind_counts(
        conn,
        [SqlRun.experiment_id.in_(list(experiments)), SqlRun.lifecycle_stage == ACTIVE],
        sa.func.max(SqlRun.start_time).label("last_start"),
        sa.func.max(SqlRun.end_time).label("last_end"),
        by_experiment=True,
    )
    for row in totals:
        experiment = experiments[row.experiment_id]
        experiment["runs"] = int(row.runs)
        experiment["by_kind"] = by_kind.get(row.experiment_id, {})
        times = [t for t in (row.last_start, row.last_end) if t]
        experiment["last_activity"] = max(times) if times else None
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


def open_engine(settings: Settings) -> sa.Engine:
    """An engine on the tracking database, with MLflow's tables and flowscope's indexes.

    A new store is created the one way every part of flowscope creates it, whole and under
    a lock (:func:`flowscope.tracking.opening.ensure_store`); running MLflow's migrations here
    would let a dashboard started beside a training script leave a half-migrated store."""
    from flowscope.tracking.opening import ensure_store

    ensure_store(settings)
    engine = create_engine(settings.tracking_uri)
    if engine.dialect.name in TESTED_DIALECTS:
        ensure_indexes(engine)
    return engine


# PostgreSQL: one process builds flowscope's indexes at a time. Two concurrent builds on
# one table deadlock (each waits for the other's transaction), leaving an invalid index.
INDEX_BUILD_LOCK = 0x666C6F77  # a pg_try_advisory_lock key: "flow"


def ensure_indexes(engine: sa.Engine) -> None:
    """Create flowscope's few indexes in MLflow's database, once; a failure (no right to
    create indexes, a concurrent creator) only costs speed."""
    if engine.dialect.name != "postgresql":
        present = _present_indexes(engine)
        for name, made in _index_statements():
            if name not in present:
                _create_index(engine, name, f"CREATE INDEX IF NOT EXISTS {made}")
        return
    with engine.connect() as guard:
        guard = guard.execution_options(isolation_level="AUTOCOMMIT")
        # without waiting: another process (a server's other worker) is building them, and
        # queries are correct meanwhile, only slower
        if not guard.scalar(sa.text(f"SELECT pg_try_advisory_lock({INDEX_BUILD_LOCK})")):
            return
        try:
            present = _present_indexes(engine)
            usable = _valid_postgres_indexes(engine)
            for name, made in _index_statements():
                if name in usable:
                    continue
                # outside a transaction, without blocking MLflow's writes; a build cut
                # short leaves an invalid index of that name, dropped and built again
                drop = f"DROP INDEX CONCURRENTLY IF EXISTS {name}" if name in present else None
                _create_index(engine, name, f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {made}", drop)
        finally:
            guard.execute(sa.text(f"SELECT pg_advisory_unlock({INDEX_BUILD_LOCK})"))


def _index_statements() -> Iterator[tuple[str, str]]:
    for name, (table, columns, where) in INDEXES.items():
        yield name, f"{name} ON {table} ({columns})" + (f" WHERE {where}" if where else "")


def _present_indexes(engine: sa.Engine) -> set[str]:
    inspector = sa.inspect(engine)
    return {
        str(index["name"])
        for table in {table for table, _, _ in INDEXES.values()}
        for index in inspector.get_indexes(table)
    }


def _create_index(engine: sa.Engine, name: str, create: str, drop: str | None = None) -> None:
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            if drop:
                conn.execute(sa.text(drop))
            conn.execute(sa.text(create))
    except sa.exc.SQLAlchemyError as exc:
        _log.warning("could not create index %s (queries stay correct, only slower): %s", name, exc)


def _valid_postgres_indexes(engine: sa.Engine) -> set[str]:
    """The names of flowscope's indexes that PostgreSQL has built whole."""
    with engine.connect() as conn:
        return set(
            conn.scalars(
                sa.text(
                    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE i.indisvalid AND c.relname LIKE 'flowscope%'"
                )
            )
        )
