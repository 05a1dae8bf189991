"""``GET /health``: each part of the server checked on its own (the database, the artifact
destination, the dashboard, the job queue); 200 when all are ok, else 503 naming the
part that is not. It replaces MLflow's plain ``OK`` at the same path, so a probe that only
looks at the status keeps working."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from flowscope.errors import FlowscopeError
from flowscope.server.startup import check_artifacts, check_database

logger = logging.getLogger(__name__)

health_router = APIRouter()
HEALTH_PROBE = "flowscope.health_probe"


@health_router.get("/health", include_in_schema=False)
async def health(request: Request) -> JSONResponse:
    app: FastAPI = request.app
    config = app.state.config
    dashboard: FastAPI = app.state.dashboard
    parts = {
        "database": await _check("database", lambda: check_database(config.backend_store_uri)),
        "artifacts": await _check(
            "artifacts", lambda: check_artifacts(config.artifacts_destination)
        ),
        "dashboard": await _dashboard(dashboard),
        "jobs": await _check("jobs", lambda: _jobs(dashboard)),
    }
    healthy = all(part["status"] == "ok" for part in parts.values())
    return JSONResponse(
        {"ok": healthy, "status": "ok" if healthy else "unavailable", "parts": parts},
        status_code=200 if healthy else 503,
    )


async def _check(part: str, probe: Callable[[], Any]) -> dict[str, Any]:
    """The part's state; when it fails, what is wrong in words fit for anyone who asks
    (``/health`` is public): where the part is and what its driver said go to the log."""
    try:
        detail = await anyio.to_thread.run_sync(probe)
    except FlowscopeError as exc:  # each part reports its own failure; the others still run
        logger.warning("health: %s: %s", part, exc.for_operator)
        return {"status": "error", "error": exc.message}
    except Exception:
        logger.exception("health: %s", part)
        return {"status": "error", "error": f"the {part} check failed"}
    return {"status": "ok", **(detail or {})}


async def _dashboard(dashboard: FastAPI) -> dict[str, Any]:
    async def probe(scope: Scope, receive: Receive, send: Send) -> None:
        # the health check's own request, made in this process: past the sign-in, which no
        # request from outside can be (an ASGI scope key is not a header)
        await dashboard({**scope, HEALTH_PROBE: True}, receive, send)

    transport = httpx.ASGITransport(app=probe)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
            answer = await client.get("/experiments.json")
    except Exception:
        logger.exception("health: dashboard")
        return {"status": "error", "error": "the dashboard could not be asked"}
    if answer.status_code != 200:
        return {"status": "error", "error": f"/flowscope/experiments answered {answer.status_code}"}
    return {"status": "ok"}


def _jobs(dashboard: FastAPI) -> dict[str, Any]:
    from flowscope.web.app_queue import job_queue_of

    queue = job_queue_of(dashboard)
    try:
        pending = queue.pending()
    except queue.storage_errors as exc:
        detail = f"{queue.location}: {exc}"
        raise FlowscopeError("the job queue is unreachable", detail=detail) from None
    return {"queue": queue.kind, "pending": pending}
