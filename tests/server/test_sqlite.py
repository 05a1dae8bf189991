"""On one machine ``flowscope server`` runs on a SQLite file and a local folder."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from tests.servers import TrackingServer

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_a_sqlite_server_stores_runs_and_artifacts_and_shows_them(tmp_path: Path) -> None:
    server = TrackingServer(
        tmp_path / "server",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        args=["--allowed-hosts", "flowscope.example,127.0.0.1:*"],
    )
    server.start()
    try:
        client = MlflowClient(server.url)
        experiment_id = client.create_experiment("one-machine")
        run_id = client.create_run(experiment_id).info.run_id
        client.log_metric(run_id, "rmse", 0.25)
        client.log_text(run_id, "hello\n", "notes/hello.txt")
        client.set_terminated(run_id)
        assert client.get_run(run_id).data.metrics == {"rmse": 0.25}
        assert [p.read_text() for p in server.artifacts.rglob("hello.txt")] == ["hello\n"]
        runs = httpx.get(f"{server.url}/flowscope/experiments/{experiment_id}.json").json()
        assert [row["run_id"] for row in runs["runs"]] == [run_id]
        assert httpx.get(f"{server.url}/health").json()["ok"] is True
        # the Host check guards MLflow's routes and the dashboard; --allowed-hosts adds a name
        for path in ("/api/2.0/mlflow/experiments/search?max_results=1", "/flowscope/models"):
            named = httpx.get(server.url + path, headers={"Host": "flowscope.example"})
            assert named.status_code == 200, path
            other = httpx.get(server.url + path, headers={"Host": "rebound.example"})
            assert other.status_code == 400, path
            assert "rebound.example" not in other.text
            assert other.headers["x-frame-options"] == "DENY"
    finally:
        server.stop()
