"""Optuna's study storage: SQLite beside the tracking store by default, any RDB URL when
workers on many machines share a study, with heartbeats so a killed worker's trial fails.

SQLite is shared by several processes without "database is locked": the file is switched to
write-ahead logging once (readers no longer block the writer, and the setting stays in the
file), and every connection waits up to a minute for the write lock instead of failing at
once. Python's sqlite3 opens a transaction only before the first write, so Optuna's
read-then-write sessions never hold a read snapshot they would have to upgrade (the case a
busy timeout cannot help).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError
from flowscope.public_reason import public_reason

if TYPE_CHECKING:
    import optuna

    from flowscope.config import Settings

DEFAULT_FILE = "optuna.db"
SQLITE_BUSY_TIMEOUT = 60.0
DEFAULT_HEARTBEAT = 30
_OPEN_ATTEMPTS = 3


def default_storage_url(settings: Settings) -> str:
    """``sqlite:///optuna.db`` beside a SQLite tracking store, else in the working folder."""
    database = sqlite_file(settings.tracking_uri)
    if database is None:
        return f"sqlite:///{DEFAULT_FILE}"
    return f"sqlite:///{database.with_name(DEFAULT_FILE)}"


def display_url(url: str) -> str:
    """``url`` without its password, fit to be logged as a parameter."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url
    return parsed.set(password=None).render_as_string(hide_password=False)


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = DEFAULT_HEARTBEAT,
    grace_period: int | None = None,
    stale_trial_callback: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage at ``url``, with heartbeats every ``heartbeat_interval`` seconds
    (None: off): a trial whose worker stopped beating for ``grace_period`` seconds (default
    twice the interval) is failed by the next worker that starts a trial, and
    ``stale_trial_callback`` is called with it.

    An unreachable database is a :class:`FlowscopeError` naming the URL.
    """
    import warnings

    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    engine_kwargs: dict[str, Any] = {}
    database = sqlite_file(url)
    if database is not None:
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
    elif url.split(":", 1)[0].split("+")[0] in ("postgresql", "postgres"):
        engine_kwargs["pool_pre_ping"] = True
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    last: Exception | None = None
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            with _sqlite_setup(database), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=stale_trial_callback,
                )
            if database is not None:
                _sync_less(storage)
            return storage
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            # Several workers creating Optuna's tables in a new database at once collide
            # (PostgreSQL's catalog, Alembic's version row); the tables exist on a retry.
            last = exc
            time.sleep(0.2 * (attempt + 1))
        except (ImportError, ValueError) as exc:
            raise FlowscopeError(
                "cannot use the study storage: its URL is not one Optuna knows",
                detail=f"{display_url(url)}: {exc}",
            ) from None
    message = str(last).strip().splitlines()[0] if last else "unknown error"
    raise FlowscopeError(
        f"cannot open the study storage: {public_reason(last) if last else message}",
        detail=f"{display_url(url)}: {message[:300]}",
    ) from None


def _sync_less(storage: optuna.storages.RDBStorage) -> None:
    """In WAL mode, sync SQLite to disk at checkpoints rather than at every commit: a
    killed process still loses nothing committed (only a power cut could), and a trial
    reporting every few rounds no longer waits on the disk each time."""
    from sqlalchemy import event

    def on_connect(connection: Any, _: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections opened before the listener are replaced


def sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:///") or url.startswith("sqlite:///:memory:"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


@contextlib.contextmanager
def _sqlite_setup(database: Path | None) -> Iterator[None]:
    """Create and switch a SQLite file to WAL under a file lock: two processes creating
    Optuna's tables in one new file at once would collide on them."""
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    lock = database.with_name(database.name + ".flowscope-lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.closing(sqlite3.connect(database, timeout=SQLITE_BUSY_TIMEOUT)) as db:
            db.execute("PRAGMA journal_mode=WAL")
        yield
    finally:
        os.close(fd)
