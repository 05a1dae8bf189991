"""Metric points written to MLflow's SQL tables in one statement, with MLflow's own rules.

MLflow's ``SqlAlchemyStore.log_batch`` builds an ORM object per point and flushes them
through the unit of work; 97% of the writer's time goes there, which caps delivery at the
speed of MLflow's own asynchronous logging. This path keeps everything MLflow decides —
its validation of each metric, NaN and infinity handling, the rule for the latest value
(largest ``(step, timestamp, value)``), exact-duplicate points dropped, writes refused on
a deleted run — and changes only how rows reach the tables: one multi-row INSERT that
ignores points already stored (a replay), and one upsert per metric key. It is used for
SQLite and PostgreSQL stores at the versions of MLflow flowscope pins; anything else
goes through ``log_batch`` as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlflow.entities import Metric

SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def supports(store: Any) -> bool:
    """True for a SQLAlchemy store on a database this path knows."""
    engine = getattr(store, "engine", None)
    return engine is not None and engine.dialect.name in SUPPORTED_DIALECTS


def log_metrics(store: Any, run_id: str, metrics: Sequence[Metric]) -> None:
    """Insert ``metrics`` into the run's history and move its latest values, as
    ``store.log_batch(run_id, metrics=metrics)`` would."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
    from mlflow.utils.validation import _validate_metric

    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    latest: dict[str, dict[str, Any]] = {}
    single = len(metrics) == 1
    for index, metric in enumerate(metrics):
        _validate_metric(
            metric.key,
            metric.value,
            metric.timestamp,
            metric.step,
            path="" if single else f"metrics[{index}]",
        )
        is_nan, value = store.sanitize_metric_value(metric.value)
        identity = (metric.key, metric.timestamp, metric.step, value, is_nan)
        if identity in seen:
            continue
        seen.add(identity)
        row = {
            "run_uuid": run_id,
            "key": metric.key,
            "value": value,
            "timestamp": metric.timestamp,
            "step": metric.step,
            "is_nan": is_nan,
        }
        rows.append(row)
        current = latest.get(metric.key)
        if current is None or _newer(row, current):
            latest[metric.key] = row
    if not rows:
        return
    with store.ManagedSessionMaker(read_only=False) as session:
        run = store._get_run(session=session, run_uuid=run_id)
        store._check_run_is_active(run)
        insert = _insert_for(session)
        session.execute(insert(SqlMetric).on_conflict_do_nothing(), rows)
        stored = (
            session.query(SqlLatestMetric)
            .filter(SqlLatestMetric.run_uuid == run_id, SqlLatestMetric.key.in_(sorted(latest)))
            .order_by(SqlLatestMetric.key)
            .with_for_update()  # as MLflow does: concurrent writers of one run serialise here
            .all()
        )
        existing = {row.key: row for row in stored}
        for key, row in latest.items():
            old = existing.get(key)
            if old is None:
                session.add(SqlLatestMetric(**row))
            elif _newer(row, {"step": old.step, "timestamp": old.timestamp, "value": old.value}):
                old.value, old.step = row["value"], row["step"]
                old.timestamp, old.is_nan = row["timestamp"], row["is_nan"]


def _newer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a["step"], a["timestamp"], a["value"]) > (b["step"], b["timestamp"], b["value"])


def _insert_for(session: Any) -> Any:
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert
