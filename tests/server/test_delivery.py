"""Delivery through a real ``flowscope server`` on PostgreSQL: sixteen processes logging at
once store every point exactly once, and the SDK's journal keeps every point through the
database going away and the server itself being killed, delivering it once either is
back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

import flowscope
from tests.conftest import make_settings, refusing_connections, throwaway_postgres
from tests.servers import TrackingServer, child_environment
from tests.writers import metric_points, run_writers, value

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def database() -> Iterator[str]:
    with throwaway_postgres("flowscope_delivery") as url:
        yield url


def test_sixteen_processes_logging_at_once_store_every_point_once(
    tmp_path: Path, database: str
) -> None:
    server = TrackingServer(tmp_path / "server", database, workers=2)
    server.start()
    try:
        processes, steps, metrics = 16, 150, 4
        result = run_writers(
            "flowscope",
            server.url,
            tmp_path / "writers",
            processes=processes,
            steps=steps,
            metrics=metrics,
            experiment="sixteen",
            env=child_environment(),
        )
        assert result.all_delivered
        assert len(set(result.run_ids)) == processes
        client = MlflowClient(server.url)
        for index, run_id in enumerate(result.run_ids):
            assert metric_points(client, run_id, metrics) == Counter(
                (f"m{metric}", step, value(index, step, metric))
                for step in range(steps)
                for metric in range(metrics)
            ), f"writer {index}"
            run = client.get_run(run_id)
            assert run.info.status == "FINISHED"
            assert run.info.run_name == f"writer-{index}"
    finally:
        server.stop()


def _logged(run: flowscope.Run, steps: range, metrics: int) -> None:
    for step in steps:
        run.log_metrics(
            {f"m{metric}": value(0, step, metric) for metric in range(metrics)}, step=step
        )


def _expected(steps: range, metrics: int) -> Counter[tuple[str, int, float]]:
    return Counter(
        (f"m{metric}", step, value(0, step, metric)) for step in steps for metric in range(metrics)
    )


def test_the_journal_keeps_every_point_while_the_database_is_away(
    tmp_path: Path, database: str
) -> None:
    """The server answers 503 while PostgreSQL refuses it; training goes on, and once the
    database is back the SDK delivers the rest through the bulk endpoint, each point once."""
    server = TrackingServer(tmp_path / "server", database)
    server.start()
    settings = make_settings(tmp_path, server.url, flush_timeout=120, request_timeout=5)
    metrics = 3
    try:
        run = flowscope.start_run("database-away", settings=settings)
        assert run.run_id is not None
        _logged(run, range(0, 500), metrics)
        assert run.flush(60)  # delivered before the outage
        with refusing_connections(database):
            _logged(run, range(500, 1500), metrics)
            assert run.wait_delivery_failure(60), "delivery never met the database away"
            assert run.delivery_error is not None and "503" in run.delivery_error
            _logged(run, range(1500, 2000), metrics)
        assert run.end(timeout=120)
        assert run.delivery_error is None
        client = MlflowClient(server.url)
        assert metric_points(client, run.run_id, metrics) == _expected(range(2000), metrics)
        assert client.get_run(run.run_id).info.status == "FINISHED"
    finally:
        server.stop()


def test_the_journal_keeps_every_point_through_a_killed_server(
    tmp_path: Path, database: str
) -> None:
    """The server is killed with ingest requests in flight and started again on the same
    port: the SDK resends what it could not confirm, and the bulk endpoint stores each
    point once."""
    server = TrackingServer(tmp_path / "server", database, workers=2)
    server.start()
    settings = make_settings(tmp_path, server.url, flush_timeout=120, request_timeout=2)
    metrics = 4
    try:
        run = flowscope.start_run("server-killed", settings=settings)
        assert run.run_id is not None
        _logged(run, range(0, 1000), metrics)
        server.stop()  # SIGKILL, most likely with a batch in flight
        _logged(run, range(1000, 2000), metrics)
        assert run.wait_delivery_failure(60), "delivery never met the dead server"
        server.start()
        _logged(run, range(2000, 2500), metrics)
        assert run.end(timeout=120)
        client = MlflowClient(server.url)
        assert metric_points(client, run.run_id, metrics) == _expected(range(2500), metrics)
    finally:
        server.stop()
