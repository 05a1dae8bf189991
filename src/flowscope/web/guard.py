"""The dashboard's door when auth is on: every request but the login page, the health
check and the static files must come from a signed-in user, and every change made with a
browser session must carry that session's CSRF token from the dashboard's own origin.

A pure ASGI middleware, so that it sees uploads as a stream: a multipart form's token is
its first field (the page's script puts it first), read without reading the file after it.
What each route then needs (READ on the experiment, MANAGE on the model...) is
:mod:`flowscope.web.access`'s.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowscope.auth.identity import Identity, Unauthenticated
from flowscope.auth.services import AuthServices
from flowscope.auth.sessions import COOKIE, CSRF_FIELD, CSRF_HEADER
from flowscope.server.held import holding_send

PUBLIC = frozenset({"/login", "/health"})
PUBLIC_PREFIXES = ("/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_PEEK = 64 * 1024  # a form without its files, or a multipart form's first field


def dashboard_path(scope: Scope) -> str:
    """The path inside the dashboard, also when it is mounted under a prefix."""
    path: str = scope["path"]
    return path.removeprefix(scope.get("root_path", "")) or "/"


class AuthGuard:
    """Authenticates each request into ``scope["state"]["identity"]`` (and
    ``scope["flowscope.user"]``); answers 401 itself for anonymous or bad credentials and 403
    for a session's change without its CSRF token. ``refuse(scope, receive, send, status,
    message)`` writes those answers in the dashboard's one error shape."""

    def __init__(
        self,
        app: ASGIApp,
        services: AuthServices,
        refuse: Callable[[Scope, Receive, Send, int, str], Awaitable[None]],
    ) -> None:
        self.app = app
        self.services = services
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("flowscope.health_probe"):  # /health's own in-process request
            await self.app(scope, receive, send)
            return
        path = dashboard_path(scope)
        state = scope.setdefault("state", {})
        headers = Headers(scope=scope)
        public = path in PUBLIC or path.startswith(PUBLIC_PREFIXES)
        try:
            identity = await run_in_threadpool(
                self.services.authenticator.identify,
                headers.get("authorization"),
                _cookie(headers.get("cookie")),
            )
        except Unauthenticated as refused:
            if public:  # a bad header must not lock anyone out of the login page
                identity = None
            else:
                await self.refuse(scope, receive, send, 401, refused.message)
                return
        state["identity"] = identity
        state["access"] = self.services.access(identity)
        if identity is None:
            if not public:
                await self.refuse(scope, receive, send, 401, "sign in to see this page")
                return
            await self.app(scope, receive, send)
            return
        scope["flowscope.user"] = identity.username
        if identity.session is not None:
            token = state["csrf_token"] = self.services.sessions.csrf_token(identity.session)
            if scope["method"] not in SAFE_METHODS:
                problem, receive = await self._csrf_problem(scope, receive, headers, identity)
                if problem:
                    await self.refuse(scope, receive, send, 403, problem)
                    return
            send = _with_csrf_fields(send, token)
        await self.app(scope, receive, send)

    async def _csrf_problem(
        self, scope: Scope, receive: Receive, headers: Headers, identity: Identity
    ) -> tuple[str | None, Receive]:
        """Why this change is refused (``None``: it is not), and a ``receive`` that replays
        what was read of the body."""
        origin = headers.get("origin") or headers.get("referer")
        if origin and urlsplit(origin).netloc != headers.get("host", ""):
            return "the request came from another site", receive
        token = headers.get(CSRF_HEADER)
        if token is None:
            token, receive = await _form_token(headers, receive)
        if identity.session is None or not self.services.sessions.csrf_matches(
            identity.session, token
        ):
            return "the form's CSRF token is missing or wrong: reload the page", receive
        return None, receive


POST_FORM = re.compile(rb"<form\b[^>]*\bmethod=[\"']?post\b[^>]*>", re.IGNORECASE)


def with_csrf_fields(page: bytes, token: str) -> bytes:
    """``page`` with the CSRF token as the first field of every form that posts (first, so
    that a multipart form's token is read before its files)."""
    field = f'<input type="hidden" name="{CSRF_FIELD}" value="{html.escape(token)}">'.encode()
    return POST_FORM.sub(lambda match: match.group(0) + field, page)


def _with_csrf_fields(send: Send, token: str) -> Send:
    def hold(start: Message) -> bool:
        return Headers(raw=start["headers"]).get("content-type", "").startswith("text/html")

    async def answer(start: Message, page: bytes) -> None:
        body = with_csrf_fields(page, token)
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return holding_send(send, hold, answer)


def _cookie(header: str | None) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


async def _form_token(headers: Headers, receive: Receive) -> tuple[str | None, Receive]:
    """The ``csrf_token`` field of a form body, read no further than needed."""
    kind = headers.get("content-type", "")
    read: list[Message] = []
    body = b""
    more = True
    while more and len(body) < MAX_FORM_PEEK:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if kind.startswith("multipart/form-data") and _first_part_read(body):
            break
    token: str | None = None
    if kind.startswith("application/x-www-form-urlencoded") and not more:
        token = next(iter(parse_qs(body.decode("latin-1")).get(CSRF_FIELD, [])), None)
    elif kind.startswith("multipart/form-data"):
        token = _first_part_token(body)
    elif kind.startswith("application/json") and not more:
        token = _json_token(body)
    return token, _replaying(read, receive)


def _first_part_read(body: bytes) -> bool:
    first = body.find(b"\r\n--", body.find(b"\r\n\r\n") + 4) if b"\r\n\r\n" in body else -1
    return first != -1


def _first_part_token(body: bytes) -> str | None:
    head, sep, rest = body.partition(b"\r\n\r\n")
    if not sep or f'name="{CSRF_FIELD}"'.encode() not in head:
        return None
    value, found, _ = rest.partition(b"\r\n--")
    return value.decode("latin-1") if found else None


def _json_token(body: bytes) -> str | None:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    value = data.get(CSRF_FIELD) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _replaying(read: list[Message], receive: Receive) -> Receive:
    pending = list(read)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
