"""``flowscope server``: MLflow's tracking server and flowscope's dashboard in one ASGI app."""

from flowscope.server.app import (
    DASHBOARD_PREFIX,
    app_from_environment,
    create_server_app,
    dashboard_settings,
)
from flowscope.server.artifacts import settings_beside_server
from flowscope.server.startup import (
    ServerConfig,
    check_artifacts,
    check_database,
    mlflow_server_environment,
    resolve_destination,
)

__all__ = [
    "DASHBOARD_PREFIX",
    "ServerConfig",
    "app_from_environment",
    "check_artifacts",
    "check_database",
    "create_server_app",
    "dashboard_settings",
    "mlflow_server_environment",
    "resolve_destination",
    "settings_beside_server",
]
