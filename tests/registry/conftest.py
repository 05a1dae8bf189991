"""Registry fixtures: a fresh SQLite store per test, copied from one migrated template
(creating MLflow's schema takes seconds), and helpers that register versions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def _template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # creates the schema
    return path


@pytest.fixture
def sqlite_uri(tmp_path: Path, _template_db: Path) -> str:
    """Overrides the suite's fixture: the same empty store, without the migration wait."""
    target = tmp_path / "mlflow.db"
    shutil.copyfile(_template_db, target)
    return f"sqlite:///{target}"
