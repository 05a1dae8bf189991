"""A tracking server killed during traffic: the service keeps answering and no prediction
record is lost once the server is back."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

import flowscope
from flowscope.config import Settings
from flowscope.modeling.data import load_builtin
from flowscope.modeling.train import build_pipeline
from flowscope.serving import create_serving_app
from tests.conftest import make_settings
from tests.servers import MlflowServer
from tests.serving.conftest import inference_runs, records

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _register_small_model(
    settings: Settings, features: pd.DataFrame, target: pd.Series, name: str
) -> str:
    """A small random forest in flowscope's training pipeline, logged with its dataset
    profile and registered through the server (the full training run's evaluation
    artifacts would only slow the test down)."""
    from sklearn.ensemble import RandomForestClassifier

    pipeline = build_pipeline(features, RandomForestClassifier(10, random_state=0), scale=False)
    pipeline.fit(features, target)
    with flowscope.start_run("iris", settings=settings) as run:
        run.log_dataset(features.assign(species=target), "species")
        run.log_model(pipeline, input_example=features.head(5), register=name)
    versions = MlflowClient(settings.tracking_uri).search_model_versions(f"name = '{name}'")
    return str(max(int(v.version) for v in versions))


@pytest.mark.server
def test_store_killed_during_traffic_loses_no_prediction(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path,
        mlflow_server.url,
        request_timeout=2,
        flush_timeout=90,
        monitor_window_size=25,
        monitor_window_seconds=3600,
        serve_reload_interval=0.5,
    )
    frame, target = load_builtin("iris")
    features = frame.drop(columns=[target])
    version = _register_small_model(settings, features, frame[target], "flowers")
    client = MlflowClient(mlflow_server.url)
    client.set_registered_model_alias("flowers", "champion", version)
    rows = records(features)
    sent: list[str] = []

    with TestClient(create_serving_app(settings, "flowers@champion")) as service:

        def predict(batch: list[dict]) -> None:
            answer = service.post("/predict", json=batch)
            assert answer.status_code == 200, answer.text
            sent.append(answer.json()["request_id"])

        for row in rows[:40]:
            predict([row])
        mlflow_server.stop()  # SIGKILL, with windows being delivered
        for row in rows[40:110]:
            predict([row])
        predict(rows[110:150])
        assert service.get("/health").status_code == 200
        mlflow_server.start()
        # leaving the block closes the service: the last window is written and every run
        # waits (flush_timeout) for the store that is back
    runs = inference_runs(settings, "flowers")
    assert sum(run.data.metrics["samples"] for run in runs) == 150
    assert sum(run.data.metrics["requests"] for run in runs) == len(sent) == 111
    tables = [
        pd.read_parquet(
            client.download_artifacts(
                run.info.run_id, "predictions/predictions.parquet", str(tmp_path / run.info.run_id)
            )
        )
        for run in runs
    ]
    every = pd.concat(tables)
    assert len(every) == 150 and sorted(set(every["request_id"])) == sorted(sent)
    assert sorted(every["sepal_length_cm"]) == sorted(frame["sepal_length_cm"])
