"""The runs page on PostgreSQL: the same answers as MLflow's own search."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from tests.conftest import make_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.postgres


def test_runs_page_on_postgresql_matches_mlflow(postgres_database: str, tmp_path: Path) -> None:
    from flowscope.web import create_app

    settings = make_settings(tmp_path, postgres_database)
    client = MlflowClient(postgres_database)
    name = f"pg-runs-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name, artifact_location=(tmp_path / "a").as_uri())
    for index in range(30):
        run = client.create_run(experiment_id, run_name=f"run-{index}", start_time=1000 + index)
        kind = "inference" if index % 5 == 0 else "training"
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("accuracy", (index * 7 % 30) / 30, 1, 0), Metric("loss", index, 1, 0)],
            params=[Param("depth", str(index % 4))],
            tags=[RunTag("flowscope.kind", kind)],
        )
        client.set_terminated(run.info.run_id)
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        data = http.get(
            f"/experiments/{experiment_id}.json",
            params={"filter": "params.depth != '0'", "order": "metrics.accuracy DESC"},
        ).json()
        expected = client.search_runs(
            [experiment_id], "params.depth != '0'", order_by=["metrics.accuracy DESC"]
        )
        assert [row["run_id"] for row in data["runs"]] == [r.info.run_id for r in expected]
        assert data["total"] == len(expected)
        tabs = {tab["name"]: tab["count"] for tab in data["tabs"]}
        assert tabs["inference"] == sum(
            1 for r in expected if r.data.tags.get("flowscope.kind") == "inference"
        )
        bad = http.get(f"/experiments/{experiment_id}.json", params={"filter": "params.depth ~ 1"})
        assert bad.status_code == 400 and bad.json()["ok"] is False
