"""The prediction service's answers equal the registered model's own, whatever the route,
format or batching."""

from __future__ import annotations

import io
import re
import warnings
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest

from flowscope.serving import create_serving_app
from tests.serving.conftest import IRIS_MODELS, LiveServer, Registry, iris_features, records

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.mark.parametrize("kind", IRIS_MODELS)
def test_predictions_equal_the_models_predict_proba(registry: Registry, kind: str) -> None:
    name = registry.fresh(kind)
    X = iris_features()
    pipeline = registry.pipeline(kind)
    expected = pipeline.predict_proba(X)
    app = create_serving_app(registry.using(monitor=False), f"{name}@champion")
    with TestClient(app) as client:
        answer = client.post("/predict", json=records(X)).json()
        single = client.post("/predict", json=records(X.head(1))[0]).json()
        mlflow_style = client.post(
            "/invocations",
            json={"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}},
        )
    assert answer["ok"] and answer["model"] == name and answer["version"] == "1"
    assert re.fullmatch(r"[0-9a-f]{32}", answer["request_id"]) and answer["latency_ms"] > 0
    classes = [str(label) for label in pipeline.classes_]
    got = np.array([[row["probabilities"][c] for c in classes] for row in answer["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    best = expected.argmax(axis=1)
    assert [row["prediction"] for row in answer["predictions"]] == [classes[i] for i in best]
    assert [row["class_name"] for row in answer["predictions"]] == [classes[i] for i in best]
    np.testing.assert_allclose([r["confidence"] for r in answer["predictions"]], expected.max(1))
    assert single["predictions"][0] == answer["predictions"][0]
    assert mlflow_style.json() == {"predictions": list(pipeline.predict(X))}
    assert mlflow_style.headers["x-model-version"] == "1"


def test_concurrent_requests_are_merged_and_answered_row_by_row(registry: Registry) -> None:
    name = registry.fresh("random_forest")
    X = iris_features()
    expected = registry.pipeline("random_forest").predict_proba(X)
    rows = records(X)
    app = create_serving_app(registry.using(monitor=False), f"{name}@champion")

    def post(index: int) -> tuple[int, list[float]]:
        answer = client.post("/predict", json=rows[index]).json()
        return index, list(answer["predictions"][0]["probabilities"].values())

    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(post, range(len(rows))))
        metrics = client.get("/metrics").text
    for index, probabilities in answers:
        np.testing.assert_allclose(probabilities, expected[index], rtol=1e-12, atol=1e-12)
    model_calls = int(re.search(r"^flowscope_batch_rows_count (\d+)$", metrics, re.M)[1])
    assert model_calls < len(rows)  # concurrent requests shared model calls
    assert re.search(r'^flowscope_requests_total\{endpoint="predict"\} 150$', metrics, re.M)


def test_mlflow_formats_answer_like_mlflow_models_serve(registry: Registry) -> None:
    name = registry.fresh("lightgbm")
    X = iris_features().sample(20, random_state=1)
    expected = {"predictions": list(registry.pipeline("lightgbm").predict(X))}
    rows = records(X)
    bodies = [
        {"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}},
        {
            "dataframe_split": {
                "columns": list(X.columns)[::-1],
                "data": X.iloc[:, ::-1].values.tolist(),
            }
        },
        {"dataframe_records": rows},
        {"instances": rows},
        {"inputs": {column: X[column].tolist() for column in X.columns}},
        {"inputs": rows, "params": {}},
    ]
    app = create_serving_app(registry.using(monitor=False), f"{name}/1")
    with TestClient(app) as client:
        for body in bodies:
            answer = client.post("/invocations", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json() == expected
        as_csv = client.post(
            "/invocations", content=X.to_csv(index=False), headers={"Content-Type": "text/csv"}
        )
    assert as_csv.json() == expected


def test_batch_upload_answers_csv_or_json_by_accept(registry: Registry) -> None:
    name = registry.fresh("xgboost")
    X = iris_features()
    pipeline = registry.pipeline("xgboost")
    app = create_serving_app(registry.using(monitor=False), f"{name}@champion")
    with TestClient(app) as client:
        as_csv = client.post(
            "/predict/batch",
            content=X.to_csv(index=False),
            headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        )
        as_json = client.post(
            "/predict/batch", files={"file": ("flowers.csv", X.to_csv(index=False), "text/csv")}
        )
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(as_csv.text))
    assert list(table.columns[:4]) == list(X.columns)
    assert table["prediction"].tolist() == list(pipeline.predict(X))
    probabilities = table[[f"proba_{c}" for c in pipeline.classes_]].to_numpy()
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(X), rtol=1e-9)
    answer = as_json.json()
    assert answer["ok"] and len(answer["predictions"]) == len(X)
    assert [row["prediction"] for row in answer["predictions"]] == list(pipeline.predict(X))


def test_health_model_and_metrics(registry: Registry) -> None:
    name = registry.fresh("random_forest")
    app = create_serving_app(registry.using(monitor=False), f"{name}@champion")
    with TestClient(app) as client:
        client.post("/predict", json=records(iris_features().head(3)))
        client.post("/predict", json={"nope": 1})
        health = client.get("/health").json()
        model = client.get("/model").json()
        metrics = client.get("/metrics")
    assert health == {"ok": True, "model": name, "version": "1"}
    assert model["alias"] == "champion" and model["version"] == "1" and model["task"] == "iris"
    assert [column["name"] for column in model["signature"]["inputs"]] == list(iris_features())
    assert model["classes"] == ["setosa", "versicolor", "virginica"]
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    assert 'flowscope_requests_total{endpoint="predict"} 2' in text
    assert 'flowscope_request_errors_total{endpoint="predict",status="422"} 1' in text
    assert "flowscope_request_latency_seconds_count 1" in text
    assert f'flowscope_predictions_total{{model="{name}",version="1",class="setosa"}} 3' in text
