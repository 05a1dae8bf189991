"""The dashboard's rules about a run read the run's experiment from the store once per run:
the ingest rule is checked on every batch an SDK sends."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from flowscope.analysis.query import open_run_store
from flowscope.config import Settings
from flowscope.errors import NotFoundError
from flowscope.web.access import RunExperiments


def test_a_runs_experiment_is_read_once_and_an_unknown_run_is_not_found(
    settings: Settings,
) -> None:
    client = MlflowClient(settings.tracking_uri)
    experiments = [client.create_experiment(name) for name in ("a", "b")]
    runs = [client.create_run(e).info.run_id for e in experiments]
    store = open_run_store(settings)
    known = RunExperiments(size=10)
    queries: list[str] = []
    sa.event.listen(store._engine, "before_cursor_execute", lambda *a: queries.append(a[2]))

    assert [known.of(store, run) for run in runs] == experiments
    asked = len(queries)
    assert asked > 0
    assert [known.of(store, run) for run in runs * 3] == experiments * 3
    assert len(queries) == asked  # remembered: no query

    with pytest.raises(NotFoundError):
        known.of(store, "0" * 32)
    assert [known.of(store, run) for run in runs] == experiments


def test_the_memory_is_bounded(settings: Settings) -> None:
    client = MlflowClient(settings.tracking_uri)
    experiment = client.create_experiment("many")
    runs = [client.create_run(experiment).info.run_id for _ in range(5)]
    store = open_run_store(settings)
    known = RunExperiments(size=3)
    assert {known.of(store, run) for run in runs} == {experiment}
    assert len(known) <= 3
