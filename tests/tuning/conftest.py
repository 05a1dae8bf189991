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


@pytest.fixture
def optuna_postgres() -> Any:
    """A second throwaway PostgreSQL database, for Optuna's study storage."""
    import uuid

    from tests.conftest import PG_ADMIN_DSN

    psycopg = pytest.importorskip("psycopg")
    name = f"flowscope_optuna_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
