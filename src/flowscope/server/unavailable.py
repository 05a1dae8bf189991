"""503 with ``Retry-After`` while a part the server needs is away.

When the database stops answering mid-request (a restart, a failover, terminated
connections) the dashboard answers 500 and MLflow's handlers 500 or a 503 with no
``Retry-After``. So every 500 and 503 is checked against the parts: when the database (or,
on an artifact route, the artifact destination) cannot be reached, the answer becomes a
503 naming it with ``Retry-After``, in MLflow's error shape and flowscope's, which
MLflow's clients and flowscope's SDK retry. With every part reachable the answer is left
as it is: it is a real error.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowscope.errors import FlowscopeError
from flowscope.server.held import holding_send
from flowscope.server.startup import ServerConfig, check_artifacts, check_database, first_line

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
HEALTH_PATH = "/health"


def unavailable_part(config: ServerConfig, path: str) -> str | None:
    """The message naming the part ``path`` needs that cannot be reached, if one cannot:
    the part alone, for a client; where it is and what its driver said go to the log."""
    probes: list[Callable[[], None]] = [lambda: check_database(config.backend_store_uri)]
    if "artifacts" in path:
        probes.append(lambda: check_artifacts(config.artifacts_destination))
    for probe in probes:
        try:
            probe()
        except FlowscopeError as exc:
            logger.warning("%s: %s", path, exc.for_operator)
            return exc.message
        except Exception:  # a probe's own bug: no verdict, the answer stays as it was
            logger.exception("%s: probing the server's parts failed", path)
    return None


PROBE_FOR_SECONDS = 1.0


class PartProbe:
    """:func:`unavailable_part`, asked once at a time and its verdict kept a moment: a burst
    of failing requests (an outage, a route with a bug) shares one probe instead of
    opening a connection each."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._lock: anyio.Lock | None = None
        self._verdicts: dict[bool, tuple[float, str | None]] = {}

    async def __call__(self, path: str) -> str | None:
        artifacts = "artifacts" in path
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            at, verdict = self._verdicts.get(artifacts, (-math.inf, None))
            if self.clock() - at > PROBE_FOR_SECONDS:
                verdict = await anyio.to_thread.run_sync(unavailable_part, self.config, path)
                self._verdicts[artifacts] = (self.clock(), verdict)
            return verdict


class UnavailableMiddleware:
    """Turns a 500 or 503, or an error raised before any answer, into a 503 with
    ``Retry-After`` when :func:`unavailable_part` finds a part away; any other answer
    passes untouched."""

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self.probe = PartProbe(config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == HEALTH_PATH:  # it names the parts
            await self.app(scope, receive, send)
            return
        answered_unavailable = False
        started = False

        async def noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        def hold(start: Message) -> bool:
            return start["status"] in (500, 503)  # decided once the parts are probed

        async def problem() -> str | None:
            return await self.probe(scope["path"])

        async def answer(start: Message, original: bytes) -> None:
            nonlocal answered_unavailable
            away = await problem()
            if away is None:
                await noting_start(start)
                await send({"type": "http.response.body", "body": original})
                return
            await _send_unavailable(noting_start, away)
            answered_unavailable = True

        try:
            await self.app(scope, receive, holding_send(noting_start, hold, answer))
        except Exception as exc:
            # A handled 500 is raised again after it was answered, for the server's log;
            # once it was answered as a part away, the log line is this and the client's
            # connection stays open for its retry. An error raised before any answer (a
            # WSGI handler's, say an object store's client failing) is answered here.
            if not answered_unavailable:
                away = None if started else await problem()
                if away is None:
                    raise
                await _send_unavailable(noting_start, away)
            logger.warning("%s %s: %s", scope.get("method"), scope.get("path"), first_line(exc))


async def _send_unavailable(send: Send, problem: str) -> None:
    text = f"{problem}; retry later"
    body = json.dumps(  # flowscope's error shape and MLflow's, for either client
        {
            "ok": False,
            "error": text,
            "status": 503,
            "error_code": "TEMPORARILY_UNAVAILABLE",
            "message": text,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
