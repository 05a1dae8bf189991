"""flowscope's SDK and MLflow's client through a real ``flowscope server --auth`` on
PostgreSQL: an API token in ``MLFLOW_TRACKING_TOKEN`` takes every point to the run exactly
once (run creation through MLflow's routes, points through the bulk ingest endpoint), and a
token or user without EDIT on the experiment writes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

import flowscope
from tests.conftest import make_settings, throwaway_postgres
from tests.servers import TrackingServer
from tests.writers import metric_points

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.slow]

ADMIN = ("admin", "admin-passphrase-1")
USERS = {"carol": "carol-passphrase", "dave": "dave-passphrase1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    with throwaway_postgres("flowscope_auth_sdk") as database:
        process = TrackingServer(
            tmp_path_factory.mktemp("auth-server"),
            database,
            workers=2,
            args=["--auth"],
            env={
                "FLOWSCOPE_ADMIN_USERNAME": ADMIN[0],
                "FLOWSCOPE_ADMIN_PASSWORD": ADMIN[1],
                "FLOWSCOPE_SECRET_KEY": "a-test-key-shared-by-the-workers",
            },
        )
        process.start()
        try:
            for user, password in USERS.items():
                made = httpx.post(
                    f"{process.url}/api/2.0/mlflow/users/create",
                    json={"username": user, "password": password},
                    auth=ADMIN,
                )
                assert made.status_code == 200, made.text
            yield process
        finally:
            process.stop()


def token(server: TrackingServer, user: str, scope: str) -> str:
    made = httpx.post(
        f"{server.url}/flowscope/api/tokens",
        json={"name": f"{user}-{scope}", "scope": scope},
        auth=(user, USERS[user]),
    )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def test_the_sdk_delivers_every_point_once_with_a_token(
    server: TrackingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowscope.tracking.store import StoreAccess

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token(server, "carol", "write"))
    settings = make_settings(tmp_path, server.url)
    assert StoreAccess(settings).store.has_ingest()  # the ingest endpoint let the token in
    steps, metrics = 200, 3
    with flowscope.start_run("carols-task", settings=settings, params={"lr": 0.1}) as run:
        for step in range(steps):
            run.log_metrics({f"m{i}": step * 10 + i for i in range(metrics)}, step=step)
    assert run.run_id is not None and run.delivery_error is None
    client = MlflowClient(server.url)  # the same token, from the environment
    assert metric_points(client, run.run_id, metrics) == Counter(
        (f"m{i}", step, float(step * 10 + i)) for step in range(steps) for i in range(metrics)
    )
    assert client.get_run(run.run_id).data.params == {"lr": "0.1"}


def test_without_edit_on_the_experiment_nothing_is_written(
    server: TrackingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token(server, "carol", "write"))
    carol = MlflowClient(server.url)
    experiment = carol.create_experiment("carols-private")  # MANAGE for carol, READ for others
    run_id = carol.create_run(experiment).info.run_id
    points = {"metrics": [{"key": "m0", "value": 1.0, "timestamp": 1, "step": 0}]}
    ingest = f"{server.url}/flowscope/api/ingest/runs/{run_id}/metrics"
    for headers, who in (
        ({"Authorization": f"Bearer {token(server, 'dave', 'write')}"}, "dave"),
        ({"Authorization": f"Bearer {token(server, 'carol', 'read')}"}, "a read token"),
    ):
        refused = httpx.post(ingest, json=points, headers=headers)
        assert refused.status_code == 403, (who, refused.text)
        mlflow_refused = httpx.post(
            f"{server.url}/api/2.0/mlflow/runs/log-metric",
            json={"run_id": run_id, "key": "m0", "value": 2.0, "timestamp": 2, "step": 0},
            headers=headers,
        )
        assert mlflow_refused.status_code == 403, (who, mlflow_refused.text)
    assert carol.get_metric_history(run_id, "m0") == []
    anonymous = httpx.post(ingest, json=points)
    assert anonymous.status_code == 401
    assert carol.get_metric_history(run_id, "m0") == []
