"""The parts of auth one process needs, opened once from its settings: MLflow's user
store, the token table beside it, the session signer, and the authenticator over them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowscope.config import Settings
from flowscope.errors import ConfigError
from flowscope.server.auth.access import Access
from flowscope.server.auth.identity import Authenticator, Identity
from flowscope.server.auth.sessions import Sessions
from flowscope.server.auth.tokens import TokenStore


@dataclass
class AuthServices:
    users: Any  # mlflow.server.auth.sqlalchemy_store.SqlAlchemyStore
    tokens: TokenStore
    sessions: Sessions
    authenticator: Authenticator
    default_permission: str
    secure_cookies: bool = False

    def access(self, identity: Identity | None) -> Access:
        return Access(identity, self.users, self.default_permission)


def auth_database_uri(settings: Settings) -> str:
    """Where the users live: ``auth_database_uri``, else the tracking database."""
    if settings.auth_database_uri:
        return settings.auth_database_uri
    if not settings.is_database:
        raise ConfigError(
            "auth needs a database for its users: set auth_database_uri "
            "(FLOWSCOPE_AUTH_DATABASE_URI) when the tracking URI is a server"
        )
    return settings.tracking_uri


def open_auth(settings: Settings) -> AuthServices | None:
    """The auth services of ``settings``, or ``None`` when auth is off. MLflow's auth
    tables are created (or migrated) on first use, as MLflow's basic-auth app does."""
    if not settings.auth:
        return None
    if settings.secret_key is None:
        raise ConfigError("auth needs secret_key (FLOWSCOPE_SECRET_KEY) to sign browser sessions")
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    users = SqlAlchemyStore()
    users.init_db(auth_database_uri(settings))
    tokens = TokenStore(users.engine)
    sessions = Sessions(settings.secret_key.get_secret_value(), settings.session_hours)
    return AuthServices(
        users=users,
        tokens=tokens,
        sessions=sessions,
        authenticator=Authenticator(users, tokens, sessions, settings.token_cache_seconds),
        default_permission=settings.default_permission,
    )
