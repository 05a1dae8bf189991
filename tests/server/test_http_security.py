"""On a real ``flowscope server``: every path (MLflow's UI, REST API, static files and
404s, the dashboard, /health) carries the security headers, a foreign Host gets 400 from
MLflow's routes and the dashboard alike, and no origin gets CORS (MLflow's own CORS
layers grant every http://localhost page by default; the server takes that back)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import TrackingServer
from tests.web.test_http_security import assert_secured

pytestmark = [pytest.mark.server, pytest.mark.slow]
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    root = tmp_path_factory.mktemp("secured-server")
    started = TrackingServer(root / "server", f"sqlite:///{root / 'mlflow.db'}")
    started.start()
    try:
        yield started
    finally:
        started.stop()


def test_every_kind_of_path_carries_the_headers(server: TrackingServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as web:
        for path, status in (
            ("/", 200),
            (SEARCH, 200),
            ("/ajax-api/2.0/mlflow/experiments/search?max_results=1", 200),
            ("/static-files/favicon.ico", 200),
            ("/api/2.0/mlflow/runs/get?run_id=nope", 404),
            ("/no/such/path", 404),
            ("/health", 200),
            ("/flowscope/experiments", 200),
            ("/flowscope/experiments.json", 200),
            ("/flowscope/no/such/page", 404),
            ("/flowscope/api/docs", 404),
        ):
            answer = web.get(path)
            assert answer.status_code == status, (path, answer.status_code)
            assert_secured(answer, path)
        created = web.post("/api/2.0/mlflow/experiments/create", json={"name": "headers"})
        assert created.status_code == 200
        assert_secured(created, "create")
        renderer = web.get("/static-files/lib/notebook-trace-renderer/index.html")
        assert renderer.status_code == 200
        # Jupyter shows MLflow's trace renderer in an iframe, as MLflow allows
        assert "x-frame-options" not in renderer.headers
        assert "frame-ancestors" not in renderer.headers["content-security-policy"]


@pytest.mark.parametrize("path", [SEARCH, "/", "/flowscope/experiments.json"])
def test_a_foreign_host_is_refused_on_every_part(server: TrackingServer, path: str) -> None:
    for host, status in (("localhost:5000", 200), ("127.0.0.1", 200), ("evil.example", 400)):
        answer = httpx.get(server.url + path, headers={"Host": host})
        assert answer.status_code == status, (path, host)
        assert_secured(answer, f"{host}{path}")
    refused = httpx.get(server.url + path, headers={"Host": "evil.example"})
    assert "evil.example" not in refused.text
    assert refused.json()["error"].startswith("this server does not answer for the host")
    # probes reach the health check by address, as MLflow exempts it
    assert httpx.get(server.url + "/health", headers={"Host": "10.1.2.3"}).status_code == 200


def test_no_origin_gets_cors_and_foreign_writes_are_refused(
    server: TrackingServer, tmp_path: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as web:
        for origin in ("http://localhost:3000", "http://evil.example"):
            preflight = web.options(
                "/api/2.0/mlflow/experiments/create",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )
            assert preflight.status_code == 403, origin
            assert "access-control-allow-origin" not in preflight.headers
            for path in (SEARCH, "/flowscope/experiments.json"):
                read = web.get(path, headers={"Origin": origin})
                assert read.status_code == 200
                assert "access-control-allow-origin" not in read.headers, (origin, path)
            name = f"from-{origin.split('//')[1].replace(':', '-')}"
            write = web.post(
                "/api/2.0/mlflow/experiments/create",
                headers={"Origin": origin},
                json={"name": name},
            )
            assert write.status_code == 403, origin
            found = web.get(
                "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name}
            )
            assert found.status_code == 404  # nothing was created
