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

Short runs that end before they are delivered (a study's trials) take a second path:
:func:`create_finished_runs` creates many such runs in one transaction, with everything
their journals hold, instead of four or more transactions each.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
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

    single = len(metrics) == 1
    for index, metric in enumerate(metrics):
        _validate_metric(
            metric.key,
            metric.value,
            metric.timestamp,
            metric.step,
            path="" if single else f"metrics[{index}]",
        )
    rows, latest = _metric_rows(store, run_id, metrics)
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


@dataclass
class FinishedRun:
    """A run whose whole journal is known and ends: created in one go, already ended."""

    local_id: str
    experiment_id: str
    run_name: str | None
    user: str | None
    start_time: int
    end_time: int
    status: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: list[Metric] = field(default_factory=list)


def check_finished_run(run: FinishedRun) -> None:
    """Raise MLflow's own error if MLflow would refuse any of the run's records."""
    from mlflow.entities import RunStatus
    from mlflow.utils.validation import _validate_metric, _validate_param, _validate_tag

    RunStatus.from_string(run.status)
    for key, value in run.params.items():
        _validate_param(key, value)
    for key, value in run.tags.items():
        _validate_tag(key, value)
    for metric in run.metrics:
        _validate_metric(metric.key, metric.value, metric.timestamp, metric.step)


def create_finished_runs(
    store: Any,
    runs: Sequence[FinishedRun],
    *,
    local_id_tag: str,
    locations: dict[str, str] | None = None,
) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """Create ``runs`` (checked with :func:`check_finished_run`) in one transaction, with
    their tags, params, metric history and latest values, and their end status and time,
    as ``create_run``, ``log_batch`` and ``update_run_info`` would.

    Each run carries its local id in the tag ``local_id_tag``. Returns ``{local id: (run
    id, artifact uri)}`` of the runs created and the local ids of those the store already
    had (an earlier attempt committed them): those are left alone, for the caller to
    replay as usual. ``locations`` keeps the artifact location of each active experiment
    seen, from one call to the next.
    """
    from mlflow.entities import LifecycleStage, SourceType
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
    from mlflow.utils.name_utils import _generate_random_name
    from mlflow.utils.uri import append_to_uri_path

    created: dict[str, tuple[str, str]] = {}
    with store.ManagedSessionMaker(read_only=False) as session:
        existing = {
            value
            for (value,) in session.query(SqlTag.value).filter(
                SqlTag.key == local_id_tag, SqlTag.value.in_([run.local_id for run in runs])
            )
        }
        locations = {} if locations is None else locations
        run_rows: list[dict[str, Any]] = []
        tag_rows: list[dict[str, Any]] = []
        param_rows: list[dict[str, Any]] = []
        metric_rows: list[dict[str, Any]] = []
        latest_rows: list[dict[str, Any]] = []
        for run in runs:
            if run.local_id in existing:
                continue
            location = locations.get(run.experiment_id)
            if location is None:
                experiment = store.get_experiment(run.experiment_id)
                store._check_experiment_is_active(experiment)
                location = locations[run.experiment_id] = experiment.artifact_location
            run_id = uuid.uuid4().hex
            artifact_uri = append_to_uri_path(location, run_id, store.ARTIFACTS_FOLDER_NAME)
            name = run.run_name or run.tags.get(MLFLOW_RUN_NAME) or _generate_random_name()
            run_rows.append(
                {
                    "run_uuid": run_id,
                    "name": name,
                    "source_type": SourceType.to_string(SourceType.UNKNOWN),
                    "source_name": "",
                    "entry_point_name": "",
                    "user_id": run.user or "unknown",
                    "status": run.status,
                    "start_time": run.start_time,
                    "end_time": run.end_time,
                    "deleted_time": None,
                    "source_version": "",
                    "lifecycle_stage": LifecycleStage.ACTIVE,
                    "artifact_uri": artifact_uri,
                    "experiment_id": int(run.experiment_id),
                }
            )
            tags = {**run.tags, MLFLOW_RUN_NAME: name}
            tag_rows.extend(
                {"run_uuid": run_id, "key": key, "value": value} for key, value in tags.items()
            )
            param_rows.extend(
                {"run_uuid": run_id, "key": key, "value": value}
                for key, value in run.params.items()
            )
            rows, latest = _metric_rows(store, run_id, run.metrics)
            metric_rows.extend(rows)
            latest_rows.extend(latest.values())
            created[run.local_id] = (run_id, artifact_uri)
        if run_rows:
            insert = _insert_for(session)
            for model, rows in (
                (SqlRun, run_rows),
                (SqlTag, tag_rows),
                (SqlParam, param_rows),
                (SqlMetric, metric_rows),
                (SqlLatestMetric, latest_rows),
            ):
                if rows:  # plain multi-row inserts into the tables, no ORM objects
                    session.execute(insert(model.__table__), rows)
    return created, existing


def _metric_rows(
    store: Any, run_id: str, metrics: Sequence[Metric]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """A new run's metric rows without exact duplicates, and its latest value per key."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    latest: dict[str, dict[str, Any]] = {}
    for metric in metrics:
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
    return rows, latest
