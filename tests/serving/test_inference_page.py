"""The dashboard's inference page of a model, and its JSON twin, from real inference runs."""

from __future__ import annotations

import warnings

from flowscope.serving import create_serving_app
from flowscope.web import create_app
from flowscope.web.inference_charts import drift_figure, inference_figures
from tests.serving.conftest import Registry, iris_features, records

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_inference_page_and_its_json_twin(registry: Registry) -> None:
    name = registry.fresh("random_forest")
    rows = records(iris_features())
    settings = registry.using(monitor_window_size=50, monitor_window_seconds=3600)
    with TestClient(create_serving_app(settings, f"{name}@champion")) as service:
        for start in range(0, 150, 10):
            assert service.post("/predict", json=rows[start : start + 10]).status_code == 200
    with TestClient(create_app(registry.settings), raise_server_exceptions=False) as dashboard:
        data = dashboard.get(f"/models/{name}/inference.json").json()
        html = dashboard.get(f"/models/{name}/inference")
        missing = dashboard.get("/models/no-such-model/inference.json")
    assert data["ok"] and data["model"]["name"] == name and data["model"]["versions"] == ["1"]
    assert len(data["windows"]) == 3 and data["totals"]["samples"] == 150
    assert data["classes"] == ["setosa", "versicolor", "virginica"]
    assert data["features"] == sorted(iris_features().columns)
    window = data["windows"][0]
    assert window["version"] == "1" and window["type"] == "single"
    assert window["metrics"]["samples"] == 50 and set(window["drift"]) == set(data["features"])
    assert sum(window["percentages"].values()) == 100
    assert html.status_code == 200 and "chart-drift" in html.text and "chart-volume" in html.text
    assert html.headers["link"].startswith(f"</models/{name}/inference.json>")
    assert missing.status_code == 404 and missing.json()["ok"] is False


def test_figures_are_built_from_the_page_data_alone() -> None:
    windows = [
        {
            "run_id": f"r{i}",
            "version": "1" if i < 2 else "2",
            "start": f"2026-01-0{i + 1}T00:00:00",
            "end": f"2026-01-0{i + 1}T01:00:00",
            "metrics": {"samples": 10 * (i + 1), "avg_confidence": 0.9, "latency_p50_ms": 2.0},
            "classes": {"a": 5, "b": 5},
            "percentages": {"a": 50.0, "b": 50.0},
            "drift": {"x": 0.05 * i, "y": 0.3} if i else {},
        }
        for i in range(3)
    ]
    data = {"windows": windows, "classes": ["a", "b"], "features": ["x", "y"]}
    data["drift_threshold"] = 0.2
    figures = inference_figures(data)
    assert set(figures) == {"volume", "confidence", "classes", "latency", "drift"}
    assert [trace.name for trace in figures["volume"].data] == ["v1", "v2"]
    heatmap = drift_figure(windows, ["x", "y"], 0.2).data[0]
    assert [list(row) for row in heatmap.z] == [[0.05, 0.1], [0.3, 0.3]]  # windows with drift only
    assert inference_figures({**data, "windows": []}) == {}
