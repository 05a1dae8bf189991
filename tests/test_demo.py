"""The demo workspace: every seed scenario, trained for real, and its model served."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.demo import (
    BATCH_FILE,
    BATCH_ROWS,
    DEMO_WINDOW,
    SHIFTED_BATCH_FILE,
    SHIFTED_FEATURES,
    SINGLE_PREDICTIONS,
    demo_jobs,
)
from flowscope.web import create_app
from tests.conftest import make_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MODEL = "breast-cancer-classifier"


def flowscope_demo(settings: Settings, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``flowscope demo --quick`` as a user runs it, with none of this machine's MLflow or
    flowscope variables (MLflow's progress bars are on unless the command turns them off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWSCOPE_", "MLFLOW_"))}
    done = subprocess.run(
        [sys.executable, "-m", "flowscope.cli", "demo", "--quick"],
        cwd=cwd,
        env={**env, "MLFLOW_TRACKING_URI": settings.tracking_uri},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done


def assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    """Nothing on stderr: no progress bars, logs or warnings a user can do nothing about."""
    assert "Downloading artifacts" not in done.stdout + done.stderr
    assert done.stderr == "", done.stderr


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path, str]:
    """A workspace seeded by the quick demo, and what the command printed."""
    root = tmp_path_factory.mktemp("demo")
    settings = make_settings(root, f"sqlite:///{root / 'mlflow.db'}")
    done = flowscope_demo(settings, root)
    assert_clean(done)
    return settings, root, done.stdout


def inference_runs(settings: Settings) -> dict[str, list]:
    """The demo model's active inference runs by prediction type."""
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name("breast-cancer-inference")
    assert experiment is not None
    found: dict[str, list] = {}
    for run in client.search_runs([experiment.experiment_id]):
        assert run.data.tags["flowscope.kind"] == "inference"
        assert run.data.tags["flowscope.model_name"] == MODEL
        found.setdefault(run.data.params["prediction_type"], []).append(run)
    return found


def test_full_demo_covers_every_scenario() -> None:
    jobs = list(demo_jobs())
    tasks = {job.task for job in jobs}
    assert tasks == {"iris", "breast-cancer", "wine-knn", "diabetes-quantile"}
    assert len({job.model_type for job in jobs if job.task == "iris"}) >= 5
    knn = [job.params for job in jobs if job.task == "wine-knn"]
    for param in ("n_neighbors", "weights", "metric", "algorithm"):
        assert len({params[param] for params in knn}) >= 2
    cancer = [job for job in jobs if job.task == "breast-cancer"]
    assert all(job.thresholds == (0.5, 0.43, 0.35) for job in cancer)


@pytest.mark.slow
def test_quick_demo_seeds_a_workspace(seeded: tuple[Settings, Path, str]) -> None:
    settings, root, output = seeded
    lines = output.splitlines()
    for task in ("iris", "breast-cancer", "wine-knn", "diabetes-quantile"):
        assert any(line.startswith(f"{task}: best run") for line in lines), output
    assert any(line.startswith(f"{MODEL} lifecycle:") for line in lines), output
    client = MlflowClient(settings.tracking_uri)
    # the demo policy put one version in production, recorded with its reasons
    model = client.get_registered_model(MODEL)
    assert "production" in model.aliases
    champion = client.get_model_version(MODEL, model.aliases["production"])
    assert champion.tags["flowscope.lifecycle"] == "production"
    assert client.get_experiment_by_name(f"{MODEL}-lifecycle") is not None
    for name in ("iris-classifier", MODEL):
        assert len(client.search_model_versions(f"name = '{name}'")) == 2
    cancer = client.get_experiment_by_name("breast-cancer")
    (xgb,) = client.search_runs([cancer.experiment_id], "params.model_type = 'xgboost'")
    assert len(client.get_metric_history(xgb.info.run_id, "val_accuracy")) == 100
    assert "recall_at_0.43" in xgb.data.metrics
    quantile = client.get_experiment_by_name("diabetes-quantile")
    (run,) = client.search_runs([quantile.experiment_id])
    assert "coverage_0.1_0.9" in run.data.metrics
    assert (root / ".flowscope" / "journal").is_dir()


