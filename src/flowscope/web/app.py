"""The dashboard's app factory: routers, static files, and one error handler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from flowscope.auth.services import AuthServices
from flowscope.config import Settings, load_settings
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.http_security import HostPolicy, secure_app, split_list
from flowscope.web.access import RunExperiments, authorize
from flowscope.web.app_queue import job_queue_of
from flowscope.web.render import TEMPLATES, JsonSuffixMiddleware, json_response, wants_json

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
RETRY_AFTER_SECONDS = 5


def plotly_js_path() -> Path:
    """plotly.js as the installed plotly package bundles it: served locally, no CDN."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def create_app(
    settings: Settings | None = None,
    *,
    run_jobs: bool = False,
    ingest: bool = False,
    auth: AuthServices | None = None,
    bind_host: str | None = None,
    http_security: bool = True,
) -> FastAPI:
    """The dashboard for ``settings``' store (SQLite, PostgreSQL or a tracking server);
    with ``run_jobs``, it runs the workbench's jobs in a thread of its own while it serves;
    with ``ingest``, it takes bulk metric writes (``flowscope server``: see
    :mod:`flowscope.server.ingest`).

    It answers the ``Host`` names of ``allowed_hosts`` besides loopback and ``bind_host``
    (the address it listens on), and sends security headers
    (:mod:`flowscope.http_security`); ``http_security=False`` leaves them to an app that
    mounts it and applies them to every path (``flowscope server``)."""
    from flowscope.analysis.query import open_run_store
    from flowscope.auth.services import open_auth
    from flowscope.serving.cache import ModelCache
    from flowscope.web import (
        api,
        compare,
        experiments,
        inference,
        jobs,
        login,
        models,
        predict,
        reports,
        runs,
        studies,
        workbench,
    )
    from flowscope.web.guard import AuthGuard

    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue = job_queue_of(app) if run_jobs else None
        if queue is not None:
            queue.start_embedded()
        yield
        if queue is not None:
            queue.stop_embedded()

    app = FastAPI(
        title="flowscope",
        # FastAPI's interactive docs page loads Swagger UI from a CDN with an inline
        # script: neither passes the Content-Security-Policy, nor works offline. The
        # schema stays at /api/openapi.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi",
        lifespan=lifespan,
        # every route's permission rule (flowscope.web.access); nothing without auth
        dependencies=[Depends(authorize)],
    )
    app.state.settings = settings
    app.state.store = open_run_store(settings)
    app.state.run_experiments = RunExperiments()  # for the rules about a run
    # after the run store: on a new database MLflow's tables come first, then the auth ones
    auth = app.state.auth = auth or open_auth(settings)
    app.state.models = ModelCache(settings)  # loaded model versions, for predictions
    if auth is not None:
        # inside the .json middleware, so that a refusal knows whether JSON was asked for
        app.add_middleware(AuthGuard, services=auth, refuse=refuse)
    if http_security:
        secure_app(
            app,
            HostPolicy.for_app(settings.allowed_hosts, bind_host),
            split_list(settings.cors_allowed_origins),
        )
    app.add_middleware(JsonSuffixMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_js_path(), media_type="text/javascript")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/experiments")

    for module in (
        api,
        experiments,
        runs,
        reports,
        compare,
        models,
        predict,
        inference,
        studies,
        workbench,
        jobs,
    ):
        app.include_router(module.router)
    if auth is not None:
        app.include_router(login.router)
    if ingest:
        from flowscope.server.ingest import router as ingest_router

        app.include_router(ingest_router)

    @app.exception_handler(FlowscopeError)
    def domain_error(request: Request, exc: FlowscopeError) -> Response:
        if exc.detail or exc.status >= 500:  # what the answer leaves out, for the operator
            logger.warning("%s: %s", request.url.path, exc.for_operator)
        response = error_response(request, exc.status, exc.message)
        if exc.status == 503:  # a store that is away: the same request works once it is back
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no page at {request.url.path}"
        return error_response(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or 'request'}: {error['msg']}"
            for error in exc.errors()
        )
        return error_response(request, 400, problems or "invalid request")

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error on %s", request.url.path)
        return error_response(request, 500, "internal error; the server log has the details")

    return app


async def refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    """The guard's answer to a request it stops: 401 (the login page for a browser) or 403."""
    from flowscope.web.login import login_page

    request = Request(scope, receive)
    path = request.url.path.removeprefix(scope.get("root_path", ""))
    if status == 401 and not (wants_json(request) or path.startswith("/api/")):
        response = login_page(request, 401, None if path in ("/", "/experiments") else message)
    else:
        response = error_response(request, status, message)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="flowscope"'
    await response(scope, receive, send)


def error_response(request: Request, status: int, message: str) -> Response:
    """One error shape: ``{"ok": false, "error", "status"}`` as JSON, a friendly page as HTML."""
    # the path inside the dashboard, also when it is mounted under a prefix (flowscope server)
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    if wants_json(request) or path.startswith("/api/"):
        return json_response({"ok": False, "error": message, "status": status}, status)
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"status": status, "message": message, "data": {}},
        status_code=status,
    )


__all__ = ["NotFoundError", "create_app", "error_response"]
