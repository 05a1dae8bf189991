"""Every response of the dashboard carries the security headers (pages, JSON, static
files, downloads, 404s, 400s, 405s and a 500), a foreign Host gets a 400, and CORS is off
unless origins are configured; in process."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowscope.config import Settings
from flowscope.web import create_app
from tests.web.conftest import experiment_id

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}
EVIL_ORIGIN = "http://evil.example"


def assert_secured(response, what: str) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (what, name, response.status_code)
    policy = response.headers["content-security-policy"]
    script_src = policy.split("script-src ")[1].split(";")[0]
    assert "'unsafe-inline'" not in script_src, what
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy, what
    assert "camera=()" in response.headers["permissions-policy"], what
    assert "access-control-allow-origin" not in response.headers, what
    assert len(response.headers.get_list("content-security-policy")) == 1, what


@pytest.fixture
def app_with_a_fault(seeded: Settings) -> Iterator[TestClient]:
    """The dashboard with one more route that fails unexpectedly (a bug's 500)."""
    app = create_app(seeded)

    @app.get("/api/fault")
    def fault() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_every_route_and_error_carries_the_headers(app_with_a_fault: TestClient) -> None:
    client = app_with_a_fault
    wine = experiment_id(client, "wine-knn")
    run_id = client.get(f"/experiments/{wine}.json").json()["runs"][0]["run_id"]
    values = {
        "experiment_id": wine,
        "run_id": run_id,
        "name": "iris-classifier",
        "job_id": "no-such-job",
        "dataset_id": "no-such-dataset",
        "download_id": "no-such-download",
        "path": "evaluation/metrics.json",
        "extension": "csv",
    }
    statuses: dict[str, int] = {}
    schema = client.get("/api/openapi").json()
    for template, operations in schema["paths"].items():
        if "get" not in operations:
            continue
        path = template.format(**values)
        answer = client.get(path)
        assert_secured(answer, path)
        statuses[path] = answer.status_code
    assert len(statuses) > 25 and 200 in statuses.values() and 404 in statuses.values()
    for path, status in (
        ("/static/app.js", 200),
        ("/static/htmx.min.js", 200),
        ("/vendor/plotly.min.js", 200),
        ("/static/../app.py", 404),
        ("/no/such/page", 404),
        ("/api/no/such/thing", 404),
        (f"/experiments/{wine}.json?filter=metrics.accuracy >>> 1", 400),
        ("/api/fault", 500),
        ("/api/docs", 404),  # Swagger UI (a CDN and an inline script) is not served
    ):
        answer = client.get(path)
        assert answer.status_code == status, (path, answer.status_code)
        assert_secured(answer, path)
    refused = client.put("/experiments")
    assert refused.status_code == 405
    assert_secured(refused, "PUT /experiments")


def test_only_pages_with_webgl_charts_allow_eval(client: TestClient) -> None:
    wine = experiment_id(client, "wine-knn")
    runs = [run["run_id"] for run in client.get(f"/experiments/{wine}.json").json()["runs"]]
    compared = client.get("/compare", params={"runs": ",".join(runs[:4])})
    assert 'data-name="parallel"' in compared.text
    assert "'unsafe-eval'" in compared.headers["content-security-policy"]
    assert "x-flowscope-webgl-eval" not in compared.headers
    for path in ("/experiments", f"/runs/{runs[0]}", f"/compare.json?runs={runs[0]},{runs[1]}"):
        assert "'unsafe-eval'" not in client.get(path).headers["content-security-policy"]


def test_no_template_holds_an_inline_script_or_handler() -> None:
    """What the policy would refuse never reaches it: every script has a src, no element
    has an on... attribute, no link is javascript:."""
    import re

    templates = Path(__file__).resolve().parents[2] / "src" / "flowscope"
    for page in [*templates.glob("web/templates/*.html"), *templates.glob("reports/templates/*")]:
        text = page.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text, flags=re.IGNORECASE):
            assert "src=" in tag, (page.name, tag)
        assert not re.search(r"\son[a-z]+\s*=", text, flags=re.IGNORECASE), page.name
        assert "javascript:" not in text.lower() and "hx-on" not in text, page.name


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost", 200),
        ("localhost:5050", 200),
        ("127.0.0.1:5050", 200),
        ("[::1]:5050", 200),
        ("evil.example", 400),
        ("localhost.evil.example:5050", 400),
        ("<script>alert(1)</script>", 400),
    ],
)
def test_a_foreign_host_gets_a_clear_400(seeded: Settings, host: str, status: int) -> None:
    app = create_app(seeded.model_copy(update={"allowed_hosts": None}), bind_host="127.0.0.1")
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/experiments.json", headers={"Host": host})
    assert answer.status_code == status
    assert_secured(answer, host)
    if status == 400:
        assert answer.json()["error"].startswith("this server does not answer for the host")
        assert host not in answer.text and "evil" not in answer.text


def test_the_listening_address_and_configured_names_are_answered(seeded: Settings) -> None:
    configured = seeded.model_copy(update={"allowed_hosts": "dash.example.com,*.team.example"})
    app = create_app(configured, bind_host="192.168.7.7")
    with TestClient(app) as client:
        for host in ("192.168.7.7:5050", "dash.example.com", "a.team.example", "localhost"):
            assert client.get("/experiments.json", headers={"Host": host}).status_code == 200
        for host in ("192.168.7.8", "dash.example.com.evil.example", "testserver"):
            assert client.get("/experiments.json", headers={"Host": host}).status_code == 400


def test_cors_is_off_for_every_origin_by_default(client: TestClient) -> None:
    jobs_before = client.get("/api/jobs").json()
    preflight = client.options(
        "/api/jobs",
        headers={"Origin": EVIL_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    assert EVIL_ORIGIN not in preflight.text
    for origin in (EVIL_ORIGIN, "http://localhost:3000", "null"):
        read = client.get("/experiments.json", headers={"Origin": origin})
        assert read.status_code == 200
        assert "access-control-allow-origin" not in read.headers
        assert "access-control-allow-credentials" not in read.headers
        write = client.post(
            "/api/jobs",
            headers={"Origin": origin},
            json={"dataset": "iris", "target": "species", "model_types": ["knn"]},
        )
        assert write.status_code == 403, origin
        assert_secured(write, origin)
    assert client.get("/api/jobs").json() == jobs_before  # nothing was queued
    # the dashboard's own pages post with their own origin
    own = client.post("/api/jobs", headers={"Origin": "http://testserver"}, json={})
    assert own.status_code != 403


def test_configured_origins_get_cors_and_others_still_do_not(seeded: Settings) -> None:
    allowed = "https://app.example.com"
    app = create_app(seeded.model_copy(update={"cors_allowed_origins": allowed}))
    with TestClient(app) as client:
        preflight = client.options(
            "/api/jobs",
            headers={
                "Origin": allowed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == allowed
        assert "POST" in preflight.headers["access-control-allow-methods"]
        read = client.get("/experiments.json", headers={"Origin": allowed})
        assert read.headers["access-control-allow-origin"] == allowed
        assert "Origin" in read.headers["vary"]
        other = client.get("/experiments.json", headers={"Origin": EVIL_ORIGIN})
        assert "access-control-allow-origin" not in other.headers
