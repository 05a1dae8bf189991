"""Browser sessions: a signed cookie naming the user, and the CSRF token bound to it.

The cookie holds ``{user, session id, expiry}`` signed with the server's secret key
(itsdangerous, as Flask's sessions): nothing to store, the same in every worker. It is
``HttpOnly``, ``SameSite=Lax`` and ``Secure`` over HTTPS. Every form post made with it must
carry the session's CSRF token (an HMAC of its id), in a ``csrf_token`` field or an
``X-CSRF-Token`` header, and come from the server's own origin when the browser says where
it came from.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "flowscope_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    username: str
    session_id: str
    expires_at: float  # seconds since the epoch


class Sessions:
    """Issues and reads session cookies signed with ``secret_key``, lasting ``hours``."""

    def __init__(
        self, secret_key: str, hours: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._signer = URLSafeSerializer(secret_key, salt="flowscope.session")
        self._csrf_key = hashlib.sha256(b"flowscope.csrf" + secret_key.encode()).digest()
        self.max_age = int(hours * 3600)
        self._clock = clock

    def issue(self, username: str) -> tuple[str, Session]:
        """The cookie value of a new session of ``username``."""
        session = Session(username, secrets.token_urlsafe(16), self._clock() + self.max_age)
        value = self._signer.dumps(
            {"u": session.username, "s": session.session_id, "e": session.expires_at}
        )
        return value, session

    def read(self, cookie: str) -> Session | None:
        """The session a cookie holds; ``None`` if it was tampered with or has expired."""
        try:
            data = self._signer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        username, session_id, expires = data.get("u"), data.get("s"), data.get("e")
        if not (isinstance(username, str) and isinstance(session_id, str)):
            return None
        if not isinstance(expires, int | float) or self._clock() >= expires:
            return None
        return Session(username, session_id, float(expires))

    def csrf_token(self, session: Session) -> str:
        """The token every form post of ``session`` must carry."""
        return hmac.new(self._csrf_key, session.session_id.encode(), "sha256").hexdigest()

    def csrf_matches(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))
