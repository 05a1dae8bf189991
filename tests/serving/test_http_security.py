"""The prediction service: security headers on every answer (predictions, probes, the
schema, 404s, refusals), a foreign Host gets 400 except on the probes, and no origin gets
CORS or may post a prediction from its page; in process."""

from __future__ import annotations

import warnings

from flowscope.serving import create_serving_app
from tests.serving.conftest import Registry, iris_features, records
from tests.web.test_http_security import EVIL_ORIGIN, assert_secured

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_every_answer_carries_the_headers_and_hosts_are_checked(registry: Registry) -> None:
    name = registry.fresh()
    record = records(iris_features())[0]
    settings = registry.using(monitor=False, allowed_hosts=None)
    app = create_serving_app(settings, f"{name}@champion", bind_host="127.0.0.1")
    with TestClient(app, base_url="http://127.0.0.1:8080") as client:
        for method, path, status in (
            ("GET", "/health", 200),
            ("GET", "/ping", 200),
            ("GET", "/version", 200),
            ("GET", "/model", 200),
            ("GET", "/metrics", 200),
            ("GET", "/openapi.json", 200),
            ("GET", "/docs", 404),  # Swagger UI (a CDN, an inline script) is not served
            ("GET", "/nope", 404),
            ("POST", "/predict", 200),
            ("GET", "/predict", 405),
        ):
            answer = client.request(method, path, json=record if method == "POST" else None)
            assert answer.status_code == status, (path, answer.status_code)
            assert_secured(answer, path)
        bad = client.post("/predict", content=b"{", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400
        assert_secured(bad, "malformed")

        foreign = client.post("/predict", json=record, headers={"Host": "evil.example"})
        assert foreign.status_code == 400 and "evil.example" not in foreign.text
        assert_secured(foreign, "foreign host")
        probe = client.get("/ping", headers={"Host": "10.0.0.9:8080"})
        assert probe.status_code == 200  # probes reach it by address

        served = client.get("/metrics").text
        preflight = client.options(
            "/predict", headers={"Origin": EVIL_ORIGIN, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 403
        assert "access-control-allow-origin" not in preflight.headers
        posted = client.post("/predict", json=record, headers={"Origin": EVIL_ORIGIN})
        assert posted.status_code == 403
        assert client.get("/metrics").text == served  # no prediction was made
        read = client.get("/model", headers={"Origin": EVIL_ORIGIN})
        assert read.status_code == 200 and "access-control-allow-origin" not in read.headers