@pytest.mark.slow
def test_demo_serves_its_model_and_records_inference_with_drift(
    seeded: tuple[Settings, Path, str],
) -> None:
    settings, _, output = seeded
    threshold = settings.drift_threshold
    runs = inference_runs(settings)
    assert set(runs) == {"single", "batch"}
    production = MlflowClient(settings.tracking_uri).get_registered_model(MODEL).aliases
    # single predictions: one run per window, every prediction in exactly one of them
    singles = runs["single"]
    assert len(singles) == SINGLE_PREDICTIONS // DEMO_WINDOW
    assert sum(run.data.metrics["samples"] for run in singles) == SINGLE_PREDICTIONS
    assert sum(run.data.metrics["requests"] for run in singles) == SINGLE_PREDICTIONS
    for run in runs["single"] + runs["batch"]:
        assert run.data.params["model_version"] == str(production["production"])
        assert run.data.params["model_alias"] == "production"
    # the batch like the training data does not drift; its shifted twin does, exactly in
    # the shifted features: the others hold the same values, so the same PSI
    batches = {run.data.params["input_file"]: run.data.metrics for run in runs["batch"]}
    assert set(batches) == {BATCH_FILE, SHIFTED_BATCH_FILE}
    normal, shifted = batches[BATCH_FILE], batches[SHIFTED_BATCH_FILE]
    assert normal["samples"] == shifted["samples"] == BATCH_ROWS
    psi = {key: value for key, value in normal.items() if key.startswith("drift_psi_")}
    assert len(psi) == 30 and max(psi.values()) < threshold
    assert normal["drift_detected"] == 0
    for key, value in psi.items():
        if key.removeprefix("drift_psi_") in SHIFTED_FEATURES:
            assert shifted[key] > threshold
        else:
            assert shifted[key] == pytest.approx(value)
    assert shifted["drift_detected"] == 1
    assert shifted["drift_features"] == len(SHIFTED_FEATURES)
    drifted = ", ".join(sorted(SHIFTED_FEATURES))
    assert f"batch {SHIFTED_BATCH_FILE} ({BATCH_ROWS} rows, drift in {drifted})" in output
    assert f"batch {BATCH_FILE} ({BATCH_ROWS} rows, no drift)" in output

    # what the dashboard shows on first open: the model's inference page and the Inference tab
    with TestClient(create_app(settings), raise_server_exceptions=False) as dashboard:
        page = dashboard.get(f"/models/{MODEL}/inference.json").json()
        html = dashboard.get(f"/models/{MODEL}/inference")
        experiment = MlflowClient(settings.tracking_uri).get_experiment_by_name("breast-cancer")
        tab = dashboard.get(
            f"/experiments/{experiment.experiment_id}.json", params={"tab": "inference"}
        ).json()
    assert page["ok"] and len(page["windows"]) == len(singles) + 2
    assert page["totals"]["samples"] == SINGLE_PREDICTIONS + 2 * BATCH_ROWS
    assert page["totals"]["drifted_windows"] == 1  # the shifted batch, and nothing else
    (drifting,) = [w for w in page["windows"] if w["metrics"].get("drift_detected")]
    assert drifting["input_file"] == SHIFTED_BATCH_FILE
    assert len(page["features"]) == 30
    assert html.status_code == 200 and "chart-drift" in html.text
    assert tab["ok"] and tab["total"] == len(singles) + 2
    assert {row["kind"] for row in tab["runs"]} == {"inference"}
    assert {t["name"]: t["count"] for t in tab["tabs"]}["inference"] == len(singles) + 2


@pytest.mark.slow
def test_a_workspace_seeded_without_inference_gets_it(
    seeded: tuple[Settings, Path, str],
) -> None:
    """A workspace seeded before the demo recorded inference: the next `flowscope demo`
    leaves the training runs alone and records the inference."""
    settings, root, _ = seeded
    client = MlflowClient(settings.tracking_uri)
    for found in inference_runs(settings).values():
        for run in found:
            client.delete_run(run.info.run_id)
    training = len(client.search_runs([client.get_experiment_by_name("iris").experiment_id]))
    done = flowscope_demo(settings, root)
    assert_clean(done)
    assert "already seeded" in done.stdout and "inference:" in done.stdout
    runs = inference_runs(settings)
    assert len(runs["single"]) == SINGLE_PREDICTIONS // DEMO_WINDOW and len(runs["batch"]) == 2
    assert len(client.search_runs([client.get_experiment_by_name("iris").experiment_id])) == (
        training
    )
