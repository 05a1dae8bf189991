"""Property-based requests from each app's own OpenAPI schema, in process over ASGI against
the hostile store: the dashboard with the bulk ingest endpoint (``/api/openapi``) and the
prediction service (``/openapi.json``). A few examples per operation: no 5xx, and each
response conforms to its content type, schema and headers. (An undocumented status is no
failure: every error is the one ``{"ok": false, ...}`` shape, with the status it needs.)"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
)

from tests.security.conftest import Hostile, nothing_written

CHECKS = [
    not_a_server_error,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
BUDGET = settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


# MLflow's scoring protocol answers these as ``mlflow models serve`` does ("\n" and a
# version string under application/json), whatever a schema would say.
MLFLOW_PROTOCOL = {"GET /ping", "GET /version"}


def exercise(schema: Any, hostile: Hostile) -> list[str]:
    """Every operation of ``schema`` with a few generated requests; the failures found."""
    from hypothesis import given

    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in MLFLOW_PROTOCOL:
            continue

        @given(case=operation.as_strategy())
        @BUDGET
        def run(case: Any) -> None:
            with nothing_written(hostile):
                case.call_and_validate(checks=CHECKS)

        try:
            run()
        except (
            Exception,
            BaseExceptionGroup,
        ) as exc:  # each operation's first failure, all reported together
            failures.append(f"{operation.label}: {_first_line(exc)}")
    return failures


def test_dashboard(dashboard_app: Any, dashboard: Any, hostile: Hostile) -> None:
    """(``dashboard``, the client, keeps the app's lifespan running.)"""
    schema = schemathesis.openapi.from_asgi("/api/openapi", dashboard_app)
    failures = exercise(schema, hostile)
    assert not failures, "\n\n".join(failures)


def test_service(service_app: Any, service: Any, hostile: Hostile) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", service_app)
    failures = exercise(schema, hostile)
    assert not failures, "\n\n".join(failures)


def _first_line(exc: BaseException) -> str:
    found = getattr(exc, "exceptions", None)
    if found:
        return "; ".join(_first_line(inner) for inner in found)
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc) else ''}"
