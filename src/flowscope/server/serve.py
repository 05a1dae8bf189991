"""Start ``flowscope server``: check the database and the artifact destination, set up
MLflow's server environment and schema once, then hand the app to uvicorn's workers."""

from __future__ import annotations

import os

from flowscope.config import Settings
from flowscope.errors import FlowscopeError
from flowscope.server.startup import (
    PROXIED_ARTIFACT_ROOT,
    ServerConfig,
    check_artifacts,
    check_database,
    describe_uri,
    first_line,
    mlflow_server_environment,
)

APP_FACTORY = "flowscope.server.app:app_from_environment"


def prepare(config: ServerConfig, settings: Settings | None = None) -> None:
    """Everything before serving, in the order a fault is best named: the admin (with
    ``--auth``), the database, the artifact destination, then MLflow's tables (created or
    migrated once, here, rather than by several workers racing) and the auth tables. Sets
    MLflow's server variables in this process's environment, which the workers inherit:
    MLflow reads its server configuration from nowhere else."""
    auth_variables: dict[str, str] = {}
    if config.auth:
        from flowscope.auth.startup import auth_environment
        from flowscope.server.app import dashboard_settings

        settings = settings or dashboard_settings(config, auth=True)
        auth_variables = auth_environment(settings)
    check_database(config.backend_store_uri)
    check_artifacts(config.artifacts_destination)
    os.environ.update(mlflow_server_environment(config))
    os.environ.update(auth_variables)
    from mlflow.server.handlers import initialize_backend_stores

    try:
        initialize_backend_stores(
            config.backend_store_uri, config.backend_store_uri, PROXIED_ARTIFACT_ROOT
        )
    except Exception as exc:
        raise FlowscopeError(
            f"the database {describe_uri(config.backend_store_uri)} cannot hold MLflow's "
            f"tables: {first_line(exc)}"
        ) from None
    if config.auth:
        from flowscope.auth.startup import bootstrap_auth
        from flowscope.server.app import dashboard_settings

        bootstrap_auth(dashboard_settings(config))


def run(host: str, port: int, workers: int = 1) -> None:
    """Serve the app from :func:`prepare`'d environment until interrupted; each of uvicorn's
    ``workers`` builds its own with :func:`~flowscope.server.app.app_from_environment`."""
    import uvicorn

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )
