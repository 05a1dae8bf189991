"""The routes of ``flowscope server --auth`` and requests to them about alice's resources.

Run as a module, it prints, as JSON, every route the app serves, read from the apps
themselves: MLflow's Flask ``url_map`` (with the validator MLflow's basic-auth app checks
on it), the FastAPI routes around it, and the dashboard's routes under ``/flowscope``. Run
as ``python -m tests.security.auth_routes BACKEND DESTINATION`` in
the server's environment: the app is built as a worker builds it, after ``prepare``.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tests.server.auth_fixtures import AuthWorld

FILLED = re.compile(r"<(?:\w+:)?(\w+)>|\{(\w+)(?::\w+)?\}")


def request_key(method: str, path: str) -> str:
    return f"{method} {path}"


def each_request(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (method, route), mounts aside."""
    return [
        {**route, "method": method}
        for route in routes
        if route["kind"] != "mount"
        for method in route["methods"]
    ]


class Filler:
    """A request to a route about one set of alice's resources: path parameters from a
    table keyed by their name, the same names in the query (and JSON body) for MLflow's
    routes, which take their resource there."""

    def __init__(self, world: AuthWorld, *, spare: bool = False) -> None:
        from tests.server.auth_fixtures import EXPERIMENT, MODEL, SPARE_EXPERIMENT, SPARE_MODEL

        experiment = world.spare_experiment_id if spare else world.experiment_id
        run = world.spare_run_id if spare else world.run_id
        model = SPARE_MODEL if spare else MODEL
        self.path_values = {
            "experiment_id": experiment,
            "run_id": run,
            "name": model,
            "ref": world.model_version,
            "version": world.model_version,
            "job_id": world.job_id,
            "dataset_id": world.dataset_id,
            "token_id": world.alice_token_id,
            "download_id": "0123456789abcdef",
            "extension": "html",
            "path": "model/MLmodel",
            "artifact_path": f"{experiment}/{run}/artifacts/model/MLmodel",
        }
        self.fields: dict[str, Any] = {
            "experiment_id": experiment,
            "experiment_ids": [experiment],
            "experiment_name": SPARE_EXPERIMENT if spare else EXPERIMENT,
            "run_id": run,
            "run_uuid": run,
            "run_ids": [run],
            "name": model,
            "version": world.model_version,
            "metric_key": "accuracy",
            "key": "note",
            "value": "changed",
            "alias": "champion",
            "path": "model/MLmodel",
            "runs": run,  # the dashboard's compare
        }

    def path(self, template: str) -> str:
        return FILLED.sub(
            lambda m: self.path_values.get(m.group(1) or m.group(2), "unknown"), template
        )

    def send(self, client: httpx.Client, method: str, template: str) -> httpx.Response:
        query = {k: v[0] if isinstance(v, list) else v for k, v in self.fields.items()}
        if method == "GET":
            return client.get(self.path(template), params=query)
        return client.request(method, self.path(template), params=query, json=self.fields)


def _walk(routes: list[Any], prefix: str, app: str, found: list[dict[str, Any]]) -> None:
    from starlette.routing import Mount, Route

    for route in routes:
        if isinstance(route, Mount):
            found.append({"app": app, "kind": "mount", "path": prefix + route.path, "methods": []})
        elif isinstance(route, Route):
            methods = sorted(set(route.methods or ()) - {"HEAD"})
            path = prefix + route.path
            found.append({"app": app, "kind": "route", "path": path, "methods": methods})
        elif hasattr(route, "original_router"):  # FastAPI's included router
            inner = prefix + getattr(route.include_context, "prefix", "")
            _walk(route.original_router.routes, inner, app, found)
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")


def server_routes(backend_store_uri: str, artifacts_destination: str) -> list[dict[str, Any]]:
    from flowscope.server.app import DASHBOARD_PREFIX, create_server_app
    from flowscope.server.serve import prepare
    from flowscope.server.startup import ServerConfig

    prepare(ServerConfig(backend_store_uri, artifacts_destination, auth=True))
    app = create_server_app(ServerConfig.from_environment())
    found: list[dict[str, Any]] = []
    _walk(app.router.routes, "", "server", found)
    _walk(app.state.dashboard.router.routes, DASHBOARD_PREFIX, "dashboard", found)

    import mlflow.server.auth as mlflow_auth
    from mlflow.server import app as flask_app

    for rule in flask_app.url_map.iter_rules():
        methods = sorted(set(rule.methods or ()) - {"HEAD", "OPTIONS"})
        validators = {
            method: getattr(
                mlflow_auth.BEFORE_REQUEST_VALIDATORS.get((rule.rule, method)), "__name__", None
            )
            for method in methods
        }
        found.append(
            {
                "app": "mlflow",
                "kind": "rule",
                "path": rule.rule,
                "methods": methods,
                "arguments": sorted(rule.arguments),
                "validators": validators,
            }
        )
    return found


def main() -> None:
    json.dump(server_routes(sys.argv[1], sys.argv[2]), sys.stdout)


if __name__ == "__main__":
    main()
