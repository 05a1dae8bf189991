"""The demo workspace: every seed scenario, trained for real, and its model served."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.demo import (
    BATCH_FILE,
    BATCH_ROWS,
    DEMO_STUDY,
    DEMO_WINDOW,
    QUICK_DEMO_STUDY_TRIALS,
    SHIFTED_BATCH_FILE,
    SHIFTED_FEATURES,
    SINGLE_PREDICTIONS,
    demo_jobs,
    record_demo_study,
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
def test_demo_tunes_lightgbm_on_breast_cancer(seeded: tuple[Settings, Path, str]) -> None:
    """The quick demo's study, as ``flowscope tune`` leaves one: a tuning run with a trial
    run per trial in Optuna's storage beside the store, pruned trials among them, the best
    refit unregistered, and the study on the Tuning tab and its page."""
    optuna = pytest.importorskip("optuna")
    settings, root, output = seeded
    study = optuna.load_study(study_name=DEMO_STUDY, storage=f"sqlite:///{root / 'optuna.db'}")
    assert len(study.trials) == QUICK_DEMO_STUDY_TRIALS
    assert any(trial.intermediate_values for trial in study.trials)  # boosting rounds

    client = MlflowClient(settings.tracking_uri)
    cancer = client.get_experiment_by_name("breast-cancer")
    (parent,) = client.search_runs([cancer.experiment_id], "tags.`flowscope.kind` = 'tuning'")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["flowscope.study"] == DEMO_STUDY
    assert parent.data.params["model_type"] == "lightgbm"
    children = client.search_runs(
        [cancer.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    trials = {
        int(run.data.tags["flowscope.trial_number"]): run
        for run in children
        if run.data.tags["flowscope.kind"] == "trial"
    }
    assert sorted(trials) == [trial.number for trial in study.trials]
    status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
    for trial in study.trials:
        assert trials[trial.number].info.status == status[trial.state.name]
        if trial.state.name == "COMPLETE":
            assert trials[trial.number].data.metrics["roc_auc"] == trial.value
    (refit,) = [run for run in children if run.data.tags["flowscope.kind"] == "training"]
    assert refit.data.params["model.num_leaves"] == str(study.best_params["num_leaves"])
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 2  # not registered
    best = study.best_trial
    assert (
        f"breast-cancer study {DEMO_STUDY}: {QUICK_DEMO_STUDY_TRIALS} trials" in output
        and f"best trial {best.number} with roc_auc = {best.value:.4f}" in output
    )

    with TestClient(create_app(settings), raise_server_exceptions=False) as dashboard:
        tab = dashboard.get(
            f"/experiments/{cancer.experiment_id}.json", params={"tab": "tuning"}
        ).json()
        page = dashboard.get(f"/studies/{parent.info.run_id}.json").json()
    (listed,) = tab["studies"]
    assert listed["run_id"] == parent.info.run_id and listed["name"] == DEMO_STUDY
    assert listed["counts"]["total"] == QUICK_DEMO_STUDY_TRIALS
    assert listed["best_value"] == study.best_value
    assert page["ok"] and page["best"]["number"] == best.number
    assert len(page["intermediate"]["trials"]) == QUICK_DEMO_STUDY_TRIALS


@pytest.mark.slow
def test_a_demo_seeded_again_tunes_a_study_of_its_own(tmp_path: Path) -> None:
    """Seeded once more (``--again``), the demo does not resume its study, whose trials are
    all done, but tunes another beside it."""
    optuna = pytest.importorskip("optuna")
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"  # beside the store, as the demo's is
    optuna.create_study(study_name=DEMO_STUDY, storage=storage)
    line = record_demo_study(settings, quick=True)
    assert line.startswith(f"breast-cancer study {DEMO_STUDY}-2: {QUICK_DEMO_STUDY_TRIALS} trials")
    assert len(optuna.load_study(study_name=DEMO_STUDY, storage=storage).trials) == 0
    again = optuna.load_study(study_name=f"{DEMO_STUDY}-2", storage=storage)
    assert len(again.trials) == QUICK_DEMO_STUDY_TRIALS


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


@pytest.mark.slow
def test_the_demo_leaves_a_file_to_upload_to_the_workbench(
    seeded: tuple[Settings, Path, str],
) -> None:
    from flowscope.web import create_app

    settings, root, output = seeded
    assert "workbench: upload customers.csv at /workbench (target: churned)" in output
    sample = root / "customers.csv"
    expected = pd.read_csv(sample)
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        with sample.open("rb") as handle:
            answer = http.post("/api/datasets", files={"file": ("customers.csv", handle)})
        assert answer.status_code == 201, answer.text
        view = http.get(
            f"/api/datasets/{answer.json()['dataset_id']}", params={"target": "churned"}
        ).json()
    assert view["problem"] == "binary"
    schema = view["profile"]["schema"]
    assert {name: schema[name]["missing"] for name in expected.columns} == {
        name: int(count) for name, count in expected.isna().sum().items()
    }
    assert expected["tenure_months"].isna().any() and expected["plan"].isna().any()
    assert expected["plan"].dropna().map(type).eq(str).all()  # text categories
