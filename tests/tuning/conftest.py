"""Reading back what a study recorded, straight from the MLflow store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Run as MlflowRun

from flowscope.config import Settings

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_runs(settings: Settings, task: str) -> tuple[MlflowRun, list[MlflowRun]]:
    """The one parent run of the study recorded in ``task`` and its trial runs by number."""
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(task)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    parents = [run for run in runs if run.data.tags.get("flowscope.kind") == "tuning"]
    trials = [run for run in runs if run.data.tags.get("flowscope.kind") == "trial"]
    assert len(parents) == 1, [run.info.run_name for run in parents]
    trials.sort(key=lambda run: int(run.data.tags["flowscope.trial_number"]))
    return parents[0], trials


def artifact_json(settings: Settings, run_id: str, path: str, tmp_path: Path) -> Any:
    client = MlflowClient(settings.tracking_uri)
    local = client.download_artifacts(run_id, path, str(tmp_path / "download"))
    return json.loads(Path(local).read_text())


def metric_steps(settings: Settings, run_id: str, key: str) -> dict[int, float]:
    history = MlflowClient(settings.tracking_uri).get_metric_history(run_id, key)
    return {point.step: point.value for point in history}
