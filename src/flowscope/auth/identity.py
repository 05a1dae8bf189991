"""Who is asking: the user behind a request's ``Authorization`` header (HTTP basic with a
password, as MLflow's clients send it, or a bearer API token) or its session cookie.

Checked passwords and tokens are trusted for ``cache_seconds`` per process, so a request
costs a dictionary lookup rather than MLflow's slow password hash; the cache is keyed by an
HMAC under a per-process key, never by the secret itself. Expiry is checked on every
request, and a token revoked through this process stops working at once. An event loop that
must not wait asks with ``cached_only`` first and goes to a thread only on a miss.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from flowscope.auth.sessions import Session, Sessions
from flowscope.auth.tokens import TokenInfo, TokenRefused, TokenStore, check_usable
from flowscope.errors import FlowscopeError

Via = Literal["password", "token", "session"]
MAX_CACHED = 10_000


class Unauthenticated(FlowscopeError):
    """Credentials that were sent but are not good: a 401 naming why."""

    status = 401


class NotCached(Exception):
    """What :meth:`Authenticator.identify` raises with ``cached_only`` when the answer needs
    the database or a password hash: ask again in a thread."""


@dataclass(frozen=True)
class Identity:
    """A signed-in user, how they signed in, and whether they may change things (a
    ``read`` token may not)."""

    username: str
    is_admin: bool
    via: Via
    may_write: bool = True
    session: Session | None = None


class Authenticator:
    """Turns credentials into an :class:`Identity` against MLflow's user store
    (``users``: :class:`mlflow.server.auth.sqlalchemy_store.SqlAlchemyStore`), flowscope's
    tokens and the session signer (``None`` in a process without browser sessions, such as
    the prediction service: a cookie there is ignored)."""

    def __init__(
        self,
        users: Any,
        tokens: TokenStore,
        sessions: Sessions | None,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users = users
        self.tokens = tokens
        self.sessions = sessions
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._cache: dict[bytes, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def identify(
        self, authorization: str | None, cookie: str | None, *, cached_only: bool = False
    ) -> Identity | None:
        """The identity the header or cookie proves; ``None`` when there is neither;
        :class:`Unauthenticated` when what was sent is not good. With ``cached_only``,
        :class:`NotCached` rather than a database query or a password hash."""
        if authorization:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() == "bearer":
                return self._by_token(credentials.strip(), cached_only)
            if scheme.lower() == "basic":
                return self._by_password(credentials.strip(), cached_only)
            raise Unauthenticated("the Authorization header is neither Basic nor Bearer")
        if cookie and self.sessions is not None:
            session = self.sessions.read(cookie)
            if session is None:
                return None  # a stale or tampered cookie: as if signed out
            return self._user_identity(
                session.username, "session", session=session, cached_only=cached_only
            )
        return None

    def sign_in(self, username: str, password: str) -> Identity:
        """The identity of a correct user name and password (the login form)."""
        if not self._password_ok(username, password):
            raise Unauthenticated("wrong user name or password")
        return self._user_identity(username, "password")

    def forget_token(self, token_id: str) -> None:
        """Stop trusting a cached token at once (it was just revoked)."""
        with self._lock:
            for key, (_, value) in list(self._cache.items()):
                if isinstance(value, TokenInfo) and value.token_id == token_id:
                    del self._cache[key]

    def _by_token(self, token: str, cached_only: bool) -> Identity:
        info = self._cached(b"t:" + token.encode(), lambda: self.tokens.verify(token), cached_only)
        try:  # it may have expired since it was cached
            check_usable(info, int(self._clock() * 1000))
        except TokenRefused as refused:
            raise Unauthenticated(refused.message) from None
        return self._user_identity(
            info.username, "token", may_write=info.scope == "write", cached_only=cached_only
        )

    def _by_password(self, credentials: str, cached_only: bool) -> Identity:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("the Basic credentials are not base64 of user:password") from None
        username, colon, password = decoded.partition(":")
        if not colon or not username:
            raise Unauthenticated("the Basic credentials are not base64 of user:password")
        if not self._password_ok(username, password, cached_only):
            raise Unauthenticated("wrong user name or password")
        return self._user_identity(username, "password", cached_only=cached_only)

    def _password_ok(self, username: str, password: str, cached_only: bool = False) -> bool:
        key = b"p:" + username.encode() + b"\0" + password.encode()
        try:
            return bool(
                self._cached(
                    key,
                    lambda: self.users.authenticate_user(username, password) or None,
                    cached_only,
                )
            )
        except _WrongPassword:
            return False

    def _user_identity(
        self,
        username: str,
        via: Via,
        *,
        may_write: bool = True,
        session: Session | None = None,
        cached_only: bool = False,
    ) -> Identity:
        user = self._cached(
            b"u:" + username.encode(), lambda: self._user_or_none(username), cached_only
        )
        if user is None:
            raise Unauthenticated(f"the user {username!r} no longer exists")
        return Identity(username, bool(user.is_admin), via, may_write, session)

    def _user_or_none(self, username: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.users.get_user(username)
        except MlflowException:
            return None

    def _cached(self, key: bytes, compute: Callable[[], Any], cached_only: bool = False) -> Any:
        """``compute()``, remembered for ``cache_seconds`` when it is not ``None``;
        :class:`NotCached` instead of computing with ``cached_only``."""
        digest = hmac.new(self._key, key, hashlib.sha256).digest()
        now = self._clock()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and now - hit[0] < self._cache_seconds:
                return hit[1]
        if cached_only:
            raise NotCached
        try:
            value = compute()
        except TokenRefused as refused:
            raise Unauthenticated(refused.message) from None
        if value is None:
            if key.startswith(b"p:"):
                raise _WrongPassword
            return None
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[digest] = (now, value)
        return value


class _WrongPassword(Exception):
    """A wrong password: never remembered."""
