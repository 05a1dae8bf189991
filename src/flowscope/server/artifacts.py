"""Proxied artifacts read and written in place, inside the server.

Runs created through ``flowscope server`` keep ``mlflow-artifacts:/EXP/RUN/artifacts`` as
their artifact root: a client resolves it through the server's HTTP artifact routes. The
dashboard and the embedded job consumer run *inside* the server and open the database
directly, where MLflow would want an HTTP tracking URI for such a root. Here they resolve
it as MLflow's server does: the path under the artifacts destination (a folder or
``s3://...``), with no HTTP round trip to themselves.
"""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import urlparse

PROXIED_SCHEME = "mlflow-artifacts"


def destination_uri(destination: str, proxied_uri: str) -> str:
    """Where ``mlflow-artifacts:/4/abc/artifacts`` (or ``mlflow-artifacts://host/4/...``)
    lives under ``destination``."""
    path = urlparse(proxied_uri).path.lstrip("/")
    return posixpath.join(destination.rstrip("/"), path) if path else destination


def resolve_proxied_artifacts_in_place(destination: str) -> None:
    """Make this process open ``mlflow-artifacts:`` roots at ``destination`` directly.

    MLflow's own server handlers never resolve that scheme through the repository registry
    (they join the path to the destination themselves), so this changes only what code in
    the server's process that uses MLflow's client (the dashboard, embedded jobs) gets."""
    from mlflow.store.artifact.artifact_repository_registry import (
        _artifact_repository_registry,
        get_artifact_repository,
    )

    def in_place(artifact_uri: str, **_: Any) -> Any:
        return get_artifact_repository(destination_uri(destination, artifact_uri))

    _artifact_repository_registry.register(PROXIED_SCHEME, in_place)
