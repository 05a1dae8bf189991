"""The demo workspace: every seed scenario, trained for real."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.demo import demo_jobs, seed_demo


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
def test_quick_demo_seeds_a_workspace(settings: Settings) -> None:
    summary = seed_demo(settings, quick=True)
    assert len(summary) == 5
    assert all("best run" in line for line in summary[:4])
    assert "lifecycle" in summary[4]
    client = MlflowClient(settings.tracking_uri)
    # the demo policy put one version in production, recorded with its reasons
    model = client.get_registered_model("breast-cancer-classifier")
    assert "production" in model.aliases
    champion = client.get_model_version("breast-cancer-classifier", model.aliases["production"])
    assert champion.tags["flowscope.lifecycle"] == "production"
    assert client.get_experiment_by_name("breast-cancer-classifier-lifecycle") is not None
    for name in ("iris-classifier", "breast-cancer-classifier"):
        assert len(client.search_model_versions(f"name = '{name}'")) == 2
    cancer = client.get_experiment_by_name("breast-cancer")
    (xgb,) = client.search_runs([cancer.experiment_id], "params.model_type = 'xgboost'")
    assert len(client.get_metric_history(xgb.info.run_id, "val_accuracy")) == 100
    assert "recall_at_0.43" in xgb.data.metrics
    quantile = client.get_experiment_by_name("diabetes-quantile")
    (run,) = client.search_runs([quantile.experiment_id])
    assert "coverage_0.1_0.9" in run.data.metrics
    assert Path(settings.journal_dir).exists()
