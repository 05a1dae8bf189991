"""The dashboard under a path prefix: its pages and redirects name absolute paths
(``/experiments``, ``/runs/ID``), which this middleware moves under the prefix on the way
out, so one set of templates serves both ``flowscope ui`` (at ``/``) and ``flowscope
server`` (at ``/flowscope/``). JSON twins are left as they are: they equal the pages of
the dashboard opened directly."""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowscope.server.held import holding_send


def prefix_links(html: bytes, prefix: str) -> bytes:
    """``html`` with every absolute link to the dashboard moved under ``prefix``: not a
    protocol-relative one (``//host``), not one into MLflow's UI at the server's root
    (``/#/experiments/...``), not one already under ``prefix`` (built from the request's
    own URL)."""
    inside = re.escape(prefix.strip("/").encode())
    link = re.compile(
        rb'((?:href|src|action|formaction|hx-[a-z]+)=["\'])/(?![/#]|' + inside + rb'(?:[/?"\']))'
    )
    return link.sub(rb"\1" + prefix.encode() + b"/", html)


class PrefixLinksMiddleware:
    """Moves the links of HTML answers and the ``Location`` of redirects under ``prefix``
    (``/flowscope``) when the app is mounted there."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def hold(start: Message) -> bool:
            headers = MutableHeaders(scope=start)
            location = headers.get("location")
            if location and location.startswith("/") and not self._inside(location):
                headers["location"] = self.prefix + location
            return headers.get("content-type", "").startswith("text/html")

        async def rewrite(start: Message, page: bytes) -> None:
            body = prefix_links(page, self.prefix)
            MutableHeaders(scope=start)["content-length"] = str(len(body))
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, holding_send(send, hold, rewrite))

    def _inside(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")
