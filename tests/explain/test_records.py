"""Explanations logged into runs: by the SDK, by training (or skipped, never failing it), and
by ``flowscope explain`` on a run already in the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

import flowscope
from flowscope.config import Settings
from flowscope.errors import FlowscopeError
from flowscope.explain import SKIPPED_TAG
from flowscope.explain.explanation import BASE_COLUMN, ROW_COLUMN
from flowscope.explain.stored import explain_stored_run
from flowscope.modeling.data import load_builtin
from flowscope.modeling.train import train
from tests.conftest import make_settings
from tests.explain import reference
from tests.explain.test_shap_values import fitted, numeric_data

pytest.importorskip("shap")

EXPLAIN_FILES = {
    "explain/shap_values.parquet",
    "explain/rows.parquet",
    "explain/summary.json",
    "explain/bar.png",
    "explain/beeswarm.png",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One SQLite store for the module: creating MLflow's tables costs seconds."""
    root = tmp_path_factory.mktemp("explain-store")
    return make_settings(root, f"sqlite:///{root / 'mlflow.db'}")


def _files(client: MlflowClient, run_id: str, folder: str) -> set[str]:
    return {item.path for item in client.list_artifacts(run_id, folder)}


def _download(client: MlflowClient, run_id: str, path: str, into: Path) -> Path:
    return Path(client.download_artifacts(run_id, path, str(into)))


def test_logged_values_equal_brute_force(store: Settings, tmp_path: Path) -> None:
    frame, target = numeric_data("binary")
    pipeline = fitted("random_forest", "binary", frame, target)
    background = frame.iloc[120:126]
    with flowscope.start_run("explained", settings=store) as run:
        explanation = run.log_explanations(pipeline, frame.iloc[:4], background=background)
    client = MlflowClient(store.tracking_uri)

    assert _files(client, run.run_id, "explain") == EXPLAIN_FILES
    logged = pd.read_parquet(_download(client, run.run_id, "explain/shap_values.parquet", tmp_path))
    assert list(logged.columns) == [ROW_COLUMN, *frame.columns, BASE_COLUMN]
    for row in range(4):
        expected = reference.interventional(
            lambda matrix: pipeline.predict_proba(pd.DataFrame(matrix, columns=frame.columns))[
                :, 1
            ],
            frame.to_numpy()[row],
            background.to_numpy(),
        )
        np.testing.assert_allclose(
            logged.loc[logged[ROW_COLUMN] == row, list(frame.columns)].to_numpy()[0],
            expected[:, 0],
            atol=1e-6,
        )
    summary = json.loads(
        _download(client, run.run_id, "explain/summary.json", tmp_path).read_text()
    )
    assert summary["output_space"] == "probability"
    assert summary["explainer"] == "shap_tree" and summary["explainer_reason"]
    assert summary["shap_additivity_error"] < 1e-6
    assert list(summary["mean_abs_shap"]["yes"]) == list(summary["ranks"]["yes"])
    metrics = client.get_run(run.run_id).data.metrics
    assert metrics["shap_additivity_error"] == pytest.approx(explanation.additivity_error)


def test_training_explains_held_out_rows_by_default(store: Settings, tmp_path: Path) -> None:
    frame, target = load_builtin("iris")
    result = train(
        frame, target, "random_forest", {"n_estimators": 20}, task="iris", settings=store
    )
    client = MlflowClient(store.tracking_uri)

    assert _files(client, result.run_id, "explain") == EXPLAIN_FILES
    run = client.get_run(result.run_id)
    assert run.data.metrics["shap_additivity_error"] < 1e-9
    assert run.data.metrics["explain_time_s"] > 0
    assert SKIPPED_TAG not in run.data.tags
    rows = pd.read_parquet(_download(client, result.run_id, "explain/rows.parquet", tmp_path))
    assert len(rows) == 30 and list(rows.columns) == list(frame.drop(columns=[target]).columns)
    values = pd.read_parquet(
        _download(client, result.run_id, "explain/shap_values.parquet", tmp_path)
    )
    assert len(values) == 30 * 3  # every held-out row, once per class


def test_a_model_that_cannot_be_explained_still_trains_with_the_reason(
    store: Settings,
) -> None:
    frame, target = numeric_data("regression")
    data = frame.assign(y=target)
    result = train(
        data, "y", "lightgbm_quantile", {"n_estimators": 5}, task="quantiles", settings=store
    )
    run = MlflowClient(store.tracking_uri).get_run(result.run_id)

    assert run.info.status == "FINISHED"
    assert "sorts its per-quantile predictions" in run.data.tags[SKIPPED_TAG]
    assert "pinball_0.5" in run.data.metrics
    assert not _files(MlflowClient(store.tracking_uri), result.run_id, "explain")


def test_explain_false_logs_no_explanation(store: Settings) -> None:
    frame, target = load_builtin("iris")
    result = train(frame, target, "logistic_regression", task="iris", settings=store, explain=False)
    client = MlflowClient(store.tracking_uri)
    assert not _files(client, result.run_id, "explain")
    assert "shap_additivity_error" not in client.get_run(result.run_id).data.metrics


def test_explain_a_stored_run_from_its_rows_or_a_csv(store: Settings, tmp_path: Path) -> None:
    frame, target = load_builtin("wine")
    result = train(frame, target, "knn", task="wine", settings=store, explain=False)
    client = MlflowClient(store.tracking_uri)

    with pytest.raises(FlowscopeError, match="stored no held-out rows"):
        explain_stored_run(store, result.run_id)
    csv = tmp_path / "rows.csv"
    frame.head(12).to_csv(csv, index=False)  # the target column is ignored
    explanation = explain_stored_run(store, result.run_id, data=csv, rows=5)

    assert len(explanation.values) == 5 and explanation.additivity_error < 1e-12
    assert _files(client, result.run_id, "explain") == EXPLAIN_FILES
    again = explain_stored_run(store, result.run_id)  # now from the stored rows
    np.testing.assert_allclose(again.values, explanation.values, atol=1e-12)


def test_cli_explain_of_a_run_without_a_model_exits_1(store: Settings, tmp_path: Path) -> None:
    with flowscope.start_run("plain", settings=store) as run:
        run.log_metrics({"loss": 1.0})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWSCOPE_", "MLFLOW_"))}
    done = subprocess.run(
        [sys.executable, "-m", "flowscope.cli", "explain", run.run_id],
        cwd=tmp_path,
        env={**env, "MLFLOW_TRACKING_URI": store.tracking_uri},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: run {run.run_id} has no logged model (no 'model' artifact); "
        "there is nothing to explain"
    )
    assert "Traceback" not in done.stderr
