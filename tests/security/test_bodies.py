"""Bodies every route that takes one must refuse: over the cap (declared, or streamed with
no length), cut short (less than declared, then gone), malformed JSON, multipart, CSV and
YAML, a content type the route does not take, huge numbers, NaN and infinity where they
mean nothing. Each is a 4xx naming the problem (a body cut short gets no answer or a 4xx,
never a 5xx), and nothing is written."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from flowscope.server.ingest import MAX_BODY_BYTES
from flowscope.web.jobs import MAX_REQUEST_BYTES
from flowscope.web.predict import MAX_FORM_BYTES
from flowscope.web.uploads import FORM_OVERHEAD
from tests.security.conftest import (
    FEATURE,
    NOTE,
    SERVE_MAX_BODY_BYTES,
    UPLOAD_MAX_BYTES,
    UPLOAD_TARGET,
    Hostile,
    assert_refused,
    nothing_written,
    raw_request,
)
from tests.security.routes import fill

BOUNDARY = "hostileboundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(name: str, content: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def row_csv(feature: str, plain: str = "-1.5", note: str = "ok") -> bytes:
    """One record for the model, its feature set to ``feature`` (CSV-quoted names)."""
    header = ",".join(json.dumps(name) for name in (FEATURE, "plain", NOTE))
    return f"{header}\n{feature},{plain},{note}\n".encode()


def record(feature: Any) -> dict[str, Any]:
    return {FEATURE: feature, "plain": -1.5, NOTE: "ok"}


@dataclass(frozen=True)
class BodyRoute:
    """A route that reads a body: which app, where, the content type it takes, a malformed
    body of that type, its cap and how a well-formed body of that type starts."""

    app: str  # "dashboard" or "service"
    path: str
    content_type: str
    malformed: bytes
    limit: int = SERVE_MAX_BODY_BYTES
    start: bytes = b'{"x": "'

    @property
    def id(self) -> str:
        return f"{self.app} {self.path} {self.content_type.split(';')[0]}"


JSON_BROKEN = b'{"metrics": [{"key": "loss", '
CSV_BROKEN = b'a,b\n"never closed,1\n'
MULTIPART_BROKEN = f"--{BOUNDARY}\r\nContent-Disposition: form-da".encode()
MULTIPART_START = multipart("data.csv", b"a\n")[: -len(f"\r\n--{BOUNDARY}--\r\n")]
FORM = "application/x-www-form-urlencoded"
YAML = "application/yaml"
UPLOAD = UPLOAD_MAX_BYTES + FORM_OVERHEAD
ROUTES = (
    BodyRoute("dashboard", "/api/jobs", "application/json", JSON_BROKEN, MAX_REQUEST_BYTES),
    BodyRoute(
        "dashboard",
        "/api/ingest/runs/{run_id}/metrics",
        "application/json",
        JSON_BROKEN,
        MAX_BODY_BYTES,
    ),
    BodyRoute("dashboard", "/api/models/{name}/{ref}/predict", "application/json", JSON_BROKEN),
    BodyRoute(
        "dashboard",
        "/api/models/{name}/{ref}/predict/batch",
        "text/csv",
        CSV_BROKEN,
        UPLOAD_MAX_BYTES,
        b"a\n",
    ),
    BodyRoute(
        "dashboard",
        "/api/models/{name}/{ref}/predict/batch",
        MULTIPART,
        MULTIPART_BROKEN,
        UPLOAD,
        MULTIPART_START,
    ),
    BodyRoute("dashboard", "/api/datasets", MULTIPART, MULTIPART_BROKEN, UPLOAD, MULTIPART_START),
    BodyRoute(
        "dashboard", "/workbench/upload", MULTIPART, MULTIPART_BROKEN, UPLOAD, MULTIPART_START
    ),
    BodyRoute(
        "dashboard", "/workbench/train", FORM, b"dataset_id=%zz&&==", MAX_REQUEST_BYTES, b"a="
    ),
    BodyRoute("dashboard", "/models/{name}/predict", FORM, b"%zz=%zz&&", MAX_FORM_BYTES, b"a="),
    BodyRoute(
        "dashboard",
        "/models/{name}/predict/batch",
        MULTIPART,
        MULTIPART_BROKEN,
        UPLOAD,
        MULTIPART_START,
    ),
    BodyRoute("dashboard", "/models/{name}/preview", YAML, b"gates: [: :\n  - {", 65536, b"#"),
    BodyRoute("dashboard", "/models/{name}/promote", YAML, b"gates: [: :\n  - {", 65536, b"#"),
    BodyRoute(
        "dashboard", "/jobs/{job_id}/register", FORM, b"name=%zz&&==", MAX_REQUEST_BYTES, b"a="
    ),
    BodyRoute("service", "/predict", "application/json", JSON_BROKEN),
    BodyRoute("service", "/predict/batch", "text/csv", CSV_BROKEN, start=b"a\n"),
    BodyRoute("service", "/predict/batch", MULTIPART, MULTIPART_BROKEN, start=MULTIPART_START),
    BodyRoute("service", "/invocations", "application/json", JSON_BROKEN),
    BodyRoute("service", "/invocations", "text/csv", CSV_BROKEN, start=b"a\n"),
)
BY_ID = [pytest.param(route, id=route.id) for route in ROUTES]


@pytest.fixture
def send(request: pytest.FixtureRequest, hostile: Hostile) -> Any:
    """``send(route, ...)``: a raw request to the route's app, inside :func:`nothing_written`."""

    def call(route: BodyRoute, **options: Any) -> Any:
        client = request.getfixturevalue(route.app)
        path = fill(route.path, hostile, run_id=hostile.plain_run_id)
        with nothing_written(hostile):
            return raw_request(client, "POST", path, **options)

    return call


