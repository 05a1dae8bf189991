"""The ``flowscope server`` application: MLflow's tracking server (REST API, proxied
artifacts, its UI at ``/``) and flowscope's dashboard under ``/flowscope/`` in one ASGI app.

Every uvicorn worker builds it with :func:`app_from_environment`, after ``flowscope
server`` has set MLflow's server variables (:mod:`flowscope.server.startup`): MLflow's
server module reads them when it is imported, so it is imported here, never earlier.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from flowscope.config import Settings, load_settings
from flowscope.http_security import SecurityHeaders, inline_script_hashes, secure_app, split_list
from flowscope.server.artifacts import resolve_proxied_artifacts_in_place
from flowscope.server.health import health_router
from flowscope.server.prefix import PrefixLinksMiddleware
from flowscope.server.startup import PROXIED_ARTIFACT_ROOT, ServerConfig
from flowscope.server.unavailable import UnavailableMiddleware

DASHBOARD_PREFIX = "/flowscope"
# Probes reach these by address: MLflow exempts them from its Host check, and so do we.
MLFLOW_HEALTH_PATHS = ("/health", "/version")
# MLflow's UI at the server's own root: the dashboard's run pages link to it.
MLFLOW_UI_URL = "/"


def dashboard_settings(config: ServerConfig, **overrides: object) -> Settings:
    """The dashboard's settings on a server: it reads the backend store directly (no
    round trip through MLflow's REST API), links to MLflow's UI at the root, and gives
    the experiments it creates MLflow's proxied artifact root."""
    values: dict[str, object] = {
        "tracking_uri": config.backend_store_uri,
        "mlflow_ui_url": MLFLOW_UI_URL,
        # experiments its jobs create keep artifacts where MLflow's own ones do: proxied,
        # at the destination, reachable by every client through the server
        "artifact_root": PROXIED_ARTIFACT_ROOT,
        # the server's own Host and CORS policy covers every path, the dashboard's too
        "allowed_hosts": config.allowed_hosts,
        "cors_allowed_origins": config.cors_allowed_origins,
    }
    values.update(overrides)
    return load_settings(**values)


def create_server_app(config: ServerConfig, settings: Settings | None = None) -> FastAPI:
    """One app: ``/health``, the dashboard under ``/flowscope/`` with the bulk ingest
    endpoint at ``/flowscope/api/ingest`` (:mod:`flowscope.server.ingest`), then MLflow's
    server for every
    other path. The dashboard runs the workbench's jobs itself unless a shared queue
    (``jobs_url``) has ``flowscope worker`` processes for them, as ``flowscope ui`` does."""
    from mlflow.server.fastapi_app import create_fastapi_app

    from flowscope.web import create_app

    resolve_proxied_artifacts_in_place(config.artifacts_destination)
    settings = settings or dashboard_settings(config)
    auth = None
    if config.auth:
        from flowscope.auth.mlflow_hook import process_services

        auth = process_services()
    dashboard = create_app(
        settings,
        run_jobs=settings.runs_jobs_itself,
        ingest=True,
        auth=auth,
        http_security=False,  # the server's whole app is wrapped once
    )

    if config.auth:
        # MLflow's basic-auth app: its users, permissions and per-route checks on MLflow's
        # routes, with flowscope's sign-in (mlflow_hook) as its authorization function
        from mlflow.server import app as mlflow_flask_app
        from mlflow.server.auth import create_app as with_mlflow_auth

        app = with_mlflow_auth(mlflow_flask_app)
    else:
        app = create_fastapi_app()  # MLflow's routers and its Flask app mounted at "/"
    app.state.config = config
    app.state.dashboard = dashboard
    before = list(app.router.routes)
    app.include_router(health_router)
    # MLflow's own /health (a plain "OK") is one of its routers: ours, which checks each
    # part, goes first so that it answers.
    ours = [route for route in app.router.routes if route not in before]
    app.router.routes[:] = [*ours, *before]

    @app.get(DASHBOARD_PREFIX, include_in_schema=False)
    def dashboard_home() -> RedirectResponse:
        return RedirectResponse(f"{DASHBOARD_PREFIX}/experiments")

    # Starlette matches routes in order: the dashboard and /health must come before the
    # catch-all "/" mount MLflow's factory ends with.
    mlflow_root = app.router.routes.pop(_root_mount_index(app))
    app.mount(DASHBOARD_PREFIX, PrefixLinksMiddleware(dashboard, DASHBOARD_PREFIX))
    app.router.routes.append(mlflow_root)
    _chain_lifespans(app, dashboard)
    app.add_middleware(UnavailableMiddleware, config=config)
    secure_app(
        app,
        config.host_policy,
        split_list(config.cors_allowed_origins),
        headers=mlflow_ui_headers(),
        exempt_from_host_check=MLFLOW_HEALTH_PATHS,
    )
    return app


def mlflow_ui_headers() -> SecurityHeaders:
    """The security headers of the whole server. MLflow's UI pages (its React app's
    ``index.html`` and the notebook trace renderer) are read now: an inline script in the
    installed version is allowed by its hash, exactly, never by ``'unsafe-inline'`` (the
    pages of MLflow 3.17 have none). The trace renderer stays frameable: Jupyter shows it
    in an iframe, which is why MLflow leaves it without ``X-Frame-Options`` too."""
    import mlflow.server
    from mlflow.tracing.constant import TRACE_RENDERER_ASSET_PATH

    build = Path(mlflow.server.__file__).parent / "js" / "build"
    pages = [build / "index.html", build / "lib" / "notebook-trace-renderer" / "index.html"]
    return SecurityHeaders(
        script_hashes=inline_script_hashes(pages), frameable=(f"{TRACE_RENDERER_ASSET_PATH}/",)
    )


def app_from_environment() -> FastAPI:
    """The uvicorn factory each worker calls (``--workers N`` spawns fresh processes)."""
    return create_server_app(ServerConfig.from_environment())


def _root_mount_index(app: FastAPI) -> int:
    from starlette.routing import Mount

    for index, route in enumerate(app.router.routes):
        if isinstance(route, Mount) and route.path == "":
            return index
    raise RuntimeError("MLflow's server app has no catch-all mount at '/'")


def _chain_lifespans(app: FastAPI, dashboard: FastAPI) -> None:
    """Run the dashboard's lifespan (its embedded job consumer) inside MLflow's: a mounted
    app's own lifespan is not run by Starlette."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    outer = app.router.lifespan_context
    inner = dashboard.router.lifespan_context

    @asynccontextmanager
    async def both(_: object) -> AsyncIterator[None]:
        async with outer(app), inner(dashboard):
            yield

    app.router.lifespan_context = both
