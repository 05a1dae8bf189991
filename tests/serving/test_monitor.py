"""Inference runs, read back with plain MlflowClient, hold every prediction and the right
counts, percentages, latency and drift."""

from __future__ import annotations

import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from flowscope.modeling.data import load_builtin
from flowscope.modeling.train import train
from flowscope.serving import create_serving_app
from tests.serving.conftest import Registry, inference_runs, iris_features, records, synthetic_frame

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _parquet(client: MlflowClient, run_id: str, folder: Path) -> pd.DataFrame:
    local = client.download_artifacts(run_id, "predictions/predictions.parquet", str(folder))
    return pd.read_parquet(local)


@pytest.mark.parametrize("in_process", [False, True], ids=["helper-process", "in-process"])
def test_windows_by_count_hold_every_prediction(
    registry: Registry, tmp_path: Path, in_process: bool
) -> None:
    name = registry.fresh("random_forest")
    settings = registry.using(
        monitor_window_size=40, monitor_window_seconds=3600, monitor_process=not in_process
    )
    X = iris_features()
    rows = records(X)
    request_ids = []
    with TestClient(create_serving_app(settings, f"{name}@champion")) as client:
        for index in range(0, 90):  # 90 single-row requests
            request_ids.append(client.post("/predict", json=rows[index]).json()["request_id"])
        answer = client.post("/predict", json=rows[90:150])  # one request of 60 rows
        request_ids.append(answer.json()["request_id"])
        assert client.post("/predict", json={"sepal_length_cm": "x"}).status_code == 422
    # closing the service wrote the last, partial window
    runs = inference_runs(registry.settings, name)
    client = MlflowClient(registry.settings.tracking_uri)
    assert all(run.data.tags["flowscope.kind"] == "inference" for run in runs)
    assert all(run.data.params["prediction_type"] == "single" for run in runs)
    assert {run.data.params["model_version"] for run in runs} == {"1"}
    assert all(run.data.params["model_alias"] == "champion" for run in runs)
    assert sum(run.data.metrics["samples"] for run in runs) == 150
    assert sum(run.data.metrics["requests"] for run in runs) == 91
    assert sum(run.data.metrics["errors"] for run in runs) == 1
    expected = Counter(registry.pipeline("random_forest").predict(X))
    for label in ("setosa", "versicolor", "virginica"):
        assert sum(run.data.metrics.get(f"count_{label}", 0) for run in runs) == expected[label]
    runs = [run for run in runs if run.data.metrics["samples"]]  # not a window of errors only
    tables = [_parquet(client, run.info.run_id, tmp_path / run.info.run_id) for run in runs]
    for run, table in zip(runs, tables, strict=True):
        metrics = run.data.metrics
        assert len(table) == metrics["samples"]
        shares = table["prediction"].value_counts(normalize=True) * 100
        for label, share in shares.items():
            assert metrics[f"percentage_{label}"] == pytest.approx(share)
        assert metrics["avg_confidence"] == pytest.approx(table["confidence"].mean())
        assert metrics["min_confidence"] == pytest.approx(table["confidence"].min())
        assert metrics["unique_classes"] == table["prediction"].nunique()
        assert (
            0 < metrics["latency_p50_ms"] <= metrics["latency_p95_ms"] <= metrics["latency_p99_ms"]
        )
        assert run.data.params["window_start"] < run.data.params["window_end"]
    every = pd.concat(tables)
    assert sorted(set(every["request_id"])) == sorted(request_ids)
    assert list(every.columns[:4]) == list(X.columns)
    assert {"timestamp", "proba_setosa", "model_version", "latency_ms"} <= set(every.columns)
    merged = every.sort_values(["timestamp", "request_id"]).drop_duplicates(list(X.columns))
    assert len(merged) > 0


def test_windows_by_time_and_one_run_per_request(registry: Registry) -> None:
    name = registry.fresh("xgboost")
    rows = records(iris_features().head(5))
    timed = registry.using(monitor_window_seconds=0.3)
    with TestClient(create_serving_app(timed, f"{name}@champion")) as client:
        monitor = client.app.state.service.monitor  # type: ignore[attr-defined]
        client.post("/predict", json=rows[:2])
        written = monitor.wait_for(lambda: monitor.stats()["runs_written"] >= 1, 60)
        assert written, "the window was never closed by time and written"
        client.post("/predict", json=rows[2:3])
    runs = inference_runs(registry.settings, name)
    assert sorted(run.data.metrics["samples"] for run in runs) == [1, 2]

    other = registry.fresh("xgboost")
    per_request = registry.using(monitor_per_request=True, monitor_window_seconds=3600)
    with TestClient(create_serving_app(per_request, f"{other}@champion")) as client:
        for row in rows:
            client.post("/predict", json=row)
    runs = inference_runs(registry.settings, other)
    assert len(runs) == 5 and all(run.data.metrics["samples"] == 1 for run in runs)


