"""What ``flowscope server --auth`` settles before its workers start: the first admin
(refused when unnamed, short or a known default), the session key, MLflow's basic-auth
configuration pointing at flowscope's sign-in, and the auth tables, created once here
rather than by several workers racing."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from flowscope.auth.admin import check_admin
from flowscope.auth.mlflow_hook import HOOK
from flowscope.auth.services import auth_database_uri, open_auth
from flowscope.config import Settings


def auth_environment(settings: Settings) -> dict[str, str]:
    """The variables every worker needs for auth, MLflow's and flowscope's; a
    :class:`~flowscope.errors.ConfigError` naming what is wrong with the admin."""
    password = settings.admin_password.get_secret_value() if settings.admin_password else None
    username, password = check_admin(settings.admin_username, password)
    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    key = key or secrets.token_urlsafe(32)  # sessions then last until the server restarts
    database = auth_database_uri(settings)
    folder = Path(tempfile.mkdtemp(prefix="flowscope-auth-"))
    ini = folder / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        f"default_permission = {settings.default_permission}\n"
        f"database_uri = {database.replace('%', '%%')}\n"
        f"admin_username = {username}\n"
        f"authorization_function = {HOOK}\n"
    )
    ini.chmod(0o600)
    return {
        "FLOWSCOPE_AUTH": "true",
        "FLOWSCOPE_AUTH_DATABASE_URI": database,
        "FLOWSCOPE_SECRET_KEY": key,
        "FLOWSCOPE_DEFAULT_PERMISSION": settings.default_permission,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": key,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        # a route of MLflow's without a permission check is refused, not left open
        "MLFLOW_BASIC_AUTH_FAIL_CLOSED": "true",
    }


def bootstrap_auth(settings: Settings) -> None:
    """Create MLflow's auth tables and the first admin, and flowscope's token table, in
    this process (after :func:`auth_environment` is in ``os.environ``); the workers then
    only open them. The admin's password leaves the environment the workers inherit."""
    import mlflow.server.auth as mlflow_auth

    mlflow_auth.bootstrap_admin_user()
    open_auth(settings)  # the token table
    os.environ["_MLFLOW_AUTH_ADMIN_BOOTSTRAPPED"] = "true"
    os.environ.pop("MLFLOW_AUTH_ADMIN_PASSWORD", None)
