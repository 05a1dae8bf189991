"""Every route of the dashboard and of the prediction service, and how to fill its path
parameters with ids of the hostile store, so that a case can swap one of them for an attack.

``test_routes.py`` checks these tables against the apps' own route lists: a route added to
an app without a line here fails the suite until someone says how it is attacked.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from tests.security.conftest import MODEL, Hostile

# (method, path) of every dashboard route, as the app declares it.
DASHBOARD_ROUTES = (
    ("GET", "/api/experiments/{experiment_id}/runs"),
    ("GET", "/api/experiments/{experiment_id}/summary"),
    ("GET", "/api/experiments/{experiment_id}/best"),
    ("GET", "/experiments"),
    ("GET", "/experiments/{experiment_id}"),
    ("GET", "/experiments/{experiment_id}/runs.csv"),
    ("GET", "/experiments/{experiment_id}/best"),
    ("GET", "/runs/{run_id}"),
    ("GET", "/runs/{run_id}/artifacts/{path:path}"),
    ("GET", "/experiments/{experiment_id}/report"),
    ("GET", "/experiments/{experiment_id}/report.{extension}"),
    ("GET", "/compare"),
    ("GET", "/models"),
    ("GET", "/models/{name}/compare"),
    ("GET", "/models/{name}/history"),
    ("POST", "/models/{name}/preview"),
    ("POST", "/models/{name}/promote"),
    ("GET", "/models/{name}"),
    ("POST", "/api/models/{name}/{ref}/predict"),
    ("POST", "/api/models/{name}/{ref}/predict/batch"),
    ("GET", "/models/{name}/predict"),
    ("POST", "/models/{name}/predict"),
    ("POST", "/models/{name}/predict/batch"),
    ("GET", "/models/{name}/predict/download/{download_id}"),
    ("GET", "/models/{name}/inference"),
    ("GET", "/studies/{run_id}"),
    ("GET", "/api/datasets"),
    ("POST", "/api/datasets"),
    ("GET", "/api/datasets/{dataset_id}"),
    ("GET", "/workbench"),
    ("POST", "/workbench/upload"),
    ("POST", "/api/jobs"),
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/{job_id}"),
    ("POST", "/api/jobs/{job_id}/cancel"),
    ("POST", "/workbench/train"),
    ("GET", "/jobs"),
    ("GET", "/jobs/{job_id}"),
    ("POST", "/jobs/{job_id}/cancel"),
    ("POST", "/jobs/{job_id}/register"),
    ("GET", "/api/ingest"),
    ("POST", "/api/ingest/runs/{run_id}/metrics"),
    # served files and docs: no parameter a user names
    ("GET", "/vendor/plotly.min.js"),
    ("GET", "/"),
    ("GET", "/api/openapi"),
)
# Mounted apps (static files), attacked by their own case.
DASHBOARD_MOUNTS = ("/static",)

SERVICE_ROUTES = (
    ("POST", "/predict"),
    ("POST", "/predict/batch"),
    ("POST", "/invocations"),
    ("GET", "/ping"),
    ("GET", "/version"),
    ("GET", "/health"),
    ("GET", "/model"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
)

# Query parameters that name a thing in the store (a traversal target), per route, with
# the other parameters it needs (query name: the path parameter whose valid value it takes).
NAMING_QUERIES: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    ("GET", "/workbench", "dataset", {}),
    ("GET", "/api/datasets/{dataset_id}", "target", {}),
    ("GET", "/workbench", "target", {"dataset": "dataset_id"}),
    ("GET", "/compare", "runs", {}),
    ("GET", "/models/{name}/compare", "versions", {}),
    ("GET", "/models/{name}/predict", "ref", {}),
    ("POST", "/models/{name}/predict", "ref", {}),
    ("GET", "/jobs", "batch", {}),
    ("GET", "/api/jobs", "batch", {}),
)

_PARAMETER = re.compile(r"\{(\w+)(?::path)?\}")


def parameters(path: str) -> list[str]:
    return _PARAMETER.findall(path)


def valid_values(hostile: Hostile) -> dict[str, str]:
    """A valid value for each path parameter, encoded for a URL."""
    return {
        "experiment_id": hostile.experiment_id,
        "run_id": hostile.run_ids[0],
        "path": "model/MLmodel",
        "extension": "csv",
        "name": quote(MODEL, safe=""),
        "ref": "1",
        "download_id": "0" * 32,
        "dataset_id": hostile.dataset_id,
        "job_id": hostile.job_id,
    }


def fill(route: str, hostile: Hostile, **attack: str) -> str:
    """``route`` with each parameter set to a valid value, but those in ``attack`` (given
    already encoded, as the attack sends them)."""
    values = {**valid_values(hostile), **attack}
    return _PARAMETER.sub(lambda match: values[match.group(1)], route)
