"""Cross-origin requests: off unless ``cors_allowed_origins`` names the origins whose
pages may call an app from a browser.

With nothing configured no response carries ``Access-Control-Allow-Origin`` for any
origin: this middleware strips what an inner app would grant (MLflow's own CORS layers
answer every ``http://localhost:*`` page), answers a preflight from a foreign origin with
403, and refuses a state-changing request (POST, PUT, PATCH, DELETE) a foreign page sends
(a form post needs no preflight), as MLflow refuses them on its API. A page's requests to
its own origin pass untouched; scripts and clients send no ``Origin`` and are not affected.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowscope.http_security.hosts import header, send_json

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
PREFLIGHT_MAX_AGE = "600"
REFUSAL = (
    "cross-origin requests from this page's origin are not allowed; the operator can "
    "name it in cors_allowed_origins (--cors-allowed-origins, FLOWSCOPE_CORS_ALLOWED_ORIGINS)"
)


class CrossOriginMiddleware:
    """CORS for ``origins`` (exact ``scheme://host[:port]`` values, ``fnmatch`` patterns,
    or ``*`` for any origin without credentials), and none for any other origin."""

    def __init__(self, app: ASGIApp, origins: Iterable[str] = ()) -> None:
        self.app = app
        self.origins = tuple(origin.rstrip("/") for origin in origins)
        self.any_origin = "*" in self.origins

    def allows(self, origin: str) -> bool:
        return self.any_origin or any(
            fnmatch.fnmatchcase(origin, allowed) if "*" in allowed else origin == allowed
            for allowed in self.origins
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = header(scope, b"origin")
        if not origin or _same_origin(origin, header(scope, b"host")):
            await self.app(scope, receive, send)
            return
        allowed = self.allows(origin)
        method = scope["method"]
        if method == "OPTIONS" and header(scope, b"access-control-request-method"):
            if allowed:
                await self._preflight(scope, send, origin)
            else:
                await send_json(send, 403, REFUSAL)
            return
        if not allowed and method in STATE_CHANGING:
            await send_json(send, 403, REFUSAL)
            return
        granted = self._granted(origin) if allowed else []

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if not name.lower().startswith(b"access-control-")
                ]
                message["headers"] = [*kept, *granted]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _granted(self, origin: str) -> list[tuple[bytes, bytes]]:
        if self.any_origin:  # credentials are never shared with every origin
            return [(b"access-control-allow-origin", b"*")]
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]

    async def _preflight(self, scope: Scope, send: Send, origin: str) -> None:
        headers = [
            *self._granted(origin),
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
            (b"content-length", b"0"),
        ]
        requested = header(scope, b"access-control-request-headers")
        if requested:
            headers.append((b"access-control-allow-headers", requested.encode("latin-1")))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _same_origin(origin: str, host: str) -> bool:
    """Whether a page at ``origin`` asks its own server (``Host``), as a browser sends
    ``Origin`` on its own form posts and fetches too."""
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.strip().lower()
