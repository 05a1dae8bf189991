"""The security headers every response of every app flowscope serves carries: a Content
Security Policy without inline script, frame denial, nosniff, a referrer policy, an opener
policy and a permissions policy.

One pure ASGI middleware sets them on ``http.response.start`` and passes every body chunk
through untouched, so streamed answers (artifact downloads, CSV exports) stay streamed.
Headers an inner app already set under the same names are replaced, never duplicated.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# style-src keeps 'unsafe-inline': Plotly and htmx insert <style> rules and style
# attributes, MLflow's React UI its CSS-in-JS. Styles cannot run code; scripts get no such
# allowance.
BASE_DIRECTIVES: tuple[tuple[str, str], ...] = (
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    ("style-src", "'self' 'unsafe-inline'"),
    ("img-src", "'self' data: blob:"),
    ("font-src", "'self' data:"),
    ("connect-src", "'self'"),
    ("worker-src", "'self' blob:"),
    ("object-src", "'none'"),
    ("base-uri", "'self'"),
    ("form-action", "'self'"),
    ("frame-ancestors", "'none'"),
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
# same-origin: a page's address (run ids, filters) never leaves for another site, and
# same-origin requests keep their Referer for a CSRF check.
REFERRER_POLICY = "same-origin"
HSTS = "max-age=31536000"
# What a page that draws WebGL charts (Plotly's parcoords) sends to ask for 'unsafe-eval':
# regl, Plotly's WebGL layer, compiles its draw calls with `Function` whenever the shaders
# plotly.js ships precompiled do not match the browser's (they miss in Chromium without a
# GPU), and the chart stays blank without it. Only those pages get it, never an inline
# script; the marker is taken off before the response leaves.
WEBGL_EVAL_MARKER = b"x-flowscope-webgl-eval"


@dataclass(frozen=True)
class SecurityHeaders:
    """The header values of one app: ``script_hashes`` are the sha256 sources of inline
    scripts it must run (``'sha256-...'``), ``frameable`` the path prefixes other sites
    may frame (MLflow's notebook trace renderer, shown in a Jupyter iframe)."""

    script_hashes: tuple[str, ...] = ()
    frameable: tuple[str, ...] = ()

    def content_security_policy(self, *, framed: bool = False, webgl_eval: bool = False) -> str:
        parts = []
        for name, value in BASE_DIRECTIVES:
            if name == "script-src":
                value = " ".join(
                    [value, *self.script_hashes, *(["'unsafe-eval'"] if webgl_eval else [])]
                )
            if name == "frame-ancestors" and framed:
                continue
            parts.append(f"{name} {value}")
        return "; ".join(parts)

    def is_frameable(self, path: str) -> bool:
        return bool(self.frameable) and path.startswith(self.frameable)

    def values(
        self, *, framed: bool, https: bool, webgl_eval: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """The headers of a response, framed or not (HSTS only over HTTPS: a browser
        ignores it on plain HTTP, where a TLS-terminating proxy is the one to send it)."""
        policy = self.content_security_policy(framed=framed, webgl_eval=webgl_eval)
        headers = [
            ("content-security-policy", policy),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", REFERRER_POLICY),
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-resource-policy", "same-origin"),
            ("permissions-policy", PERMISSIONS_POLICY),
        ]
        if not framed:
            headers.append(("x-frame-options", "DENY"))
        if https:
            headers.append(("strict-transport-security", HSTS))
        return [(name.encode(), value.encode()) for name, value in headers]


class SecurityHeadersMiddleware:
    """Sets :class:`SecurityHeaders` on every HTTP response of ``app``."""

    def __init__(self, app: ASGIApp, headers: SecurityHeaders | None = None) -> None:
        self.app = app
        self.headers = headers or SecurityHeaders()
        self._variants = {
            (framed, https, webgl): self.headers.values(
                framed=framed, https=https, webgl_eval=webgl
            )
            for framed in (False, True)
            for https in (False, True)
            for webgl in (False, True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        framed = self.headers.is_frameable(scope["path"])
        https = scope.get("scheme") == "https"
        names = {name for name, _ in self._variants[framed, https, False]} | {WEBGL_EVAL_MARKER}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                webgl = any(name.lower() == WEBGL_EVAL_MARKER for name, _ in headers)
                kept = [(name, value) for name, value in headers if name.lower() not in names]
                message["headers"] = [*kept, *self._variants[framed, https, webgl]]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def inline_script_hashes(pages: Iterable[Path]) -> tuple[str, ...]:
    """The CSP sources (``'sha256-...'``) of the inline scripts in ``pages``, such as
    MLflow's UI's ``index.html``, read when the app is built so that exactly the installed
    scripts run; a page that is missing contributes none."""
    hashes: list[str] = []
    for page in pages:
        try:
            text = page.read_text(encoding="utf-8")
        except OSError:
            continue
        for script in _inline_scripts(text):
            digest = hashlib.sha256(script.encode("utf-8")).digest()
            source = f"'sha256-{base64.b64encode(digest).decode()}'"
            if source not in hashes:
                hashes.append(source)
    return tuple(hashes)


def _inline_scripts(html: str) -> Sequence[str]:
    parser = _ScriptParser()
    parser.feed(html)
    parser.close()
    return parser.scripts


class _ScriptParser(HTMLParser):
    """Collects the text of ``<script>`` elements without a ``src`` (data blocks such as
    ``type="application/json"`` run nothing and need no hash, but hashing them is harmless)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self._current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and not any(name == "src" for name, _ in attrs):
            self._current = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._current is not None:
            self.scripts.append("".join(self._current))
            self._current = None
