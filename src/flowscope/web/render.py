"""One dict per page: rendered as HTML by a template, or returned as JSON at ``<path>.json``.

A middleware strips a trailing ``.json`` from the path before routing and remembers it, so
each page is one route and one function; :func:`page` then picks the representation.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from flowscope.http_security import WEBGL_EVAL_MARKER

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
# Plotly's trace types drawn by regl in WebGL
WEBGL_TRACES = ("parcoords", "scattergl", "splom", "scatterpolargl")

# How a page route documents its answer in the OpenAPI schema: the page, or its JSON twin
# (``<path>.json`` or ``Accept: application/json``).
PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The page as HTML, or its data as JSON at <path>.json",
        "content": {"text/html": {}, "application/json": {}},
    }
}


def _when(ms: Any) -> str:
    """Milliseconds since the epoch as a UTC time a person reads."""
    if not isinstance(ms, int | float):
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


TEMPLATES.env.filters.update(when=_when, num=_number, seconds=_seconds)


def _is_raw(path: str) -> bool:
    return path.startswith("/static/") or "/artifacts/" in path


class JsonSuffixMiddleware:
    """``/experiments/3.json`` is routed as ``/experiments/3`` with ``wants_json`` set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            state = scope.setdefault("state", {})
            if path.endswith(".json") and not _is_raw(path):
                scope["path"] = path[: -len(".json")] or "/"
                scope["raw_path"] = scope["path"].encode()
                state["wants_json"] = True
            else:
                state["wants_json"] = False
        await self.app(scope, receive, send)


def wants_json(request: Request) -> bool:
    return bool(getattr(request.state, "wants_json", False)) or (
        "application/json" in request.headers.get("accept", "")
        and "text/html" not in request.headers.get("accept", "")
    )


def clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean(item) for item in value]
    return value


def json_response(data: Any, status: int = 200) -> JSONResponse:
    try:  # Starlette refuses NaN: only data that has some pays for the walk through it
        return JSONResponse(data, status_code=status)
    except ValueError:
        return JSONResponse(clean(data), status_code=status)


def page(request: Request, template: str, data: dict[str, Any], status: int = 200) -> Response:
    """The page's dict as JSON when asked for, else rendered by ``template`` with a
    ``Link`` header naming its JSON twin."""
    if wants_json(request):
        return json_response({"ok": status < 400, **data}, status)
    url = request.url
    json_path = (url.path.rstrip("/") or "") + ".json"
    twin = json_path + (f"?{url.query}" if url.query else "")
    response = TEMPLATES.TemplateResponse(
        request, template, {"data": data, "json_url": twin}, status_code=status
    )
    response.headers["Link"] = f'<{twin}>; rel="alternate"; type="application/json"'
    if draws_webgl(data):
        response.headers[WEBGL_EVAL_MARKER.decode()] = "1"
    return response


def draws_webgl(data: dict[str, Any]) -> bool:
    """Whether the page's figures (JSON, see :func:`figure_json`) draw a WebGL trace, for
    which the Content-Security-Policy allows Plotly's ``Function`` (see
    :data:`flowscope.http_security.WEBGL_EVAL_MARKER`). Only the traces count: every
    figure's layout template names parcoords too."""
    figures = data.get("figures") or {}
    return any(
        trace.get("type") in WEBGL_TRACES
        for figure in figures.values()
        if isinstance(figure, str)
        for trace in json.loads(figure).get("data", [])
    )


def figure_json(figure: Any) -> str:
    """A Plotly figure as the JSON the page's script hands to ``Plotly.newPlot``."""
    plotted = figure.to_plotly_json()
    try:  # NaN has no JSON: only figures that hold some pay for the walk through them
        return json.dumps(plotted, default=_plain, allow_nan=False)
    except ValueError:
        return json.dumps(clean(plotted), default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return clean(value.tolist())
    return str(value)
