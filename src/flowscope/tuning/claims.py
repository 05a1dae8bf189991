"""Atomic decisions shared by every worker of a study, kept in the study's own storage.

Which parent run a study has must be decided once for all its workers, whichever process
gets there first. Optuna's ``set_user_attr`` is a plain upsert (the last writer wins), so it
cannot decide it. In an RDB storage the claim is an INSERT into Optuna's own
``study_user_attributes`` table under its unique (study_id, key) constraint: on PostgreSQL
a second concurrent INSERT waits on the index entry until the first commits, then fails
with a unique violation; SQLite takes one write lock at a time, so the second INSERT sees
the first row and fails the same way. Either way every worker then reads the one value
that won, and no worker ever saw itself win and then lose.

Storages that live in one process (in memory) decide under a lock; a journal file storage
shared by processes is decided by its last writer, which is why workers on many machines
use an RDB storage.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

# Storages without transactions are used from one process: a lock there is enough.
_IN_PROCESS = threading.Lock()
_TABLE = "study_user_attributes"


def claim(study: optuna.Study, key: str, value: Any) -> Any:
    """Set the user attribute ``key`` of ``study`` to ``value`` unless some worker set it
    first; return the value that holds."""
    rdb = rdb_backend(study)
    if rdb is None:
        with _IN_PROCESS:
            current = study._storage.get_study_user_attrs(study._study_id)
            if key in current:
                return current[key]
            study._storage.set_study_user_attr(study._study_id, key, value)
            return value
    import sqlalchemy as sa

    table = attributes_table()
    with rdb.engine.connect() as connection:
        try:
            with connection.begin():
                connection.execute(
                    table.insert().values(
                        study_id=study._study_id, key=key, value_json=json.dumps(value)
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another worker claimed it first
        stored = connection.execute(select_value(table, study._study_id, key)).scalar_one()
    return json.loads(stored)


def rdb_backend(study: optuna.Study) -> Any:
    from optuna.storages import RDBStorage

    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # Optuna caches an RDB storage
    return backend if isinstance(backend, RDBStorage) else None


def attributes_table() -> Any:
    import sqlalchemy as sa

    # Optuna's own table, named through SQLAlchemy Core so that "key" is quoted where it
    # is a reserved word.
    return sa.table(_TABLE, sa.column("study_id"), sa.column("key"), sa.column("value_json"))


def select_value(table: Any, study_id: int, key: str) -> Any:
    import sqlalchemy as sa

    return (
        sa.select(table.c.value_json).where(table.c.study_id == study_id).where(table.c.key == key)
    )
