"""Writing to runs another process started, still through the journal.

A study's parent run is created by one worker, yet every worker that finishes writes the
study's summary on it; a killed worker's trial run is ended FAILED by the worker that finds
the trial stale. Both go through a journal like any other record, so an unreachable
tracking store delays them but loses nothing:

- :func:`attach_run` opens a new journal for a run that already exists: the journal's
  state says the run is created, so its writer starts with the first record after the
  header;
- :func:`adopt_journal` takes over the journal a dead process left on this machine and
  goes on writing in it, after the records it already holds.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowscope.config import Settings
    from flowscope.tracking.run import Run

logger = logging.getLogger(__name__)


def attach_run(settings: Settings, task: str, kind: str, run_id: str) -> Run:
    """A :class:`Run` whose records go to the existing run ``run_id``."""
    from flowscope.tracking.journal import DeliveryState, Journal
    from flowscope.tracking.run import Run
    from flowscope.tracking.store import StoreAccess
    from flowscope.tracking.writer import Writer

    local_id = uuid.uuid4().hex
    header: dict[str, Any] = {
        "op": "run",
        "experiment": settings.experiment_name(task, kind),
        "run_name": None,
        "tags": {},
        "t": 0,
        "attached_to": run_id,
    }
    journal = Journal.create(settings.journal_dir, local_id, header)
    journal.save_state(DeliveryState(run_id=run_id, offset=journal.size()))
    writer = Writer(journal, StoreAccess(settings), max_backoff=settings.max_backoff)
    return Run(
        task=task, kind=kind, local_id=local_id, settings=settings, journal=journal, writer=writer
    )


def adopt_journal(settings: Settings, task: str, kind: str, local_id: str) -> Run | None:
    """The run of the journal ``local_id`` if it is on this machine and its process is dead,
    ready for more records (or ended, if the journal holds its end); None otherwise
    (delivered already, elsewhere, or alive)."""
    from flowscope.tracking.journal import SUFFIX, Journal
    from flowscope.tracking.run import Run
    from flowscope.tracking.store import StoreAccess
    from flowscope.tracking.writer import Writer

    journal = Journal.claim(settings.journal_dir / f"{local_id}{SUFFIX}")
    if journal is None:
        return None
    records = list(journal.read(0, complete=True))
    os.truncate(journal.path, records[-1][0] if records else 0)  # a torn last line goes
    writer = Writer(journal, StoreAccess(settings), max_backoff=settings.max_backoff)
    run = Run(
        task=task, kind=kind, local_id=local_id, settings=settings, journal=journal, writer=writer
    )
    # a journal that holds its run's end gives an ended run: delivering it is all that is left
    run._ended = bool(records) and records[-1][1].get("op") == "end"
    # artifacts written now go to fresh places, past those the records already name
    stashed = journal.files_dir
    taken = [int(p.name) for p in stashed.iterdir() if p.name.isdigit()] if stashed.is_dir() else []
    run._stash_index = max(taken, default=0)
    return run


def find_run_id(settings: Settings, task: str, kind: str, local_id: str) -> str | None:
    """The MLflow run id of the run whose journal was ``local_id``, if the store has it."""
    from flowscope.tracking.store import StoreAccess

    access = StoreAccess(settings)
    try:
        experiment_id = access.experiment_id(settings.experiment_name(task, kind))
        found: Any = access.find_run(experiment_id, local_id)
    except Exception as exc:  # an unreachable store: the caller goes on without
        logger.warning("flowscope: cannot look up run %s: %s", local_id, exc)
        return None
    return None if found is None else str(found.info.run_id)


def wait_delivered(runs: list[Run], timeout: float) -> bool:
    """Wait, ``timeout`` seconds in all, until the ended ``runs`` are in the store."""
    import time

    deadline = time.monotonic() + timeout
    delivered = True
    for run in runs:
        writer = run._writer  # the SDK waits for one run at its end; a study ends many
        if writer is not None and not writer.wait(max(deadline - time.monotonic(), 0.0)):
            delivered = False
    return delivered
