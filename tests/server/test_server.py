"""A real ``flowscope server`` on a throwaway PostgreSQL database with a local artifact
folder: MLflow's clients work against it unchanged, its UI answers at ``/``, the dashboard
under ``/flowscope/`` gives what it gives on the database opened directly, and flowscope's
SDK delivers through it exactly once."""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

import flowscope
from flowscope.server import ServerConfig, dashboard_settings
from flowscope.server.artifacts import resolve_proxied_artifacts_in_place
from flowscope.web import create_app
from tests.conftest import make_settings, throwaway_postgres
from tests.servers import TrackingServer, trained_by_a_job
from tests.writers import metric_points

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_postgres("flowscope_server") as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[TrackingServer]:
    process = TrackingServer(tmp_path_factory.mktemp("server"), database, workers=2)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def tracking_uri(server: TrackingServer) -> Iterator[str]:
    """``mlflow``'s fluent API pointed at the server, as ``MLFLOW_TRACKING_URI`` would."""
    mlflow.set_tracking_uri(server.url)
    try:
        yield server.url
    finally:
        mlflow.set_tracking_uri(None)


def _logged_experiment(client: MlflowClient, name: str) -> str:
    experiment_id = client.create_experiment(name)
    for index in range(3):
        run = client.create_run(experiment_id, run_name=f"run-{index}")
        client.log_param(run.info.run_id, "depth", str(index + 2))
        for step in range(5):
            client.log_metric(run.info.run_id, "f1", 0.5 + index / 10 + step / 100, step=step)
        client.set_terminated(run.info.run_id)
    return experiment_id


def test_mlflow_client_reads_back_what_it_logged(server: TrackingServer) -> None:
    client = MlflowClient(server.url)
    experiment_id = client.create_experiment("plain-client")
    run = client.create_run(experiment_id, run_name="plain")
    run_id = run.info.run_id
    client.log_param(run_id, "alpha", "0.1")
    client.set_tag(run_id, "team", "risk")
    for step in range(20):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.set_terminated(run_id)

    stored = client.get_run(run_id)
    assert stored.data.params == {"alpha": "0.1"}
    assert stored.data.tags["team"] == "risk"
    assert stored.info.status == "FINISHED"
    history = client.get_metric_history(run_id, "loss")
    assert sorted((p.step, p.value) for p in history) == [
        (step, 1.0 / (step + 1)) for step in range(20)
    ]
    found = client.search_runs([experiment_id], "params.alpha = '0.1'")
    assert [r.info.run_id for r in found] == [run_id]


def test_fluent_api_logs_params_metrics_and_artifacts_through_the_server(
    server: TrackingServer, tracking_uri: str, tmp_path: Path
) -> None:
    mlflow.set_experiment("fluent")
    notes = tmp_path / "notes.txt"
    notes.write_text("trained on 2026 data\n")
    with mlflow.start_run() as run:
        mlflow.log_param("depth", 4)
        mlflow.log_metric("auc", 0.91, step=1)
        mlflow.log_metric("auc", 0.93, step=2)
        mlflow.log_artifact(str(notes), artifact_path="docs")

    client = MlflowClient(tracking_uri)
    stored = client.get_run(run.info.run_id)
    assert stored.data.params == {"depth": "4"}
    assert stored.data.metrics == {"auc": 0.93}
    assert stored.info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied, not a path
    assert [a.path for a in client.list_artifacts(run.info.run_id, "docs")] == ["docs/notes.txt"]
    back = Path(client.download_artifacts(run.info.run_id, "docs/notes.txt", str(tmp_path)))
    assert back.read_text() == "trained on 2026 data\n"
    # the dashboard, reading the database directly, lists it too
    page = httpx.get(f"{server.url}/flowscope/runs/{run.info.run_id}.json").json()
    assert [a["path"] for a in page["artifacts"]] == ["docs/notes.txt"]
    # the server wrote it under its artifacts destination
    assert [p.read_text() for p in server.artifacts.rglob("notes.txt")] == [
        "trained on 2026 data\n"
    ]


def test_mlflow_ui_answers_at_the_root(server: TrackingServer) -> None:
    answer = httpx.get(server.url + "/")
    assert answer.status_code == 200
    assert "<title>MLflow</title>" in answer.text


