"""Opening the MLflow store: the one place a new store is created.

Every part of flowscope (the SDK's writer, the dashboard, the prediction service, the
registry, the CLI) opens the store through :func:`ensure_store`, :func:`mlflow_client` or
:func:`sql_store`, so a new store is created once, under a lock, whole or not at all, and
every other reader opens an existing, complete one. MLflow left to itself runs its migrations
on a new SQLite file in place: a process killed meanwhile, or a second one opening the same
file, leaves a half-migrated store that every later open fails on.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.config import DATABASE_SCHEMES, Settings

if TYPE_CHECKING:
    from mlflow.store.tracking.abstract_store import AbstractStore

# Test-only fault injection. When this variable names a FIFO, creating a new SQLite store
# stops in the middle of MLflow's migrations, writes its process id to that FIFO and blocks
# until a line arrives on the FIFO of the same name plus ".release" (at most ten minutes, a
# safety net should the test be gone), so that a test can kill the process, or open the
# store from another one, at exactly that point instead of sleeping and hoping. The test
# makes both FIFOs (tests/tracking/workers.py). It is an environment variable read only
# there, not a setting: no user has a reason to set it, a setting would be documented in the
# README and accepted from flowscope.yaml, and an unset variable costs one lookup per store
# created.
TEST_HOLD_CREATION_ENV = "_FLOWSCOPE_TEST_HOLD_STORE_CREATION"
_HOLD_LIMIT = 600.0


def ensure_store(settings: Settings) -> None:
    """Make sure the stores ``settings`` names exist, creating a new one whole.

    Call it before anything opens the store with MLflow's own code (``MlflowClient``, a
    SQLAlchemy engine): MLflow would otherwise run its migrations on a new SQLite file in
    place, and a process killed meanwhile, or a second one opening the same file, would leave
    a half-migrated store that every later open fails on. An existing SQLite store costs one
    ``stat``; a tracking server and a file store need nothing.

        ensure_store(settings)
        engine = sqlalchemy.create_engine(settings.tracking_uri)  # a complete store
    """
    artifact_root = settings.default_artifact_root
    for uri in {settings.tracking_uri, settings.registry_uri or settings.tracking_uri}:
        database = _sqlite_file(uri)
        if database is not None:
            _create_if_new(database, artifact_root)
        elif uri.split(":", 1)[0].split("+")[0] in DATABASE_SCHEMES:
            sql_store(uri, artifact_root)  # MLflow creates a server database's tables


@lru_cache(maxsize=8)
def sql_store(uri: str, artifact_root: str) -> AbstractStore:
    """MLflow's SQL store on ``uri`` (one per process), a new SQLite file created whole
    first. Other databases run each migration in a transaction and MLflow locks their
    creation itself."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    database = _sqlite_file(uri)
    if database is not None:
        _create_if_new(database, artifact_root)
    return SqlAlchemyStore(uri, artifact_root)


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:///:memory:"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def _is_created(database: Path) -> bool:
    """Whether the SQLite store is there. It only ever appears whole (linked in by
    :func:`_create_sqlite_store`), so a file with content is a complete store."""
    try:
        return database.stat().st_size > 0
    except FileNotFoundError:
        return False


def _create_if_new(database: Path, artifact_root: str) -> None:
    if not _is_created(database):
        with _initialisation_lock(database):
            _create_sqlite_store(database, artifact_root)


@contextmanager
def _initialisation_lock(database: Path) -> Iterator[None]:
    """Serialise the creation of one SQLite file across processes.

    Opening a new SQLite store creates its tables with Alembic migrations; two processes
    doing so at once collide on Alembic's temporary tables and leave the file unusable.
    Other databases lock their own DDL, so only SQLite needs this.
    """
    database.parent.mkdir(parents=True, exist_ok=True)
    lock = database.with_name(database.name + ".flowscope-lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _create_sqlite_store(database: Path, artifact_root: str) -> None:
    """Create a new SQLite store whole or not at all (the initialisation lock is held).

    MLflow creates its tables by running dozens of migrations, and SQLite commits each
    schema change as it goes: a process killed meanwhile (a training script stopped in its
    first seconds) would leave a file that every later open fails on ("table ... already
    exists"). So the tables are made in a file beside it, which is then linked into place.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for leftover in database.parent.glob(f".{database.name}.*.creating*"):
        leftover.unlink(missing_ok=True)  # killed while creating: only we may create now
    if _is_created(database):
        return
    draft = database.with_name(f".{database.name}.{os.getpid()}.creating")
    try:
        with _held_mid_migrations_for_tests(draft):
            SqlAlchemyStore(f"sqlite:///{draft}", artifact_root).engine.dispose()
        try:
            os.link(draft, database)  # never over a store that appeared meanwhile
        except FileExistsError:
            if database.stat().st_size == 0:  # an empty file that SQLite opened: no store yet
                os.replace(draft, database)
    finally:
        draft.unlink(missing_ok=True)


@contextmanager
def _held_mid_migrations_for_tests(draft: Path) -> Iterator[None]:
    """Stop the migrations of ``draft`` after their first step when a test asks for it
    (:data:`TEST_HOLD_CREATION_ENV`); nothing at all otherwise."""
    marker = os.environ.get(TEST_HOLD_CREATION_ENV)
    if not marker:
        yield
        return
    import sqlalchemy as sa

    held = False

    def hold(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal held
        # Alembic records each applied migration: the first record means the first one is
        # in and the rest are to come
        if held or conn.engine.url.database != str(draft) or "alembic_version" not in statement:
            return
        if not statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            return
        held = True
        _tell_and_wait(marker)

    sa.event.listen(sa.engine.Engine, "after_cursor_execute", hold)
    try:
        yield
    finally:
        sa.event.remove(sa.engine.Engine, "after_cursor_execute", hold)


def _tell_and_wait(marker: str) -> None:
    """Write this process's id to the FIFO ``marker`` and block until the test writes a
    line to ``marker.release`` (or closes it), at most :data:`_HOLD_LIMIT` seconds."""
    import select

    # the release end first: once told, the test can always write to it
    release = os.open(f"{marker}.release", os.O_RDONLY | os.O_NONBLOCK)
    try:
        # read-write, which on Linux never blocks (fifo(7)) even before the test opens its
        # end: the line waits in the FIFO, kept open until the release, for the test to read
        told = os.open(marker, os.O_RDWR)
        try:
            os.write(told, f"{os.getpid()}\n".encode())
            select.select([release], [], [], _HOLD_LIMIT)
        finally:
            os.close(told)
    finally:
        os.close(release)