@pytest.mark.parametrize("route", BY_ID)
def test_oversize_declared(send: Any, route: BodyRoute) -> None:
    """A ``Content-Length`` over the cap is refused before the body is read."""
    headers = {"content-type": route.content_type, "content-length": str(route.limit + 1)}
    answer = send(route, headers=headers, chunks=(route.start,), disconnect=True)
    assert_refused(answer, statuses=(413,))


@pytest.mark.parametrize("route", BY_ID)
def test_oversize_streamed(send: Any, route: BodyRoute) -> None:
    """A well-formed body sent in chunks with no declared length is cut off once past the
    cap (with nothing after the cap sent: a reader that waited for the end would hang)."""
    size = route.limit + 1 - len(route.start)
    step = 1024 * 1024
    chunks = (route.start, *[b"1" * min(step, size - at) for at in range(0, size, step)])
    answer = send(
        route, headers={"content-type": route.content_type}, chunks=chunks, disconnect=True
    )
    assert_refused(answer, statuses=(413,))


@pytest.mark.parametrize("route", BY_ID)
def test_truncated(send: Any, route: BodyRoute) -> None:
    """Fewer bytes than declared, then the client is gone: no answer, or a 4xx."""
    headers = {"content-type": route.content_type, "content-length": "1000"}
    answer = send(route, headers=headers, chunks=(route.malformed[:10],), disconnect=True)
    assert answer.status_code == 499 or 400 <= answer.status_code < 500, answer.text[:300]


@pytest.mark.parametrize("route", BY_ID)
def test_malformed(send: Any, route: BodyRoute) -> None:
    body = route.malformed
    headers = {"content-type": route.content_type, "content-length": str(len(body))}
    answer = send(route, headers=headers, chunks=(body,))
    assert_refused(answer)


WRONG_TYPES = {
    "xml": ("application/xml", b"<x>1</x>"),
    "none": ("", b'{"a": 1}'),
    "utf16": ("application/json; charset=utf-16", '{"a": 1}'.encode("utf-16")),
}


@pytest.mark.parametrize("kind", WRONG_TYPES)
@pytest.mark.parametrize(
    "route",
    [
        pytest.param(r, id=r.id)
        for r in ROUTES
        if "json" in r.content_type or "csv" in r.content_type
    ],
)
def test_wrong_content_type(send: Any, route: BodyRoute, kind: str) -> None:
    content_type, body = WRONG_TYPES[kind]
    headers = {"content-length": str(len(body))}
    if content_type:
        headers["content-type"] = content_type
    answer = send(route, headers=headers, chunks=(body,))
    assert_refused(answer, statuses=(400, 415))


@pytest.mark.parametrize(
    "route",
    [pytest.param(r, id=r.id) for r in ROUTES if r.content_type == MULTIPART],
)
def test_multipart_without_boundary(send: Any, route: BodyRoute) -> None:
    body = multipart("data.csv", row_csv("1"))
    headers = {"content-type": "multipart/form-data", "content-length": str(len(body))}
    answer = send(route, headers=headers, chunks=(body,))
    assert_refused(answer)