def test_batch_upload_is_a_run_of_its_own_with_drift(registry: Registry, tmp_path: Path) -> None:
    name = registry.fresh("synthetic")
    held_out = synthetic_frame().iloc[3000:].drop(columns=["label"])
    shifted = held_out.copy()
    shifted["x0"] = shifted["x0"] + 1.5 * shifted["x0"].std()
    shifted["region"] = "east"
    settings = registry.using(monitor_window_seconds=3600)
    with TestClient(create_serving_app(settings, f"{name}@champion")) as client:
        for label, frame in (("held_out.csv", held_out), ("shifted.csv", shifted)):
            answer = client.post(
                "/predict/batch", files={"file": (label, frame.to_csv(index=False), "text/csv")}
            )
            assert answer.status_code == 200, answer.text
    runs = {run.data.params["input_file"]: run for run in inference_runs(settings, name, "synth")}
    assert set(runs) == {"held_out.csv", "shifted.csv"}
    same, moved = runs["held_out.csv"].data.metrics, runs["shifted.csv"].data.metrics
    assert runs["held_out.csv"].data.params["prediction_type"] == "batch"
    assert same["samples"] == len(held_out) == moved["samples"]
    assert same["drift_max_psi"] < 0.1 and same["drift_detected"] == 0
    assert {f"drift_psi_{feature}" for feature in held_out.columns} <= set(same)
    assert moved["drift_detected"] == 1 and moved["drift_max_psi"] > 0.2
    assert moved["drift_psi_x0"] > 0.2 and moved["drift_psi_region"] > 0.2
    assert moved["drift_psi_x1"] < 0.1  # an untouched feature stays put
    client = MlflowClient(settings.tracking_uri)
    run_id = runs["shifted.csv"].info.run_id
    names = {item.path for item in client.list_artifacts(run_id, "predictions")}
    assert names == {"predictions/predictions.parquet", "predictions/predictions.csv"}
    report = client.download_artifacts(run_id, "drift/drift.json", str(tmp_path))
    assert '"x0"' in Path(report).read_text()


def test_monitoring_off_writes_nothing(registry: Registry) -> None:
    name = registry.fresh("random_forest")
    settings = registry.using(monitor=False)
    with TestClient(create_serving_app(settings, f"{name}@champion")) as client:
        assert client.post("/predict", json=records(iris_features().head(2))).status_code == 200
    assert inference_runs(settings, name) == []


def test_a_full_monitor_counts_what_it_drops(registry: Registry) -> None:
    name = registry.fresh("random_forest")
    settings = registry.using(monitor_max_buffered=5, monitor_window_seconds=3600)
    rows = records(iris_features().head(10))
    with TestClient(create_serving_app(settings, f"{name}@champion")) as client:
        for row in rows:
            assert client.post("/predict", json=row).status_code == 200  # serving goes on
        metrics = client.get("/metrics").text
    assert "flowscope_monitor_dropped_predictions 5" in metrics
    (run,) = inference_runs(settings, name)
    assert run.data.metrics["samples"] == 5 and run.data.metrics["dropped"] == 5


def test_metrics_tell_the_cpu_the_monitor_thread_spends(registry: Registry) -> None:
    """``flowscope_monitor_cpu_seconds``: what monitoring takes from the serving process,
    some of its CPU and never more than all of it."""
    name = registry.fresh("random_forest")
    settings = registry.using(monitor_window_seconds=3600)
    with TestClient(create_serving_app(settings, f"{name}@champion")) as client:
        for row in records(iris_features()):
            assert client.post("/predict", json=row).status_code == 200
        monitor = client.app.state.service.monitor  # type: ignore[attr-defined]
        # the thread records what it has spent at the end of each pass (packing, upkeep)
        spending = monitor.wait_for(lambda: monitor.stats()["cpu_seconds"] > 0, 60)
        assert spending, "the monitor's thread never told what it spent"
        metrics = client.get("/metrics").text
        (line,) = [x for x in metrics.splitlines() if x.startswith("flowscope_monitor_cpu_")]
        spent = float(line.split()[1])
        assert 0.0 < spent < time.process_time()


def test_a_regression_model_gets_prediction_statistics(registry: Registry, tmp_path: Path) -> None:
    frame, target = load_builtin("diabetes")
    name = "diabetes-forest"
    result = train(
        frame,
        target,
        "random_forest",
        {"n_estimators": 20},
        task="diabetes",
        register=name,
        explain=False,
        settings=registry.settings,
    )
    registry.client.set_registered_model_alias(name, "champion", str(result.registered_version))
    X = frame.drop(columns=[target]).head(50)
    settings = registry.using(monitor_window_seconds=3600)
    with TestClient(create_serving_app(settings, f"{name}@champion")) as client:
        answers = [
            client.post("/predict", json=records(X.iloc[i : i + 5])) for i in range(0, 50, 5)
        ]
    assert all(answer.status_code == 200 for answer in answers)
    predicted = [row["prediction"] for a in answers for row in a.json()["predictions"]]
    assert predicted == pytest.approx(list(registry_model_predictions(registry, result.run_id, X)))
    (run,) = inference_runs(settings, name, "diabetes")
    metrics = run.data.metrics
    assert metrics["samples"] == 50 and metrics["requests"] == 10
    assert metrics["prediction_mean"] == pytest.approx(float(pd.Series(predicted).mean()))
    assert metrics["prediction_std"] == pytest.approx(float(pd.Series(predicted).std(ddof=0)))
    assert metrics["prediction_min"] == pytest.approx(min(predicted))
    assert metrics["prediction_max"] == pytest.approx(max(predicted))
    assert "avg_confidence" not in metrics
    table = _parquet(MlflowClient(settings.tracking_uri), run.info.run_id, tmp_path)
    assert list(table["prediction"]) == pytest.approx(predicted)
    assert list(table["age"]) == pytest.approx(list(X["age"]))


def registry_model_predictions(registry: Registry, run_id: str | None, X: pd.DataFrame) -> Any:
    """What the logged model itself predicts for ``X``."""
    from flowscope.tracking.models import load_model

    assert run_id is not None
    folder = registry.settings.journal_dir.parent / "models" / run_id
    local = registry.client.download_artifacts(run_id, "model", str(folder))
    return load_model(local).predict(X)
