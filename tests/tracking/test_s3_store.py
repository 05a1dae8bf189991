"""Artifacts in an S3-compatible object store (SeaweedFS): what flowscope writes there reads
back equal through MLflow, models load from it, and a store that is away loses nothing."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.modeling.data import load_builtin
from flowscope.modeling.train import train
from flowscope.serving.predict import predict_file
from tests.conftest import make_settings, start_seaweedfs
from tests.s3 import S3Store, SeaweedFS
from tests.servers import FlowscopeServer, child_environment, free_port

pytestmark = pytest.mark.s3

MODEL = "iris-s3"
PREFIX = "mlflow"


@dataclass(frozen=True)
class TrainedInS3:
    """A SQLite store whose experiments keep their artifacts in ``store``'s bucket, with an
    iris model trained, explained and registered as ``MODEL`` version 1."""

    settings: Settings
    store: S3Store
    run_id: str

    def prefix(self, run_id: str) -> str:
        """The bucket key prefix under which ``run_id`` keeps its artifacts."""
        run = MlflowClient(self.settings.tracking_uri).get_run(run_id)
        expected = f"s3://{self.store.bucket}/"
        assert run.info.artifact_uri.startswith(expected), run.info.artifact_uri
        return run.info.artifact_uri.removeprefix(expected) + "/"

    def object(self, key: str) -> bytes:
        answer = self.store.client().get_object(Bucket=self.store.bucket, Key=key)
        return bytes(answer["Body"].read())


@pytest.fixture(scope="module")
def trained(
    seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrainedInS3]:
    root = tmp_path_factory.mktemp("s3-trained")
    store = seaweedfs.create_bucket(f"trained-{uuid.uuid4().hex[:12]}")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in store.environment.items():
            patch.setenv(name, value)
        settings = make_settings(
            root,
            f"sqlite:///{root / 'mlflow.db'}",
            artifact_root=f"s3://{store.bucket}/{PREFIX}",
        )
        frame, target = load_builtin("iris")
        result = train(
            frame,
            target,
            "random_forest",
            {"n_estimators": "20"},
            task=MODEL,
            register=MODEL,
            settings=settings,
        )
        assert result.delivered and result.run_id is not None
        yield TrainedInS3(settings, store, result.run_id)


def _iris_features() -> pd.DataFrame:
    frame, target = load_builtin("iris")
    return frame.drop(columns=[target])


def test_a_training_run_keeps_its_artifacts_in_the_bucket(
    trained: TrainedInS3, tmp_path: Path
) -> None:
    client = MlflowClient(trained.settings.tracking_uri)
    prefix = trained.prefix(trained.run_id)
    assert prefix.startswith(f"{PREFIX}/")
    stored = {key.removeprefix(prefix) for key in trained.store.keys(prefix)}
    explanations = sorted(key for key in stored if key.startswith("explain/"))
    expected = {"model/MLmodel", "evaluation/metrics.json", "dataset/profile.json"}
    assert expected <= stored and explanations
    assert not trained.settings.artifacts_dir.exists()  # nothing went to the local folder
    for path in sorted(expected) + explanations:
        local = client.download_artifacts(trained.run_id, path, str(tmp_path / "download"))
        assert Path(local).read_bytes() == trained.object(prefix + path), path
    evaluation = json.loads(trained.object(prefix + "evaluation/metrics.json"))
    logged = client.get_run(trained.run_id).data.metrics
    assert evaluation["metrics"]["accuracy"] == pytest.approx(logged["accuracy"])


def test_the_registered_model_loads_from_the_bucket_with_plain_mlflow(
    trained: TrainedInS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient(trained.settings.tracking_uri)
    version = client.get_model_version(MODEL, "1")
    assert version.source.startswith(f"s3://{trained.store.bucket}/{PREFIX}/")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/1")
    predictions = list(model.predict(_iris_features().head(10)))
    assert predictions == ["setosa"] * 10  # the first ten iris flowers


def test_the_dashboard_reads_a_run_from_the_bucket(trained: TrainedInS3) -> None:
    from fastapi.testclient import TestClient

    from flowscope.web import create_app

    prefix = trained.prefix(trained.run_id)
    with TestClient(create_app(trained.settings)) as web:
        data = web.get(f"/runs/{trained.run_id}.json").json()
        download = web.get(f"/runs/{trained.run_id}/artifacts/dataset/profile.json")
    stored = json.loads(trained.object(prefix + "evaluation/metrics.json"))
    assert data["evaluation"]["metrics"] == stored
    assert data["profile"] == json.loads(trained.object(prefix + "dataset/profile.json"))
    assert data["explain"]["summary"]["explainer"] == "flowscope_treeshap"
    assert download.status_code == 200
    assert download.content == trained.object(prefix + "dataset/profile.json")


def test_a_batch_prediction_writes_its_parquet_to_the_bucket(
    trained: TrainedInS3, tmp_path: Path
) -> None:
    features = _iris_features().iloc[::10]
    source = tmp_path / "flowers.csv"
    features.to_csv(source, index=False)
    result = predict_file(trained.settings, f"{MODEL}/1", source, None)
    assert result.delivered and result.run_id is not None and result.rows == len(features)
    prefix = trained.prefix(result.run_id)
    key = prefix + "predictions/predictions.parquet"
    assert key in trained.store.keys(prefix)
    local = MlflowClient(trained.settings.tracking_uri).download_artifacts(
        result.run_id, "predictions/predictions.parquet", str(tmp_path / "download")
    )
    assert Path(local).read_bytes() == trained.object(key)
    written = pd.read_parquet(local)
    assert list(written["prediction"]) == list(result.table["prediction"])


@pytest.mark.slow
def test_flowscope_serve_loads_the_model_from_the_bucket_and_monitors_into_it(
    trained: TrainedInS3, tmp_path: Path
) -> None:
    assert trained.settings.artifact_root is not None
    before = {run.info.run_id for run in _inference_runs(trained)}
    server = FlowscopeServer(
        tmp_path,
        trained.settings.tracking_uri,
        ["serve", f"models:/{MODEL}/1"],
        health_path="/health",
        settings={
            "autolog": "false",
            "artifacts_dir": str(tmp_path / "local-artifacts"),
            "artifact_root": trained.settings.artifact_root,
        },
        env=trained.store.environment,
        name="flowscope-serve",
    )
    server.start()
    try:
        rows = _iris_features().head(5).to_dict(orient="records")
        answer = httpx.post(f"{server.url}/predict", json=rows, timeout=30)
    finally:
        server.terminate()  # a graceful stop writes the open inference window
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == "1"
    assert [row["prediction"] for row in answer.json()["predictions"]] == ["setosa"] * 5
    (window,) = [run for run in _inference_runs(trained) if run.info.run_id not in before]
    key = trained.prefix(window.info.run_id) + "predictions/predictions.parquet"
    written = pd.read_parquet(io.BytesIO(trained.object(key)))
    assert list(written["prediction"]) == ["setosa"] * 5
    assert not (tmp_path / "local-artifacts").exists()


def _inference_runs(trained: TrainedInS3) -> list[Any]:
    client = MlflowClient(trained.settings.tracking_uri)
    experiment = client.get_experiment_by_name(f"{MODEL}-inference")
    return [] if experiment is None else list(client.search_runs([experiment.experiment_id]))


@pytest.mark.slow
def test_an_unreachable_object_store_is_named_not_a_stack_trace(
    trained: TrainedInS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from flowscope.web import create_app

    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", nowhere)
    env = child_environment() | trained.store.environment | {"MLFLOW_S3_ENDPOINT_URL": nowhere}
    source = tmp_path / "flowers.csv"
    _iris_features().head(3).to_csv(source, index=False)
    uri = trained.settings.tracking_uri
    predicted = _flowscope(
        env, "predict", f"{MODEL}/1", "--input", str(source), "--tracking-uri", uri
    )
    served = _flowscope(
        env, "serve", f"{MODEL}/1", "--port", str(free_port()), "--tracking-uri", uri
    )
    for command in (predicted, served):  # neither starts: one line naming the object store
        assert command.returncode == 1 and "Traceback" not in command.stderr
        assert f"error: cannot read model {MODEL} version 1" in command.stderr
        assert "the artifact store cannot be reached" in command.stderr
        assert "MLFLOW_S3_ENDPOINT_URL" in command.stderr

    with TestClient(create_app(trained.settings)) as web:
        download = web.get(
            f"/runs/{trained.run_id}/artifacts/dataset/profile.json",
            headers={"Accept": "application/json"},
        )
        page = web.get(f"/runs/{trained.run_id}.json")
    for answer in (download, page):
        assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert "'dataset/profile.json' of run" in download.json()["error"]
    assert "the artifact store cannot be reached" in page.json()["error"]


def _flowscope(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowscope.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _pending(env: dict[str, str]) -> list[dict[str, object]]:
    status = _flowscope(env, "sync", "--status", "--format", "json")
    assert status.returncode == 0, status.stderr
    return list(json.loads(status.stdout))


@pytest.mark.slow
def test_artifacts_wait_in_the_journal_while_the_bucket_is_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training process whose object store is down leaves its artifacts in the journal
    and exits; once the store is back, ``flowscope sync`` delivers every one of them."""
    weed = start_seaweedfs(tmp_path / "seaweedfs")
    try:
        store = weed.create_bucket("away")
        database = tmp_path / "mlflow.db"
        env = child_environment()
        env.update(
            store.environment,
            MLFLOW_TRACKING_URI=f"sqlite:///{database}",
            FLOWSCOPE_JOURNAL_DIR=str(tmp_path / "journal"),
            FLOWSCOPE_ARTIFACT_ROOT=f"s3://{store.bucket}/{PREFIX}",
            FLOWSCOPE_AUTOLOG="false",
            FLOWSCOPE_SYNC_ON_START="false",
            FLOWSCOPE_FLUSH_TIMEOUT="3",
            FLOWSCOPE_MAX_BACKOFF="0.5",
        )
        weed.stop()
        trained = _flowscope(
            env, "train", "--dataset", "iris", "--param", "n_estimators=10", "--no-explain"
        )
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert "still in the journal" in trained.stdout
        (pending,) = _pending(env)
        assert pending["pending_bytes"] > 0 and not pending["in_use"]
        assert pending["run_id"] in trained.stdout  # the run itself is in the SQLite store

        weed.start(timeout=60)
        synced = _flowscope(env, "sync")
        assert synced.returncode == 0, synced.stderr
        assert "delivered 1 run(s)" in synced.stdout
        assert _pending(env) == []
        for name, value in store.environment.items():
            monkeypatch.setenv(name, value)
        client = MlflowClient(f"sqlite:///{database}")
        prefix = client.get_run(pending["run_id"]).info.artifact_uri
        prefix = prefix.removeprefix(f"s3://{store.bucket}/") + "/"
        stored = {key.removeprefix(prefix) for key in store.keys(prefix)}
        assert {"model/MLmodel", "evaluation/metrics.json", "dataset/profile.json"} <= stored
        local = client.download_artifacts(pending["run_id"], "model", str(tmp_path / "model"))
        model = mlflow.pyfunc.load_model(local)
        assert list(model.predict(_iris_features().head(3))) == ["setosa"] * 3
    finally:
        weed.stop()
