"""``POST /predict?explain=true``: each row's SHAP contributions, equal to explaining the
logged model directly, and kept with the window's predictions."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from flowscope.explain import explain_model
from flowscope.serving import create_serving_app
from tests.serving.conftest import Registry, inference_runs, iris_features, records

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.mark.parametrize("kind", ["random_forest", "xgboost", "lightgbm"])
def test_explained_predictions_add_up_and_equal_the_sdk(
    registry: Registry, tmp_path: Path, kind: str
) -> None:
    name = registry.fresh(kind)
    X = iris_features().iloc[::10].reset_index(drop=True)
    settings = registry.using(monitor_window_size=1000, monitor_window_seconds=3600)
    with TestClient(create_serving_app(settings, f"{name}@champion")) as client:
        answer = client.post("/predict", params={"explain": "true"}, json=records(X))
        plain = client.post("/predict", json=records(X.head(3)))
    assert answer.status_code == 200, answer.text
    assert "explanation" not in plain.json()["predictions"][0]
    rows = answer.json()["predictions"]
    direct = explain_model(registry.pipeline(kind), X, max_rows=len(X))
    for index, row in enumerate(rows):
        explanation = row["explanation"]
        assert explanation["output"] == row["class_name"]  # the predicted class is explained
        k = [str(o) for o in direct.outputs].index(explanation["output"])
        expected = dict(zip(direct.features, direct.values[index, :, k], strict=True))
        assert explanation["contributions"] == pytest.approx(expected, abs=1e-6)
        assert explanation["base_value"] == pytest.approx(direct.base_values[index, k], abs=1e-6)
        total = explanation["base_value"] + sum(explanation["contributions"].values())
        assert total == pytest.approx(direct.model_output[index, k], abs=1e-5)
    # the monitor keeps the contributions beside the predictions (NaN for unexplained rows)
    (run,) = inference_runs(registry.settings, name)
    local = MlflowClient(registry.settings.tracking_uri).download_artifacts(
        run.info.run_id, "predictions/predictions.parquet", str(tmp_path)
    )
    table = pd.read_parquet(local)
    shap_columns = [f"shap_{feature}" for feature in direct.features]
    assert set(shap_columns) <= set(table.columns)
    explained = table.dropna(subset=shap_columns)
    assert len(explained) == len(X) and len(table) == len(X) + 3
    kept = explained[shap_columns].to_numpy()
    for row in rows:
        answered = [row["explanation"]["contributions"][f] for f in direct.features]
        assert any(np.allclose(stored, answered, atol=1e-9) for stored in kept)
