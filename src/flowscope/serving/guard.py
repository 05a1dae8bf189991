"""The prediction service's door with auth on (``flowscope serve --auth``): every route
but ``/health`` needs a user with READ on the served registered model, proved by a
password (HTTP basic, as MLflow's scoring clients send it) or an API token of either scope
(``Authorization: Bearer``). Anonymous or bad credentials get 401 with
``WWW-Authenticate``, a user without READ 403; ``/invocations`` answers in MLflow's error
shape, the other routes in the service's.

The users, grants and tokens are those of ``flowscope server --auth`` (MLflow's auth store
and flowscope's token table), read, never written. A request costs dictionary lookups: the
authenticator trusts a checked password or token for ``token_cache_seconds``, and this
guard trusts its decision for a user as long (a grant changed on the server applies here
within that time). Only a miss, a database query or a password hash, goes to a thread, so
the event loop never waits on one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from flowscope.auth import (
    AuthServices,
    Forbidden,
    Identity,
    NotCached,
    Unauthenticated,
    open_auth,
)
from flowscope.auth.access import REGISTERED_MODEL
from flowscope.serving import scoring
from flowscope.serving.service import error_body

if TYPE_CHECKING:
    from flowscope.config import Settings

PUBLIC = frozenset({"/health"})
CHALLENGE = 'Basic realm="flowscope serve", charset="UTF-8"'
MAX_DECISIONS = 10_000


def open_service_auth(settings: Settings) -> AuthServices | None:
    """The auth store of ``settings`` opened for reading (``None`` when auth is off): no
    browser sessions, so no ``secret_key``; a :class:`~flowscope.errors.ConfigError` when
    its tables are missing."""
    return open_auth(settings, sessions=False, create_tables=False)


class ServiceGuard:
    """Pure ASGI middleware admitting only readers of ``model_name``."""

    def __init__(
        self,
        app: ASGIApp,
        services: AuthServices,
        model_name: str,
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.services = services
        self.model_name = model_name
        self._cache_seconds = cache_seconds
        self._clock = clock
        # username -> (when decided, None when allowed else why not); only the event
        # loop touches it
        self._decisions: dict[str, tuple[float, str | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC:
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(Headers(scope=scope).get("authorization"))
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        refuse = scoring.error_body if scope["path"] == "/invocations" else error_body
        response: Response = refuse(status, message, None)
        if status == 401:
            response.headers["WWW-Authenticate"] = CHALLENGE
        await response(scope, receive, send)

    async def _refusal(self, authorization: str | None) -> tuple[int, str] | None:
        """``(status, why)`` when the request may not pass, else ``None``."""
        if not authorization:
            return 401, "sign in: a password (HTTP basic) or an API token (Bearer)"
        authenticator = self.services.authenticator
        try:
            try:
                identity = authenticator.identify(authorization, None, cached_only=True)
            except NotCached:
                identity = await run_in_threadpool(authenticator.identify, authorization, None)
        except Unauthenticated as refused:
            return 401, refused.message
        if identity is None:  # not reached: a header was sent
            return 401, "sign in: a password (HTTP basic) or an API token (Bearer)"
        forbidden = await self._forbidden(identity)
        return None if forbidden is None else (403, forbidden)

    async def _forbidden(self, identity: Identity) -> str | None:
        """Why ``identity`` may not read the model (``None``: it may), remembered for
        ``cache_seconds``."""
        if identity.is_admin:
            return None
        now = self._clock()
        hit = self._decisions.get(identity.username)
        if hit is not None and now - hit[0] < self._cache_seconds:
            return hit[1]
        decision = await run_in_threadpool(self._decide, identity)
        if len(self._decisions) >= MAX_DECISIONS:
            self._decisions.clear()
        self._decisions[identity.username] = (now, decision)
        return decision

    def _decide(self, identity: Identity) -> str | None:
        try:
            self.services.access(identity).require(
                REGISTERED_MODEL, self.model_name, "read", f"model {self.model_name!r}"
            )
        except Forbidden as refused:
            return refused.message
        return None
