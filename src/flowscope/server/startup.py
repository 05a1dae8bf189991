"""What ``flowscope server`` settles before it serves: MLflow's server environment and
the two checks (database, artifact destination) that fail start-up with one clear line.

MLflow's tracking server reads its configuration from ``_MLFLOW_SERVER_*`` environment
variables in every worker process (``mlflow server`` sets them before it starts uvicorn);
:func:`mlflow_server_environment` gives the same map so that the workers, which import
MLflow's server afresh, see exactly what ``mlflow server --serve-artifacts`` would give them.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from flowscope.errors import FlowscopeError
from flowscope.http_security import HostPolicy

# MLflow's default artifact root when it proxies artifact access: clients write
# ``mlflow-artifacts:/...`` and the server stores under its artifacts destination.
PROXIED_ARTIFACT_ROOT = "mlflow-artifacts:/"
BACKEND_STORE_VARIABLE = "_MLFLOW_SERVER_FILE_STORE"
ARTIFACTS_DESTINATION_VARIABLE = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"
# What the workers need besides MLflow's own variables to build the same Host policy.
ALLOWED_HOSTS_VARIABLE = "_FLOWSCOPE_SERVER_ALLOWED_HOSTS"
BIND_HOST_VARIABLE = "_FLOWSCOPE_SERVER_BIND_HOST"
CORS_ORIGINS_VARIABLE = "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"


@dataclass(frozen=True)
class ServerConfig:
    """Where a ``flowscope server`` keeps runs (a database URI) and artifacts (a folder or
    an object store URI such as ``s3://bucket/path``)."""

    backend_store_uri: str
    artifacts_destination: str
    allowed_hosts: str | None = None  # Host headers answered besides loopback and bind_host
    bind_host: str | None = None  # the address it listens on
    cors_allowed_origins: str | None = None  # origins whose pages may call it
    auth: bool = False  # who may do what: flowscope.auth

    @property
    def host_policy(self) -> HostPolicy:
        return HostPolicy.for_app(self.allowed_hosts, self.bind_host)

    @classmethod
    def from_environment(cls) -> ServerConfig:
        """The configuration a worker process inherited from ``flowscope server``."""
        try:
            return cls(
                os.environ[BACKEND_STORE_VARIABLE],
                os.environ[ARTIFACTS_DESTINATION_VARIABLE],
                allowed_hosts=os.environ.get(ALLOWED_HOSTS_VARIABLE) or None,
                bind_host=os.environ.get(BIND_HOST_VARIABLE) or None,
                cors_allowed_origins=os.environ.get(CORS_ORIGINS_VARIABLE) or None,
                auth=os.environ.get("FLOWSCOPE_AUTH", "").lower() in ("1", "true", "yes"),
            )
        except KeyError as exc:
            raise FlowscopeError(
                f"{exc.args[0]} is not set: start the server with `flowscope server`"
            ) from None


def resolve_destination(destination: str | None) -> str:
    """The artifact destination as MLflow's server wants it: an absolute folder for a
    local path (``./mlartifacts`` when none is given), else the URI unchanged."""
    if destination is None:
        destination = "mlartifacts"
    if _is_local(destination):
        path = destination[len("file://") :] if destination.startswith("file://") else destination
        return str(Path(path).expanduser().resolve())
    return destination


def mlflow_server_environment(config: ServerConfig) -> dict[str, str]:
    """The variables ``mlflow server --backend-store-uri B --artifacts-destination D``
    (proxied artifact access on, uvicorn) sets for its workers, with MLflow's own Host
    check given the same hosts as flowscope's (:mod:`flowscope.http_security`), its CORS
    the same origins, and frames denied as flowscope denies them."""
    ours = {
        ALLOWED_HOSTS_VARIABLE: config.allowed_hosts or "",
        BIND_HOST_VARIABLE: config.bind_host or "",
        "MLFLOW_SERVER_ALLOWED_HOSTS": config.host_policy.mlflow_patterns(),
        "MLFLOW_SERVER_X_FRAME_OPTIONS": "DENY",
    }
    if config.cors_allowed_origins:
        ours[CORS_ORIGINS_VARIABLE] = config.cors_allowed_origins
    return {
        **ours,
        BACKEND_STORE_VARIABLE: config.backend_store_uri,
        "_MLFLOW_SERVER_REGISTRY_STORE": config.backend_store_uri,
        "_MLFLOW_SERVER_ARTIFACT_ROOT": PROXIED_ARTIFACT_ROOT,
        "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
        ARTIFACTS_DESTINATION_VARIABLE: config.artifacts_destination,
        "_MLFLOW_SGI_NAME": "uvicorn",
        "_MLFLOW_SERVER_BOOT_ID": uuid.uuid4().hex,
        # only MLflow's job-executor subprocesses may rebuild scorer code; never its server
        "_MLFLOW_IN_JOB_EXECUTOR": "false",
        "MLFLOW_ENABLE_WORKSPACES": "false",
    }


def describe_uri(uri: str) -> str:
    """``uri`` with any password replaced, fit for a message or a log line."""
    parsed = urlparse(uri)
    if parsed.password is None:
        return uri
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
    return parsed._replace(netloc=netloc).geturl()


class PartUnavailableError(FlowscopeError):
    """A part the server needs (its database, its artifact destination) cannot be used.
    The message names the part and nothing of where it is (it goes to clients: /health,
    the 503 answers); the detail, for the log and the operator's terminal, names the
    configured location (without its password) and what the driver said."""

    status = 503


def check_database(uri: str) -> None:
    """Connect to the backend store once; a :class:`PartUnavailableError` if it cannot."""
    import sqlalchemy as sa

    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme not in ("sqlite", "postgresql", "mysql", "mssql"):
        raise FlowscopeError(
            "--backend-store-uri is not a database: use "
            "postgresql://USER:PASSWORD@HOST:PORT/DB or sqlite:///FILE",
            detail=f"it is {describe_uri(uri)!r}",
        )
    try:
        with _probe_engine(uri).connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as exc:  # the driver's own error: refused, unknown host, bad password
        raise PartUnavailableError(
            "the database is unreachable",
            detail=f"{describe_uri(uri)}: {without_password(first_line(exc), uri)}",
        ) from None


@lru_cache(maxsize=4)
def _probe_engine(uri: str) -> Any:
    """One engine per database for the checks, with no pool: each check opens a new
    connection, as a client would, without building an engine each time."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    scheme = urlparse(uri).scheme.split("+")[0]
    connect_args = {"connect_timeout": 5} if scheme in ("postgresql", "mysql") else {}
    return sa.create_engine(uri, connect_args=connect_args, poolclass=NullPool)


def check_artifacts(destination: str) -> None:
    """Make sure artifacts can be stored at ``destination``: a folder is created and
    written to; an object store is listed through MLflow's artifact repository. A
    :class:`PartUnavailableError` if they cannot."""
    if _is_local(destination):
        folder = Path(destination)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".flowscope-probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise PartUnavailableError(
                "the artifact destination refused a write"
                + (f": {exc.strerror}" if exc.strerror else ""),
                detail=f"{destination}: {exc}",
            ) from None
        return
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    try:
        get_artifact_repository(destination).list_artifacts()
    except Exception as exc:
        raise PartUnavailableError(
            "the artifact store is unreachable",
            detail=f"{describe_uri(destination)}: {without_password(first_line(exc), destination)}",
        ) from None


def without_password(text: str, uri: str) -> str:
    """``text`` with the password of ``uri`` (if it has one, and the text repeats it)
    replaced, for a line that names what a driver said about ``uri``."""
    password = urlparse(uri).password
    return text.replace(password, "***") if password else text


def first_line(exc: BaseException) -> str:
    """The first line of a driver's or a library's error, for a one-line message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_local(destination: str) -> bool:
    scheme = urlparse(destination).scheme
    return scheme in ("", "file") or len(scheme) == 1  # a Windows drive letter