# -- numbers no route takes -----------------------------------------------------------------

HUGE = "1" + "0" * 400  # an integer beyond any float
NUMBERS = {"huge-int": HUGE, "overflow": "1e999", "nan": "NaN", "infinity": "Infinity"}


def _job(hostile: Hostile, field: str, number: str) -> bytes:
    fields = {
        "dataset_id": json.dumps(hostile.dataset_id),
        "target": json.dumps(UPLOAD_TARGET),
        "model_types": '["random_forest"]',
        field: number,
    }
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}").encode()


def _point(field: str, number: str) -> bytes:
    point = {"key": '"loss"', "value": "0.5", "timestamp": "1700000000000", "step": "0"}
    point[field] = number
    inner = ", ".join(f'"{k}": {v}' for k, v in point.items())
    return ('{"metrics": [{' + inner + "}]}").encode()


def _number_cases() -> list[Any]:
    cases = []
    for name, number in NUMBERS.items():
        for field in ("test_size", "seed", "tune_trials"):
            cases.append(
                pytest.param("dashboard", "/api/jobs", field, number, id=f"job {field} {name}")
            )
        cases.append(
            pytest.param(
                "dashboard",
                "/api/jobs",
                "params",
                f'{{"n_estimators": {number}}}',
                id=f"job params {name}",
            )
        )
        for field in ("timestamp", "step"):
            cases.append(
                pytest.param(
                    "dashboard",
                    "/api/ingest/runs/{run_id}/metrics",
                    field,
                    number,
                    id=f"ingest {field} {name}",
                )
            )
        if name == "huge-int":  # a value: NaN and infinity are MLflow's to keep
            cases.append(
                pytest.param(
                    "dashboard",
                    "/api/ingest/runs/{run_id}/metrics",
                    "value",
                    number,
                    id=f"ingest value {name}",
                )
            )
        if name != "nan":  # a missing number is what NaN means to a model
            for app, path in (
                ("service", "/predict"),
                ("service", "/invocations"),
                ("dashboard", "/api/models/{name}/{ref}/predict"),
            ):
                cases.append(pytest.param(app, path, FEATURE, number, id=f"{app} {path} {name}"))
    return cases


@pytest.mark.parametrize(("app", "path", "field", "number"), _number_cases())
def test_numbers_in_json(
    send: Any, hostile: Hostile, app: str, path: str, field: str, number: str
) -> None:
    if path == "/api/jobs":
        body = _job(hostile, field, number)
    elif "ingest" in path:
        body = _point(field, number)
    else:
        inner = f'{json.dumps(FEATURE)}: {number}, "plain": -1.5, "{NOTE}": "ok"'
        body = ("{" + inner + "}").encode()
        if path == "/invocations":
            body = b'{"dataframe_records": [' + body + b"]}"
    route = BodyRoute(app, path, "application/json", b"")
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    answer = send(route, headers=headers, chunks=(body,))
    assert_refused(answer, statuses=(400, 422))


CSV_ROUTES = [
    pytest.param(r, id=r.id)
    for r in ROUTES
    if r.path.endswith("predict/batch") or (r.path in ("/invocations",) and "csv" in r.content_type)
]


@pytest.mark.parametrize("number", ["inf", "-inf", "1e999", HUGE])
@pytest.mark.parametrize("route", CSV_ROUTES)
def test_numbers_in_predicted_files(send: Any, route: BodyRoute, number: str) -> None:
    """Infinity and numbers beyond any float in a file to predict: a 4xx naming them."""
    data = row_csv(number)
    body = multipart("rows.csv", data) if route.content_type == MULTIPART else data
    headers = {"content-type": route.content_type, "content-length": str(len(body))}
    answer = send(route, headers=headers, chunks=(body,))
    assert_refused(answer, statuses=(400, 422))


@pytest.mark.parametrize("number", ["inf", "-inf", "1e999"])
def test_numbers_in_uploaded_data(dashboard: Any, hostile: Hostile, number: str) -> None:
    """A data set with infinity in a column: refused with a 400 naming it."""
    rows = "\n".join(f"{i},{number if i == 3 else i},{'yes' if i % 2 else 'no'}" for i in range(20))
    body = f"a,b,label\n{rows}\n".encode()
    with nothing_written(hostile):
        answer = dashboard.post("/api/datasets", files={"file": ("inf.csv", body, "text/csv")})
    assert_refused(answer, statuses=(400,))
