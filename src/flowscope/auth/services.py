"""The parts of auth one process needs, opened once from its settings: MLflow's user
store, the token table beside it, the session signer, and the authenticator over them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowscope.auth.access import Access
from flowscope.auth.identity import Authenticator, Identity
from flowscope.auth.sessions import Sessions
from flowscope.auth.tokens import TOKENS, TokenStore
from flowscope.config import Settings
from flowscope.errors import ConfigError

# What a process that only reads the auth store needs to find there: MLflow's auth schema
# (its migrations' version table) with its users; flowscope's tokens are checked beside
USER_TABLES = ("alembic_version_auth", "users")


@dataclass
class AuthServices:
    users: Any  # mlflow.server.auth.sqlalchemy_store.SqlAlchemyStore
    tokens: TokenStore
    authenticator: Authenticator
    default_permission: str
    secure_cookies: bool = False

    @property
    def sessions(self) -> Sessions:
        """The session signer; a :class:`ConfigError` in a process that signs none."""
        if self.authenticator.sessions is None:
            raise ConfigError("this process has no browser sessions")
        return self.authenticator.sessions

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


def open_auth(
    settings: Settings, *, sessions: bool = True, create_tables: bool = True
) -> AuthServices | None:
    """The auth services of ``settings``, or ``None`` when auth is off. MLflow's auth
    tables are created (or migrated) on first use, as MLflow's basic-auth app does.

    The prediction service opens them with neither: it signs no browser sessions (so it
    needs no ``secret_key``) and only reads users, grants and tokens, so it refuses to
    start, with a :class:`ConfigError`, where ``flowscope server --auth`` has not made them.
    """
    if not settings.auth:
        return None
    key = settings.secret_key
    if sessions and key is None:
        raise ConfigError("auth needs secret_key (FLOWSCOPE_SECRET_KEY) to sign browser sessions")
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    database = auth_database_uri(settings)
    if not create_tables:
        check_auth_tables(database)
    users = SqlAlchemyStore()
    users.init_db(database)
    tokens = TokenStore(users.engine)
    signer = None
    if sessions and key is not None:
        signer = Sessions(key.get_secret_value(), settings.session_hours)
    return AuthServices(
        users=users,
        tokens=tokens,
        authenticator=Authenticator(users, tokens, signer, settings.token_cache_seconds),
        default_permission=settings.default_permission,
    )


def check_auth_tables(database: str) -> None:
    """A :class:`ConfigError` unless ``database`` holds MLflow's auth tables and
    flowscope's tokens; nothing is created, not even an empty SQLite file."""
    import sqlalchemy as sa

    url = sa.engine.make_url(database)
    missing = ConfigError(
        "auth is on but the auth database has no users: start `flowscope server --auth` on "
        "it once (it creates the tables and the first admin), or set auth_database_uri "
        "(FLOWSCOPE_AUTH_DATABASE_URI) to the server's"
    )
    if url.get_backend_name() == "sqlite" and not Path(url.database or ":memory:").is_file():
        raise missing  # connecting would create an empty file (or an empty memory database)
    engine = sa.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    except sa.exc.SQLAlchemyError:
        raise ConfigError("auth is on but the auth database cannot be reached") from None
    finally:
        engine.dispose()
    if not {*USER_TABLES, TOKENS.name} <= tables:
        raise missing