def test_health_reports_each_part(server: TrackingServer) -> None:
    answer = httpx.get(server.url + "/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True
    assert set(body["parts"]) == {"database", "artifacts", "dashboard", "jobs"}
    assert all(part["status"] == "ok" for part in body["parts"].values())


def test_dashboard_pages_equal_those_on_the_database_opened_directly(
    server: TrackingServer, database: str, tmp_path: Path
) -> None:
    experiment_id = _logged_experiment(MlflowClient(server.url), "dashboard-equal")
    direct = create_app(make_settings(tmp_path, database, mlflow_ui_url="/"))
    with TestClient(direct) as local:
        for path in ("/experiments.json", f"/experiments/{experiment_id}.json"):
            served = httpx.get(server.url + "/flowscope" + path)
            assert served.status_code == 200, path
            assert served.json() == local.get(path).json(), path
    assert httpx.get(f"{server.url}/flowscope/api/jobs").json()["ok"] is True


def test_dashboard_links_stay_under_its_prefix_and_reach_mlflow(server: TrackingServer) -> None:
    client = MlflowClient(server.url)
    experiment_id = _logged_experiment(client, "dashboard-links")
    run_id = client.search_runs([experiment_id])[0].info.run_id
    web = httpx.Client(base_url=server.url)

    home = web.get("/flowscope")
    assert (home.status_code, home.headers["location"]) == (307, "/flowscope/experiments")
    assert web.get("/flowscope/").headers["location"] == "/flowscope/experiments"

    links: dict[str, set[str]] = {"href": set(), "src": set(), "action": set(), "hx-get": set()}
    for page in (f"/flowscope/experiments/{experiment_id}", f"/flowscope/runs/{run_id}"):
        answer = web.get(page)
        assert answer.status_code == 200, page
        assert answer.headers["link"].startswith(f"<{page}.json>")
        for attribute, link in re.findall(r'(href|src|action|hx-get)="(/[^"]*)"', answer.text):
            links[attribute].add(html.unescape(link))
    every = set().union(*links.values())
    assert {link for link in every if not link.startswith(("/flowscope/", "/#/"))} == set()
    # the run page links to the same run in MLflow's UI, served at the root
    assert f"/#/experiments/{experiment_id}/runs/{run_id}" in links["href"]
    for link in sorted(links["href"] | links["src"]):
        if link.startswith("/flowscope/"):
            assert web.get(link).status_code == 200, link
    missing = web.get("/flowscope/api/jobs/nope")
    assert missing.status_code == 404
    assert missing.json()["ok"] is False


def test_flowscope_sdk_delivers_every_point_once(server: TrackingServer, tmp_path: Path) -> None:
    from flowscope.tracking.store import StoreAccess

    settings = make_settings(tmp_path, server.url)
    assert StoreAccess(settings).store.has_ingest()  # metric points go through bulk ingest
    steps, metrics = 400, 3
    with flowscope.start_run("served", settings=settings, params={"lr": 0.01}) as run:
        for step in range(steps):
            run.log_metrics({f"m{i}": step * 10 + i for i in range(metrics)}, step=step)
    assert run.run_id is not None
    assert run.delivery_error is None
    client = MlflowClient(server.url)
    assert metric_points(client, run.run_id, metrics) == Counter(
        (f"m{i}", step, float(step * 10 + i)) for step in range(steps) for i in range(metrics)
    )
    stored = client.get_run(run.run_id)
    assert stored.data.params["lr"] == "0.01"
    assert stored.info.status == "FINISHED"


@pytest.fixture
def in_place_artifacts(server: TrackingServer) -> Iterator[None]:
    """This process resolves ``mlflow-artifacts:`` roots as the server's own process does."""
    from mlflow.store.artifact.artifact_repository_registry import (
        _artifact_repository_registry as registry,
    )

    before = registry._registry["mlflow-artifacts"]
    resolve_proxied_artifacts_in_place(str(server.artifacts))
    try:
        yield
    finally:
        registry.register("mlflow-artifacts", before)


def test_runs_written_in_place_keep_artifacts_clients_reach_through_the_server(
    server: TrackingServer, database: str, tmp_path: Path, in_place_artifacts: None
) -> None:
    """What the server's own jobs write (on the database, with the dashboard's settings)
    lands at the artifacts destination under a proxied root, so any MLflow client can
    download it through the server."""
    config = ServerConfig(database, str(server.artifacts))
    settings = dashboard_settings(
        config,
        journal_dir=tmp_path / "journal",
        autolog=False,
        sync_on_start=False,
        start_timeout=10.0,
    )
    with flowscope.start_run("in-place", settings=settings) as run:
        run.log_text("fitted\n", "model/notes.txt")
    assert run.run_id is not None
    client = MlflowClient(server.url)
    stored = client.get_run(run.run_id)
    assert stored.info.artifact_uri.startswith("mlflow-artifacts:/")
    back = Path(client.download_artifacts(run.run_id, "model/notes.txt", str(tmp_path)))
    assert back.read_text() == "fitted\n"


def test_a_workbench_job_runs_in_the_server_and_its_model_reaches_clients(
    server: TrackingServer,
) -> None:
    job_id, run_id = trained_by_a_job(
        server.url,
        dataset_id="builtin:iris",
        target="species",
        model_types=["logistic_regression"],
        task="served-jobs",
        seed=3,
    )
    client = MlflowClient(server.url)
    assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:/")
    assert "model" in {a.path for a in client.list_artifacts(run_id)}
    page = httpx.get(f"{server.url}/flowscope/jobs/{job_id}").text
    assert f'href="/#/runs/{run_id}"' in page  # the same run in MLflow's UI
    assert f'href="/flowscope/runs/{run_id}"' in page
