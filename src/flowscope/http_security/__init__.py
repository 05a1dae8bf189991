"""What every app flowscope serves (the dashboard, ``flowscope server``, the prediction
service) puts between the network and its routes: security headers on every response,
the ``Host`` check and the cross-origin policy.

It lives outside ``web`` and ``server`` because the prediction service (a domain
package, which never imports them) uses it too; it knows nothing of any app.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flowscope.http_security.cors import CrossOriginMiddleware
from flowscope.http_security.headers import (
    WEBGL_EVAL_MARKER,
    SecurityHeaders,
    SecurityHeadersMiddleware,
    inline_script_hashes,
)
from flowscope.http_security.hosts import AllowedHostsMiddleware, HostPolicy, split_list

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import ASGIApp


def secure_app(
    app: Starlette,
    hosts: HostPolicy,
    cors_origins: Iterable[str] = (),
    *,
    headers: SecurityHeaders | None = None,
    exempt_from_host_check: Iterable[str] = (),
) -> None:
    """Wrap ``app`` in the three layers, outermost first: headers, ``Host`` check, CORS.

    They go around the whole middleware stack Starlette builds, outside its
    ``ServerErrorMiddleware``, so that a 500 from an unexpected error carries the headers
    too (``add_middleware`` would put them inside it)."""
    build_stack = app.build_middleware_stack
    origins = tuple(cors_origins)
    exempt = tuple(exempt_from_host_check)

    def build_secured_stack() -> ASGIApp:
        inner = CrossOriginMiddleware(build_stack(), origins)
        checked = AllowedHostsMiddleware(inner, hosts, exempt)
        return SecurityHeadersMiddleware(checked, headers)

    app.build_middleware_stack = build_secured_stack  # type: ignore[method-assign]


__all__ = [
    "WEBGL_EVAL_MARKER",
    "AllowedHostsMiddleware",
    "CrossOriginMiddleware",
    "HostPolicy",
    "SecurityHeaders",
    "SecurityHeadersMiddleware",
    "inline_script_hashes",
    "secure_app",
    "split_list",
]
