"""Traversal in every path parameter and every name a request carries: ``../``, encoded,
double-encoded, backslash, absolute, NUL. Each is a 4xx, nothing of the secret beside the
store (or of /etc/passwd) comes back, and nothing is written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security import payloads as p
from tests.security.conftest import (
    MODEL,
    Hostile,
    assert_refused,
    nothing_written,
    raw_request,
)
from tests.security.routes import (
    DASHBOARD_ROUTES,
    NAMING_QUERIES,
    fill,
    parameters,
    valid_values,
)

ATTACKS = tuple(p.traversals("/secret").keys())
PATH_PARAMETERS = [
    pytest.param(method, path, name, id=f"{method} {path} {name}")
    for method, path in DASHBOARD_ROUTES
    for name in parameters(path)
]


def _decoded(hostile: Hostile) -> dict[str, str]:
    """The attacks as the value a parameter ends up holding (for query strings and
    bodies, which the client encodes)."""
    relative = f"{p.UP}{p.SECRET_NAME}"
    return {
        "dotdot": relative,
        "encoded": relative.replace("/", "%2F"),
        "double-encoded": relative.replace("/", "%252F"),
        "backslash": relative.replace("/", "\\"),
        "absolute": str(hostile.secret),
        "etc-passwd": "/etc/passwd",
        "nul": f"x\x00{relative}",
        "dot": "..",
    }


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize(("method", "path", "parameter"), PATH_PARAMETERS)
def test_path_parameter(
    dashboard: Any, hostile: Hostile, method: str, path: str, parameter: str, attack: str
) -> None:
    url = fill(path, hostile, **{parameter: p.traversals(str(hostile.secret))[attack]})
    with nothing_written(hostile):
        answer = raw_request(dashboard, method, url)
    assert_refused(answer)


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize(
    ("method", "path", "query"),
    [pytest.param(*entry[:3], id=" ".join(entry[:3])) for entry in NAMING_QUERIES],
)
def test_naming_query(
    dashboard: Any, hostile: Hostile, method: str, path: str, query: str, attack: str
) -> None:
    [given] = [entry[3] for entry in NAMING_QUERIES if entry[:3] == (method, path, query)]
    values = valid_values(hostile)
    params = {key: values[name] for key, name in given.items()}
    with nothing_written(hostile):
        answer = dashboard.request(
            method, fill(path, hostile), params={**params, query: _decoded(hostile)[attack]}
        )
    assert_refused(answer)


JOB_FIELDS = ("dataset_id", "target", "task", "register")


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("field", JOB_FIELDS)
def test_job_request_names(dashboard: Any, hostile: Hostile, field: str, attack: str) -> None:
    from tests.security.conftest import UPLOAD_TARGET

    body = {
        "dataset_id": hostile.dataset_id,
        "target": UPLOAD_TARGET,
        "model_types": ["random_forest"],
        field: _decoded(hostile)[attack],
    }
    with nothing_written(hostile):
        answer = dashboard.post("/api/jobs", json=body)
    assert_refused(answer, statuses=(400, 404))


@pytest.mark.parametrize("attack", ATTACKS)
def test_register_name(dashboard: Any, hostile: Hostile, attack: str) -> None:
    with nothing_written(hostile):
        answer = dashboard.post(
            f"/jobs/{hostile.job_id}/register", data={"name": _decoded(hostile)[attack]}
        )
    assert_refused(answer)


@pytest.mark.parametrize("attack", ATTACKS)
def test_ingest_metric_key(dashboard: Any, hostile: Hostile, attack: str) -> None:
    point = {"key": _decoded(hostile)[attack], "value": 1.0, "timestamp": 1, "step": 0}
    with nothing_written(hostile):
        answer = dashboard.post(
            f"/api/ingest/runs/{hostile.plain_run_id}/metrics", json={"metrics": [point]}
        )
    assert_refused(answer, statuses=(400,))


@pytest.mark.parametrize("attack", ATTACKS)
def test_static_files(dashboard: Any, hostile: Hostile, attack: str) -> None:
    answer = raw_request(dashboard, "GET", f"/static/{p.traversals(str(hostile.secret))[attack]}")
    assert_refused(answer, statuses=(400, 404))


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("route", ["/api/datasets", "/workbench/upload"])
def test_upload_file_name(dashboard: Any, hostile: Hostile, route: str, attack: str) -> None:
    """A file name is only a label: the upload lands in the data sets' folder under a
    safe name, whatever the name says; nothing is written anywhere else."""
    from tests.security.conftest import footprint

    name = _decoded(hostile)[attack] + ".csv"
    body = f"a,b,c\n{attack},1,2\n".encode()
    before = set(footprint(hostile)["files"])
    answer = dashboard.post(route, files={"file": (name, body, "text/csv")}, follow_redirects=False)
    assert answer.status_code in (201, 303, 400), answer.text[:300]
    new = set(footprint(hostile)["files"]) - before
    # refused ("..." loses its dots: no extension), or the file, meta.json and profile.json
    assert len(new) == (0 if answer.status_code == 400 else 3), new
    for path in new:  # workbench/datasets/ID/file, the file's name one safe part
        parts = path.split("/")
        assert parts[:2] == ["workbench", "datasets"] and len(parts) == 4, new
        assert parts[3] not in ("..", "."), new
    for path in new:  # a data set of its own, removed so the next case starts as this one
        import shutil

        shutil.rmtree(hostile.root / path.rsplit("/", 1)[0], ignore_errors=True)


def test_model_name_with_traversal_is_a_name(dashboard: Any, hostile: Hostile) -> None:
    """The registered model's name holds markup; as a path parameter it is only a name."""
    from urllib.parse import quote

    answer = dashboard.get(f"/models/{quote(MODEL, safe='')}.json")
    assert answer.status_code == 200
    assert answer.json()["model"]["name"] == MODEL
