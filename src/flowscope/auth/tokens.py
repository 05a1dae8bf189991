"""Personal API tokens: ``fst_<id>_<secret>``, sent as ``Authorization: Bearer``.

Only a SHA-256 of the secret is kept (the secret is 256 random bits, so a fast hash is
enough, as for GitHub's tokens; passwords, which people choose, keep MLflow's slow one).
Each token is scoped ``read`` (safe requests only) or ``write``, may expire, and can be
revoked. The table lives in the auth database beside MLflow's users and permissions:
flowscope keeps no database of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import sqlalchemy as sa

from flowscope.errors import FlowscopeError, NotFoundError

PREFIX = "fst_"
SCOPES = ("read", "write")
Scope = Literal["read", "write"]
MAX_NAME = 100
MAX_DAYS = 3650

_metadata = sa.MetaData()
TOKENS = sa.Table(
    "flowscope_tokens",
    _metadata,
    sa.Column("token_id", sa.String(32), primary_key=True),
    sa.Column("username", sa.String(255), nullable=False, index=True),
    sa.Column("name", sa.String(MAX_NAME), nullable=False),
    sa.Column("scope", sa.String(8), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)


class TokenRefused(FlowscopeError):
    """A bearer token that is malformed, unknown, expired or revoked: a 401 saying which."""

    status = 401


@dataclass(frozen=True)
class TokenInfo:
    """A token as its owner sees it: never the secret."""

    token_id: str
    username: str
    name: str
    scope: Scope
    created_at: int  # ms since the epoch, as MLflow keeps times
    expires_at: int | None
    revoked_at: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IssuedToken:
    """A new token: ``token`` is shown once and kept nowhere."""

    token: str
    info: TokenInfo


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str]:
    """The id and secret of ``fst_<id>_<secret>``; :class:`TokenRefused` if it is not one."""
    if not token.startswith(PREFIX):
        raise TokenRefused("the bearer token is not a flowscope API token")
    token_id, _, secret = token[len(PREFIX) :].partition("_")
    if not token_id or not secret or not token_id.isalnum() or len(token_id) > 32:
        raise TokenRefused("the bearer token is malformed")
    return token_id, secret


class TokenStore:
    """The tokens table on ``engine`` (created if missing). ``clock`` gives seconds since
    the epoch; tests pass their own to expire tokens without waiting."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        _metadata.create_all(engine, checkfirst=True)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def create(
        self, username: str, name: str, scope: str = "read", expires_in_days: float | None = 90
    ) -> IssuedToken:
        """A new token of ``username``: the string to send, shown this once."""
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise FlowscopeError(f"a token needs a name of 1 to {MAX_NAME} characters")
        if scope not in SCOPES:
            raise FlowscopeError(f"a token's scope is 'read' or 'write', not {scope!r}")
        if expires_in_days is not None and not 0 < expires_in_days <= MAX_DAYS:
            raise FlowscopeError(f"a token expires in 1 to {MAX_DAYS} days (or never)")
        now = self._now_ms()
        expires = None if expires_in_days is None else now + int(expires_in_days * 86_400_000)
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        info = TokenInfo(token_id, username, name, scope, now, expires, None)  # type: ignore[arg-type]
        with self._engine.begin() as conn:
            conn.execute(TOKENS.insert().values(**asdict(info), secret_sha256=_digest(secret)))
        return IssuedToken(f"{PREFIX}{token_id}_{secret}", info)

    def owned_by(self, username: str) -> list[TokenInfo]:
        """``username``'s tokens, newest first, revoked ones included."""
        query = (
            sa.select(*[TOKENS.c[name] for name in TokenInfo.__dataclass_fields__])
            .where(TOKENS.c.username == username)
            .order_by(TOKENS.c.created_at.desc())
        )
        with self._engine.connect() as conn:
            return [TokenInfo(**row._mapping) for row in conn.execute(query)]

    def revoke(self, token_id: str, username: str | None) -> TokenInfo:
        """Revoke a token of ``username`` (any user's when ``None``: an admin)."""
        where = [TOKENS.c.token_id == token_id]
        if username is not None:
            where.append(TOKENS.c.username == username)
        with self._engine.begin() as conn:
            conn.execute(
                TOKENS.update()
                .where(*where, TOKENS.c.revoked_at.is_(None))
                .values(revoked_at=self._now_ms())
            )
            row = conn.execute(sa.select(TOKENS).where(*where)).first()
        if row is None:
            raise NotFoundError(f"no token {token_id!r}")
        fields = {name: row._mapping[name] for name in TokenInfo.__dataclass_fields__}
        return TokenInfo(**fields)

    def verify(self, token: str) -> TokenInfo:
        """The token's owner and scope; :class:`TokenRefused` naming why not."""
        token_id, secret = split_token(token)
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(TOKENS).where(TOKENS.c.token_id == token_id)).first()
        # the digest is compared even for an unknown id, so timing tells nothing
        stored = row._mapping["secret_sha256"] if row is not None else "0" * 64
        if not hmac.compare_digest(stored, _digest(secret)) or row is None:
            raise TokenRefused("the API token is not valid")
        info = TokenInfo(**{name: row._mapping[name] for name in TokenInfo.__dataclass_fields__})
        check_usable(info, self._now_ms())
        return info


def check_usable(info: TokenInfo, now_ms: int) -> None:
    """:class:`TokenRefused` when ``info`` was revoked or has expired by ``now_ms``."""
    if info.revoked_at is not None:
        raise TokenRefused("the API token was revoked")
    if info.expires_at is not None and now_ms >= info.expires_at:
        raise TokenRefused("the API token has expired")
