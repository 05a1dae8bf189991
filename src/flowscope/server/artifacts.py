"""Proxied artifacts read and written in place, inside the server and beside it.

Runs created through ``flowscope server`` keep ``mlflow-artifacts:/EXP/RUN/artifacts`` as
their artifact root: a client resolves it through the server's HTTP artifact routes. The
dashboard and the embedded job consumer run *inside* the server and open the database
directly, where MLflow would want an HTTP tracking URI for such a root. Here they resolve
it as MLflow's server does: the path under the artifacts destination (a folder or
``s3://...``), with no HTTP round trip to themselves. A ``flowscope worker`` on the
server's database does the same when it is told the server's destination.
"""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import urlparse

from flowscope.config import Settings
from flowscope.errors import FlowscopeError
from flowscope.server.startup import PROXIED_ARTIFACT_ROOT, check_artifacts, resolve_destination

PROXIED_SCHEME = "mlflow-artifacts"


def destination_uri(destination: str, proxied_uri: str) -> str:
    """Where ``mlflow-artifacts:/4/abc/artifacts`` (or ``mlflow-artifacts://host/4/...``)
    lives under ``destination``; never above it (``..`` stops at the destination)."""
    path = posixpath.normpath("/" + urlparse(proxied_uri).path).lstrip("/")
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


def settings_beside_server(settings: Settings, destination: str) -> Settings:
    """``settings`` for a process that opens a ``flowscope server``'s database directly and
    writes artifacts as the server's own jobs do (``flowscope worker
    --artifacts-destination``): the experiments it creates get the proxied root, and
    proxied roots are read and written in place at ``destination``, the server's artifacts
    destination, where every client reaches them through the server. A destination that
    cannot be used is a :class:`FlowscopeError` naming it, as at the server's start."""
    if not settings.is_database:
        raise FlowscopeError(
            "--artifacts-destination is for a process on the server's database; "
            f"{settings.tracking_uri} is not one (through a server, artifacts already go "
            "where it keeps them)"
        )
    destination = resolve_destination(destination)
    check_artifacts(destination)
    resolve_proxied_artifacts_in_place(destination)
    return settings.model_copy(update={"artifact_root": PROXIED_ARTIFACT_ROOT})
