"""Which ``Host`` headers an app answers: the loopback names, the address it listens on
and what ``allowed_hosts`` adds; any other gets a 400 before the app sees the request.

A page on an attacker's site can make a browser reach a server on the victim's network
by rebinding its own name to the server's address (DNS rebinding); the browser then sends
the attacker's name as ``Host``. Answering only names the operator chose stops that; an
address literal is no rebinding (that needs a name the attacker owns).

Configured patterns follow MLflow's ``MLFLOW_SERVER_ALLOWED_HOSTS``: a name matches
without a port, ``name:*`` with any port, ``*`` anywhere (``fnmatch``), and ``*`` alone
allows every host.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "[::]")
# What MLflow's server answers by default besides loopback; given to it on `flowscope
# server` so that its own check (behind ours) agrees. Ours checks addresses properly:
# MLflow's "10.*" also matches a name such as 10.attacker.example.
MLFLOW_PRIVATE_PATTERNS = (
    "10.*",
    "192.168.*",
    *(f"172.{second}.*" for second in range(16, 32)),
)
REFUSAL = (
    "this server does not answer for the host name in the request's Host header; "
    "its operator can add it to allowed_hosts (--allowed-hosts, FLOWSCOPE_ALLOWED_HOSTS)"
)


def split_list(value: str | None) -> list[str]:
    """A comma-separated setting (``allowed_hosts``, ``cors_allowed_origins``) as a list."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@dataclass(frozen=True)
class HostPolicy:
    """The ``Host`` values one app answers: names (exact, with or without a port),
    configured ``patterns``, and with ``private_addresses`` any private-network address
    literal (an app listening on every interface is reached at any of its addresses)."""

    names: tuple[str, ...]
    patterns: tuple[str, ...] = ()
    private_addresses: bool = False

    @classmethod
    def for_app(cls, configured: str | None, bind_host: str | None = None) -> HostPolicy:
        """The policy of an app listening on ``bind_host`` (unknown: loopback only) with
        the ``allowed_hosts`` setting ``configured``: the loopback names, the address it
        listens on (on every interface: this machine's names and private addresses),
        then the configured patterns."""
        names = list(LOOPBACK_NAMES)
        host = (bind_host or "").strip().lower()
        everywhere = host in WILDCARD_ADDRESSES
        if everywhere:
            names += [name.lower() for name in (socket.gethostname(), socket.getfqdn()) if name]
        elif host:
            names.append(f"[{host}]" if ":" in host and not host.startswith("[") else host)
        patterns = tuple(pattern.lower() for pattern in split_list(configured))
        return cls(tuple(dict.fromkeys(names)), patterns, private_addresses=everywhere)

    def allows(self, host: str) -> bool:
        host = host.strip().lower()
        if not host:
            return False
        name = _without_port(host)
        if name in self.names:
            return True
        if self.private_addresses and _is_private_address(name):
            return True
        return any(
            pattern == "*"
            or (fnmatch.fnmatchcase(host, pattern) if "*" in pattern else host == pattern)
            for pattern in self.patterns
        )

    @property
    def allows_everything(self) -> bool:
        return "*" in self.patterns

    def mlflow_patterns(self) -> str:
        """The same policy as ``MLFLOW_SERVER_ALLOWED_HOSTS`` patterns, for MLflow's own
        check on ``flowscope server`` (looser for address literals; ours runs first)."""
        hosts: list[str] = []
        for name in self.names:
            hosts += [name, f"{name.replace('[', '[[]', 1)}:*"]
        if self.private_addresses:
            hosts += MLFLOW_PRIVATE_PATTERNS
        return ",".join([*hosts, *self.patterns])


class AllowedHostsMiddleware:
    """Answers 400 to a request whose ``Host`` the policy does not allow, except on
    ``exempt`` paths (health checks, which probes reach by address, as MLflow exempts)."""

    def __init__(self, app: ASGIApp, policy: HostPolicy, exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.policy = policy
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] not in ("http", "websocket")
            or self.policy.allows_everything
            or scope["path"] in self.exempt
            or self.policy.allows(header(scope, b"host"))
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_json(send, 400, REFUSAL)


async def send_json(send: Send, status: int, message: str) -> None:
    """An error in flowscope's shape, ``{"ok": false, "error", "status"}``, sent by a
    middleware before the app is reached."""
    body = json.dumps({"ok": False, "error": message, "status": status}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> str:
    """The first value of request header ``name`` (lower case), or ``""``."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def _matches(host: str, pattern: str) -> bool:
    if "*" in pattern:
        return pattern == "*" or fnmatch.fnmatchcase(host, pattern)
    return host == pattern


def _without_port(host: str) -> str:
    if host.startswith("["):  # [::1]:8080
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_private_address(name: str) -> bool:
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return address.is_private and not address.is_unspecified
