"""While the database refuses connections, the server answers 503 with ``Retry-After``
naming it, from MLflow's routes and the dashboard's alike, and serves again once it is
back; a real PostgreSQL database is made to refuse new connections and its open ones are
terminated, as a restart would."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from mlflow import MlflowClient

from tests.conftest import refusing_connections, throwaway_postgres
from tests.leaks import assert_no_leak
from tests.servers import TrackingServer

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.slow]


def test_a_database_away_gives_503_with_retry_after_then_service_resumes(
    tmp_path: Path,
) -> None:
    with throwaway_postgres("flowscope_away") as database:
        server = TrackingServer(tmp_path / "server", database)
        server.start()
        try:
            client = MlflowClient(server.url)
            experiment_id = client.create_experiment("away")
            run_id = client.create_run(experiment_id).info.run_id
            web = httpx.Client(base_url=server.url, timeout=30)
            paths = [
                f"/api/2.0/mlflow/runs/get?run_id={run_id}",  # MLflow's REST API
                f"/flowscope/experiments/{experiment_id}.json",  # the dashboard
            ]
            where = urlparse(database)
            hidden = (database, f"{where.hostname}:{where.port}", where.path, tmp_path)
            with refusing_connections(database):
                for path in paths:
                    answer = web.get(path)
                    assert answer.status_code == 503, (path, answer.text)
                    assert answer.headers.get("retry-after") == "5", (path, answer.text)
                    assert answer.json()["error"] == "the database is unreachable; retry later"
                    assert_no_leak(answer.text, *hidden)
                health = web.get("/health")
                assert health.status_code == 503
                assert health.json()["parts"]["database"] == {
                    "status": "error",
                    "error": "the database is unreachable",
                }
                assert_no_leak(health.text, *hidden)
            # the server's log has which database it was and what the driver said
            log = (server.root / f"{server.name}.log").read_text()
            assert f"the database is unreachable ({database}: " in log
            for path in paths:
                assert web.get(path).status_code == 200, path
            assert web.get("/health").status_code == 200
            assert client.get_run(run_id).info.experiment_id == experiment_id
        finally:
            server.stop()
