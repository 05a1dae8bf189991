"""Reading back what a study recorded, straight from the MLflow store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run as MlflowRun

from flowscope.config import Settings
from tests.conftest import throwaway_postgres

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


@pytest.fixture
def optuna_postgres() -> Iterator[str]:
    """A second throwaway PostgreSQL database, for Optuna's study storage."""
    with throwaway_postgres("flowscope_optuna") as url:
        yield url
