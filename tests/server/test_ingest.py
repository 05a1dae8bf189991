"""The bulk ingest endpoint leaves MLflow's tables exactly as MLflow's own ``log_batch``
does, refuses what MLflow refuses, and writes nothing of a request it refuses."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.server import ingest
from tests.conftest import make_settings
from tests.tracking.test_fastpath import BATCHES, _state

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _json_value(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _body(batch: list[Any]) -> dict[str, Any]:
    return {
        "metrics": [
            {"key": m.key, "value": _json_value(m.value), "timestamp": m.timestamp, "step": m.step}
            for m in batch
        ]
    }


def _app(settings: Settings) -> FastAPI:
    from flowscope.web import create_app

    return create_app(settings, ingest=True)


@pytest.fixture
def store(tmp_path: Path, store_uri: str) -> Iterator[tuple[TestClient, MlflowClient, str]]:
    settings = make_settings(tmp_path, store_uri)
    client = MlflowClient(store_uri)
    experiment = client.create_experiment(
        f"ingest-{tmp_path.name}", artifact_location=(tmp_path / "a").as_uri()
    )
    with TestClient(_app(settings), raise_server_exceptions=False) as http:
        yield http, client, experiment


def test_ingest_equals_mlflow_log_batch(store: tuple[TestClient, MlflowClient, str]) -> None:
    http, client, experiment = store
    assert http.get("/api/ingest").json()["ingest"] == ingest.INGEST_VERSION
    ours = client.create_run(experiment).info.run_id
    theirs = client.create_run(experiment).info.run_id
    for batch in BATCHES:
        answer = http.post(f"/api/ingest/runs/{ours}/metrics", json=_body(batch))
        assert answer.status_code == 200, answer.text
        assert answer.json()["points"] == len(batch)
        client.log_batch(theirs, metrics=batch)
    assert _state(client, ours) == _state(client, theirs)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"metric": []}, '{"metrics"'),
        ({"metrics": [{"key": "loss", "value": 1.0, "timestamp": 1}, 7]}, "metrics[1] must be"),
        ({"metrics": [{"key": "", "value": 1.0, "timestamp": 1}]}, "metrics[0].key"),
        ({"metrics": [{"key": "a", "value": "1.0", "timestamp": 1}]}, "metrics[0].value"),
        ({"metrics": [{"key": "a", "value": True, "timestamp": 1}]}, "metrics[0].value"),
        ({"metrics": [{"key": "a", "value": 1.0}]}, "metrics[0].timestamp"),
        ({"metrics": [{"key": "a", "value": 1.0, "timestamp": 1, "step": 1.5}]}, "metrics[0].step"),
        ({"metrics": [{"key": "../x", "value": 1.0, "timestamp": 1}]}, "../x"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field_and_writes_nothing(
    store: tuple[TestClient, MlflowClient, str], body: dict[str, Any], message: str
) -> None:
    http, client, experiment = store
    run_id = client.create_run(experiment).info.run_id
    good = {"key": "loss", "value": 1.0, "timestamp": 1, "step": 0}
    if isinstance(body.get("metrics"), list):
        body = {"metrics": [good, *body["metrics"]]}  # a good point before the bad one
        message = message.replace("[0]", "[1]").replace("metrics[1] must", "metrics[2] must")
    answer = http.post(f"/api/ingest/runs/{run_id}/metrics", json=body)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]
    assert client.get_run(run_id).data.metrics == {}  # nothing of the request was stored


def test_unknown_and_deleted_runs_and_bad_json(store: tuple[TestClient, MlflowClient, str]) -> None:
    http, client, experiment = store
    body = {"metrics": [{"key": "loss", "value": 1.0, "timestamp": 1}]}
    unknown = http.post("/api/ingest/runs/0123456789abcdef/metrics", json=body)
    assert unknown.status_code == 404 and "0123456789abcdef" in unknown.json()["error"]
    run_id = client.create_run(experiment).info.run_id
    client.delete_run(run_id)
    deleted = http.post(f"/api/ingest/runs/{run_id}/metrics", json=body)
    assert deleted.status_code == 400 and "deleted" in deleted.json()["error"]
    broken = http.post(
        f"/api/ingest/runs/{run_id}/metrics",
        content=b"{",
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 400


def test_the_dashboard_alone_has_no_ingest(tmp_path: Path, sqlite_uri: str) -> None:
    from flowscope.web import create_app

    with TestClient(create_app(make_settings(tmp_path, sqlite_uri))) as http:
        assert http.get("/api/ingest").status_code == 404


@pytest.mark.server
def test_the_sdk_falls_back_to_log_batch_on_a_plain_mlflow_server(
    mlflow_server: Any, tmp_path: Path
) -> None:
    import flowscope
    from flowscope.tracking.store import StoreAccess

    settings = make_settings(tmp_path, mlflow_server.url)
    assert not StoreAccess(settings).store.has_ingest()
    with flowscope.start_run("plain-server", settings=settings) as run:
        for step in range(50):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    history = MlflowClient(mlflow_server.url).get_metric_history(run.run_id, "loss")
    assert sorted(point.step for point in history) == list(range(50))


class _Proxy:
    """A real HTTP server in front of nothing, answering every request with one status
    and a body that is not the ingest endpoint's own (a proxy's, say)."""

    def __init__(self, status: int, body: bytes) -> None:
        import http.server
        import threading

        answer = (status, body)

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(answer[0])
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(answer[1])))
                self.end_headers()
                self.wfile.write(answer[1])

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [401, 404, 413, 429])
def test_a_refusal_that_is_not_the_endpoints_own_keeps_the_points(status: int) -> None:
    """Only the endpoint's own 400/404 sets points aside; a proxy's 4xx is retried (the
    points stay in the journal), and a 404 makes the SDK ask again whether the server
    has the endpoint at all."""
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    from flowscope.tracking.store import _FastFailRestStore, is_permanent

    proxy = _Proxy(status, b"<html>not here</html>")
    try:
        store = _FastFailRestStore(proxy.url, timeout=5)
        store._ingest = True  # it had the endpoint when it was asked
        with pytest.raises(MlflowException) as refused:
            store.ingest_metrics("0" * 32, [Metric("loss", 0.5, 1, 0)])
        assert not is_permanent(refused.value)
        assert str(status) in str(refused.value)
        assert store._ingest is (None if status == 404 else True)
    finally:
        proxy.close()
