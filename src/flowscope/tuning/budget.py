"""A study's total number of trials, shared exactly by every worker of every process.

Optuna's ``MaxTrialsCallback`` stops a worker after a trial ends, so workers running in
parallel overshoot the total by up to one trial each. Here the decision is taken where a
trial is created: every worker's ``study.ask`` counts the study's trials and creates one
only below the total, while holding a lock that all workers share, so counting and
creating are one step. The lock dies with its holder, so a worker killed in between never
leaves the others locked out, and the count is the trials that exist: nothing is lost.

- PostgreSQL (and other RDBs): a row lock (``SELECT ... FOR UPDATE``) on an attribute of
  the study; the server releases it when a killed worker's connection drops.
- SQLite: an ``flock`` on a file beside the database (a SQLite lock held across Optuna's
  own write would deadlock it); SQLite is shared only by processes of one machine.
- Storages in memory: a lock of the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.tuning.claims import attributes_table, claim, rdb_backend, select_value
from flowscope.tuning.storage import sqlite_file

if TYPE_CHECKING:
    import optuna

GATE_ATTR = "flowscope.trial_gate"


class BudgetSpent(Exception):
    """The study has all its trials: the worker that asked for one more stops."""


class TrialBudget:
    """Lets ``study.ask`` create a trial only while the study has fewer than ``total``."""

    def __init__(self, study: optuna.Study, total: int) -> None:
        self.study = study
        self.total = total
        self._thread_lock = threading.Lock()
        self._gate_ready = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Route ``study.ask`` (which ``study.optimize`` calls for every trial) through the
        budget while the block runs."""
        original = self.study.ask

        def ask(*args: Any, **kwargs: Any) -> Any:
            return self.ask(original, *args, **kwargs)

        self.study.ask = ask  # type: ignore[method-assign]
        try:
            yield
        finally:
            del self.study.ask

    def ask(self, original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._locked() as count:
            if count() >= self.total:
                raise BudgetSpent(f"study {self.study.study_name} has its {self.total} trials")
            return original(*args, **kwargs)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Callable[[], int]]:
        # threads of this process queue here first: one database lock per process at a time
        with self._thread_lock:
            rdb = rdb_backend(self.study)
            if rdb is None:
                yield lambda: len(self.study.get_trials(deepcopy=False))
                return
            database = sqlite_file(rdb.url)
            if database is not None:
                with _file_lock(database.with_name(database.name + ".flowscope-trials")):
                    yield lambda: _count_in(rdb, self.study._study_id)
                return
            if rdb.url.startswith("sqlite"):  # in memory: this process is the only one
                yield lambda: _count_in(rdb, self.study._study_id)
                return
            yield from self._row_locked(rdb)

    def _row_locked(self, rdb: Any) -> Iterator[Callable[[], int]]:
        study_id = self.study._study_id
        if not self._gate_ready:  # the row every worker locks: inserted once per study
            claim(self.study, GATE_ATTR, 0)
            self._gate_ready = True
        with rdb.engine.connect() as connection, connection.begin():
            connection.execute(
                select_value(attributes_table(), study_id, GATE_ATTR).with_for_update()
            ).scalar_one()
            yield lambda: _count_trials(connection, study_id)


def _count_trials(connection: Any, study_id: int) -> int:
    import sqlalchemy as sa

    trials = sa.table("trials", sa.column("study_id"))
    query = sa.select(sa.func.count()).select_from(trials).where(trials.c.study_id == study_id)
    return int(connection.execute(query).scalar_one())


def _count_in(rdb: Any, study_id: int) -> int:
    with rdb.engine.connect() as connection:
        return _count_trials(connection, study_id)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
