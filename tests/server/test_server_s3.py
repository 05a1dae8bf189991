"""``flowscope server`` for a team: PostgreSQL as the backend store and an S3 bucket
(SeaweedFS) as the artifact destination, in one real server process. MLflow's clients keep
their artifacts and models in the bucket through it, the server's own jobs too, and while
the object store is away the artifact routes answer 503 with ``Retry-After``, the SDK's
journal keeps what it could not upload, and both resume when it is back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import flowscope
from tests.conftest import make_settings, start_seaweedfs, throwaway_postgres
from tests.leaks import assert_no_leak
from tests.s3 import S3Store, SeaweedFS
from tests.servers import TrackingServer, trained_by_a_job

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.s3, pytest.mark.slow]

PREFIX = "artifacts"


@dataclass(frozen=True)
class TeamServer:
    server: TrackingServer
    weed: SeaweedFS
    store: S3Store

    @property
    def url(self) -> str:
        return self.server.url

    def keys(self, run_id: str) -> list[str]:
        """The bucket's keys under the run's artifact folder."""
        return [key for key in self.store.keys(f"{PREFIX}/") if f"/{run_id}/artifacts/" in key]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    # a SeaweedFS of this module's own: one test stops and restarts it
    weed = start_seaweedfs(tmp_path_factory.mktemp("team-seaweedfs"))
    try:
        store = weed.create_bucket(f"team-{uuid.uuid4().hex[:12]}")
        with throwaway_postgres("flowscope_team") as database:
            server = TrackingServer(
                tmp_path_factory.mktemp("team-server"),
                database,
                workers=2,
                artifacts_destination=f"s3://{store.bucket}/{PREFIX}",
                env=store.environment,  # the server alone holds the object store's keys
            )
            server.start()
            try:
                yield TeamServer(server, weed, store)
            finally:
                server.stop()
    finally:
        weed.stop()


@pytest.fixture
def tracking_uri(team: TeamServer) -> Iterator[str]:
    mlflow.set_tracking_uri(team.url)
    try:
        yield team.url
    finally:
        mlflow.set_tracking_uri(None)


def test_health_names_postgresql_and_the_bucket(team: TeamServer) -> None:
    parts = httpx.get(f"{team.url}/health", timeout=30).json()["parts"]
    assert {name: part["status"] for name, part in parts.items()} == {
        "database": "ok",
        "artifacts": "ok",
        "dashboard": "ok",
        "jobs": "ok",
    }


def test_mlflow_clients_keep_artifacts_and_models_in_the_bucket(
    team: TeamServer, tracking_uri: str, tmp_path: Path
) -> None:
    """The client holds no object store keys: everything goes through the server."""
    features, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(features, target)
    mlflow.set_experiment("team-s3")
    with mlflow.start_run() as run:
        mlflow.log_text("fitted\n", "notes/fit.txt")
        mlflow.sklearn.log_model(
            model, name="model", input_example=features.head(3), registered_model_name="iris-team"
        )
    run_id = run.info.run_id
    keys = team.keys(run_id)
    assert any(key.endswith("/notes/fit.txt") for key in keys), keys
    client = MlflowClient(team.url)
    back = Path(client.download_artifacts(run_id, "notes/fit.txt", str(tmp_path)))
    assert back.read_text() == "fitted\n"
    # the registered model's files are in the bucket too, and load back through the server
    loaded = mlflow.pyfunc.load_model("models:/iris-team/1")
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    model_keys = [key for key in team.store.keys(f"{PREFIX}/") if key.endswith("/MLmodel")]
    assert model_keys, "no MLmodel in the bucket"


def test_the_servers_own_jobs_keep_their_models_in_the_bucket(team: TeamServer) -> None:
    _, run_id = trained_by_a_job(
        team.url,
        dataset_id="builtin:iris",
        target="species",
        model_types=["random_forest"],
        task="team-jobs",
        seed=5,
    )
    keys = team.keys(run_id)
    assert any(key.endswith("/model/MLmodel") for key in keys), keys
    # the dashboard reads the run's evaluation back from the bucket
    web = httpx.Client(base_url=team.url, timeout=60)
    page = web.get(f"/flowscope/runs/{run_id}.json")
    assert page.status_code == 200, page.text
    profile = web.get(
        f"/flowscope/runs/{run_id}/artifacts/dataset/profile.json",
        headers={"Accept": "application/json"},
    )
    assert profile.status_code == 200, profile.text


def test_the_object_store_away_gives_503_and_the_journal_keeps_artifacts(
    team: TeamServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow's artifact client retries a 503 seven times, each after its Retry-After,
    # before the SDK's writer sees the failure and takes over with its own backoff: one
    # attempt is enough to show that hand-over
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = MlflowClient(team.url)
    experiment_id = client.create_experiment("bucket-away")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_text(run_id, "before\n", "notes/before.txt")
    settings = make_settings(tmp_path, team.url, flush_timeout=120, request_timeout=5)
    sdk_run = flowscope.start_run("bucket-away-sdk", settings=settings)
    assert sdk_run.run_id is not None
    web = httpx.Client(base_url=team.url, timeout=60)
    upload = (
        f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/notes/during.txt"
    )
    team.weed.stop()
    try:
        refused = web.put(upload, content=b"during\n")
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"]
        assert refused.json()["message"] == "the artifact store is unreachable; retry later"
        health = web.get("/health")
        assert health.status_code == 503
        assert health.json()["parts"]["artifacts"] == {
            "status": "error",
            "error": "the artifact store is unreachable",
        }
        assert health.json()["parts"]["database"]["status"] == "ok"
        # a dashboard page reading the run's artifacts names the store, not its endpoint
        page = web.get(f"/flowscope/runs/{run_id}.json")
        assert page.status_code == 503, page.text
        assert "the artifact store cannot be reached" in page.json()["error"]
        download = web.get(f"/flowscope/runs/{run_id}/artifacts/notes/before.txt")
        assert download.status_code == 503, download.text
        hidden = (team.store.endpoint_url, team.store.bucket, team.server.backend_store_uri)
        for answer in (refused, health, page, download):
            assert_no_leak(answer.text, *hidden, team.server.root)
        # training goes on: the SDK keeps its artifact and metrics in the journal
        sdk_run.log_text("kept\n", "notes/kept.txt")
        sdk_run.log_metrics({"loss": 0.5}, step=1)
        assert sdk_run.wait_delivery_failure(120), "delivery never met the bucket away"
    finally:
        team.weed.start(timeout=60)
    assert sdk_run.end(timeout=120)
    assert web.put(upload, content=b"during\n").status_code == 200
    assert web.get(upload).content == b"during\n"
    kept = client.download_artifacts(sdk_run.run_id, "notes/kept.txt", str(tmp_path))
    assert Path(kept).read_text() == "kept\n"
    assert [m.value for m in client.get_metric_history(sdk_run.run_id, "loss")] == [0.5]
    assert web.get("/health").status_code == 200
