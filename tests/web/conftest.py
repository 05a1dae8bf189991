"""A demo store seeded once for the dashboard tests, and an in-process client on it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowscope
from flowscope.config import Settings
from tests.conftest import make_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

XSS_NAME = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The quick demo (every scenario, real models) plus runs with hostile names and a
    plain inference run, in one SQLite store shared by the dashboard tests."""
    from flowscope.demo import seed_demo

    root = tmp_path_factory.mktemp("dashboard")
    settings = make_settings(root, f"sqlite:///{root / 'mlflow.db'}")
    seed_demo(settings, quick=True)
    with flowscope.start_run("iris", run_name=XSS_NAME, settings=settings) as run:
        run.log_params({"note": "<script>alert(2)</script>"})
        run.log_metrics({"accuracy": 0.1})
        run.set_tags({"owner": "<b>bold</b>"})
    with flowscope.start_run("iris", run_name="served", kind="inference", settings=settings) as run:
        run.log_metrics({"samples": 42})
    return settings


@pytest.fixture
def client(seeded: Settings, tmp_path: Path) -> Iterator[TestClient]:
    from flowscope.web import create_app

    with TestClient(create_app(seeded), raise_server_exceptions=False) as test_client:
        yield test_client


def experiment_id(client: TestClient, name: str) -> str:
    data = client.get("/experiments.json").json()
    return next(e["experiment_id"] for e in data["experiments"] if e["name"] == name)
