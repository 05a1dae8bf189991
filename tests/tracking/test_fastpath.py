"""The bulk metric path leaves MLflow's tables exactly as MLflow's own log_batch does."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from flowscope.tracking import fastpath
from flowscope.tracking.store import StoreAccess
from tests.conftest import make_settings

BATCHES = [
    [Metric("loss", 1.0, 100, 0), Metric("loss", 0.5, 101, 1), Metric("acc", 0.7, 100, 0)],
    # a replay of the first batch, and the same point twice within one batch
    [Metric("loss", 1.0, 100, 0), Metric("acc", 0.8, 102, 1), Metric("acc", 0.8, 102, 1)],
    # steps out of order, NaN, infinities, the same step at a later time
    [
        Metric("loss", 0.9, 90, 0),
        Metric("loss", float("nan"), 103, 2),
        Metric("big", math.inf, 100, 0),
        Metric("big", -math.inf, 99, 5),
        Metric("acc", 0.6, 200, 1),
    ],
    [Metric("loss", 0.25, 104, 2), Metric("new", 3.0, 50, 7)],
]


def _state(client: MlflowClient, run_id: str) -> tuple[dict, dict]:
    run = client.get_run(run_id)
    histories = {}
    for key in run.data.metrics:
        points = client.get_metric_history(run_id, key)
        histories[key] = sorted(
            (p.step, p.timestamp, "nan" if math.isnan(p.value) else p.value) for p in points
        )
    latest = {k: ("nan" if math.isnan(v) else v) for k, v in run.data.metrics.items()}
    return histories, latest


def test_bulk_path_equals_mlflow_log_batch(tmp_path: Path, store_uri: str) -> None:
    access = StoreAccess(make_settings(tmp_path, store_uri))
    store = access.store
    assert fastpath.supports(store)
    client = MlflowClient(store_uri)
    experiment = client.create_experiment(
        f"fastpath-{tmp_path.name}", artifact_location=(tmp_path / "a").as_uri()
    )
    ours = client.create_run(experiment).info.run_id
    theirs = client.create_run(experiment).info.run_id
    for batch in BATCHES:
        fastpath.log_metrics(store, ours, batch)
        store.log_batch(theirs, metrics=batch, params=[], tags=[])
    assert _state(client, ours) == _state(client, theirs)
    histories, latest = _state(client, ours)
    assert len(histories["loss"]) == 5  # the replayed point is stored once
    assert latest["loss"] == 0.25 and latest["new"] == 3.0 and latest["acc"] == 0.6


def test_bulk_path_refuses_what_mlflow_refuses(tmp_path: Path, sqlite_uri: str) -> None:
    store = StoreAccess(make_settings(tmp_path, sqlite_uri)).store
    client = MlflowClient(sqlite_uri)
    experiment = client.create_experiment("refusals", artifact_location=(tmp_path / "a").as_uri())
    run_id = client.create_run(experiment).info.run_id
    with pytest.raises(MlflowException) as bad_key:
        fastpath.log_metrics(store, run_id, [Metric("../escape", 1.0, 1, 0)])
    assert bad_key.value.error_code == "INVALID_PARAMETER_VALUE"
    client.delete_run(run_id)
    with pytest.raises(MlflowException) as deleted:
        fastpath.log_metrics(store, run_id, [Metric("loss", 1.0, 1, 0)])
    assert deleted.value.error_code == "INVALID_PARAMETER_VALUE"
