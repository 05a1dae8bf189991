"""Bad input gets its status and a JSON error, never a 500 or the payload echoed back, and
the service goes on serving. (``/invocations`` answers in MLflow's error shape:
test_scoring.py.)"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flowscope.serving import create_serving_app
from tests.serving.conftest import LiveServer, Registry, records, synthetic_frame

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SECRET = "4111-1111-1111-1111"
GOOD = records(synthetic_frame(5).drop(columns=["label"]))[0]
JSON = {"Content-Type": "application/json"}


def _with(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


CASES = [
    ("malformed JSON", "/predict", b'{"x0": 1,', JSON, 400, "not valid JSON"),
    ("empty body", "/predict", b"", JSON, 400, "empty"),
    ("blank body", "/predict", b"  \n", JSON, 400, "empty"),
    ("JSON scalar", "/predict", b"42", JSON, 400, "JSON object"),
    ("empty list", "/predict", b"[]", JSON, 400, "no records"),
    ("no content type", "/predict", _with(), {}, 415, "content type"),
    ("wrong content type", "/predict", _with(), {"Content-Type": "text/plain"}, 415, "text/plain"),
    (
        "latin-1 charset",
        "/predict",
        _with(),
        {"Content-Type": "application/json; charset=latin-1"},
        415,
        "UTF-8",
    ),
    ("not UTF-8", "/predict", b'{"x0": "\xff"}', JSON, 400, "not valid JSON"),
    (
        "missing column",
        "/predict",
        json.dumps({k: v for k, v in GOOD.items() if k != "x3"}).encode(),
        JSON,
        422,
        "'x3'",
    ),
    ("extra column", "/predict", _with(card=SECRET), JSON, 422, "'card'"),
    ("text in a number column", "/predict", _with(x1=SECRET), JSON, 422, "'x1'"),
    ("number in a text column", "/predict", _with(region=7), JSON, 422, "'region'"),
    ("list in a number column", "/predict", _with(x2=[1, 2]), JSON, 422, "'x2'"),
    ("infinity", "/predict", _with(x0=float("inf")), JSON, 422, "'x0'"),
    ("NaN in a boolean column", "/predict", _with(member=float("nan")), JSON, 422, "'member'"),
    ("null in a boolean column", "/predict", _with(member=None), JSON, 422, "'member'"),
    (
        "records with other columns",
        "/predict",
        json.dumps([GOOD, {**GOOD, "x9": 1}]).encode(),
        JSON,
        422,
        "'x9'",
    ),
    ("huge number literal", "/predict", b'{"x0": ' + b"9" * 5000 + b"}", JSON, 400, "JSON"),
    ("deep nesting", "/predict", b"[" * 100_000 + b"]" * 100_000, JSON, 400, "JSON"),
    (
        "CSV missing a column",
        "/predict/batch",
        b"x0,x1\n1,2\n",
        {"Content-Type": "text/csv"},
        422,
        "missing column",
    ),
    (
        "CSV text in a number column",
        "/predict/batch",
        ("x0,x1,x2,x3,x4,region,member\n1,2,3,4," + SECRET + ",north,True\n").encode(),
        {"Content-Type": "text/csv"},
        422,
        "'x4'",
    ),
    (
        "CSV without rows",
        "/predict/batch",
        b"x0,x1,x2,x3,x4,region,member\n",
        {"Content-Type": "text/csv"},
        400,
        "no rows",
    ),
    ("JSON sent to batch", "/predict/batch", _with(), JSON, 415, "text/csv"),
    (
        "multipart without a file",
        "/predict/batch",
        b'--b\r\nContent-Disposition: form-data; name="other"\r\n\r\n1\r\n--b--\r\n',
        {"Content-Type": "multipart/form-data; boundary=b"},
        400,
        "no file",
    ),
]


@pytest.fixture(scope="module")
def client(registry: Registry) -> Iterator[TestClient]:
    name = registry.fresh("synthetic")
    app = create_serving_app(registry.using(serve_max_body_bytes=2_000_000), f"{name}@champion")
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "fragment"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_gets_its_status(
    client: TestClient, path: str, body: bytes, headers: dict, status: int, fragment: str
) -> None:
    answer = client.post(path, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    data = answer.json()
    assert data["ok"] is False and data["status"] == status and fragment in data["error"]
    assert SECRET not in answer.text and "Traceback" not in answer.text
    assert client.post("/predict", json=GOOD).status_code == 200  # still serving


def test_missing_number_is_imputed_where_the_signature_allows_it(client: TestClient) -> None:
    for value in (None, float("nan")):
        answer = client.post("/predict", content=_with(x0=value), headers=JSON)
        assert answer.status_code == 200, answer.text
    assert client.post("/predict", content=_with(region=None), headers=JSON).status_code == 200


def test_body_over_the_limit_is_refused_before_parsing(registry: Registry) -> None:
    name = registry.fresh("random_forest")
    app = create_serving_app(registry.using(serve_max_body_bytes=1000, monitor=False), f"{name}/1")
    big = b"[" + b" " * 5000 + b"]"

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while reading
        for _ in range(10):
            yield b" " * 500

    with TestClient(app) as test_client:
        declared = test_client.post("/predict", content=big, headers=JSON)
        streamed = test_client.post("/predict", content=chunks(), headers=JSON)
        wrong_length = test_client.post(
            "/predict", content=b"{}", headers={**JSON, "Content-Length": "abc"}
        )
    assert declared.status_code == 413 and "limit of 1000 bytes" in declared.json()["error"]
    assert streamed.status_code == 413
    assert wrong_length.status_code in (400, 413)


def test_beyond_the_concurrency_limit_a_503_with_retry_after(registry: Registry) -> None:
    name = registry.fresh("random_forest")
    app = create_serving_app(registry.using(serve_max_concurrency=1, monitor=False), f"{name}/1")
    admitted, release = threading.Event(), threading.Event()
    app.state.service.on_admit = admitted.set
    slow: dict[str, Any] = {}

    def slow_body() -> Iterator[bytes]:
        yield b"["
        release.wait(120)
        yield b"]"

    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=150) as http:

        def hold_the_slot() -> None:
            slow["answer"] = http.post("/predict", content=slow_body(), headers=JSON)

        holder = threading.Thread(target=hold_the_slot)
        holder.start()
        assert admitted.wait(20), "the slow request was never admitted"
        assert "flowscope_requests_in_flight 1" in http.get("/metrics").text
        refused = http.post("/predict", json={"x0": 1})
        release.set()
        holder.join(60)
        health = http.get("/health")
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["ok"] is False
    assert slow["answer"].status_code == 400  # an empty list of records, read in full
    assert health.status_code == 200
