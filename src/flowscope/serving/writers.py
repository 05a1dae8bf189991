"""Where the inference monitor's windows become runs: :class:`RunWriter` writes each
window as inference runs into the journal, in the monitor's thread (:class:`ThreadSink`,
``monitor_process = false``) or in a helper process (:mod:`~.helper`, the default).

A window that a dead helper had already journaled, or even delivered, is recognised when
it is sent again: each window is written under a journal named by its id and tagged with
it, so that it is completed or skipped, never written twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from flowscope.serving.inference_run import WINDOW_TAG, write_inference_run

if TYPE_CHECKING:
    from flowscope.config import Settings
    from flowscope.serving.window import WindowJob
    from flowscope.tracking.journal import Journal
    from flowscope.tracking.run import Run

logger = logging.getLogger(__name__)

# Runs delivering at once before a new window waits (at most _ROOM_WAIT seconds) for one.
_IN_FLIGHT = 8
_ROOM_WAIT = 10.0
# Seconds a resent window waits for another process to let go of the journal a dead
# helper left, before the window is written again.
_LOCK_WAIT = 60.0

Done = Callable[[int], None]  # told the rows of each window that is written or given up


class RunWriter:
    """Writes windows as inference runs into the journal; each run's writer thread then
    delivers it, and :meth:`wait` bounds how long the end waits for delivery."""

    def __init__(self, settings: Settings) -> None:
        # Inference runs must not hold up the monitor: no environment capture, no journal
        # recovery per run, no wait for the run to be created (the writer creates it).
        self.settings = settings.model_copy(
            update={"autolog": False, "sync_on_start": False, "start_timeout": 0.0}
        )
        self._runs: list[Run] = []
        self.written = 0
        self.failed = 0

    def write(self, job: WindowJob) -> None:
        """Write each model version's run of ``job``; a failure is logged and counted.

        A ``resent`` window may have been written, wholly or in part, by a helper that
        died before saying so: a journal it left is taken over and completed, and a run
        already delivered to the store is not written again."""
        self._make_room()
        for index, group in enumerate(job.groups):
            local_id = job.id if index == 0 else f"{job.id}-{index}"
            try:
                earlier = None
                if job.resent:
                    earlier = _earlier_attempt(self.settings, local_id, group.model.task)
                    if earlier == "stored":
                        continue
                resume = earlier if not isinstance(earlier, str) else None
                run = write_inference_run(self.settings, group, job, local_id, resume)
                run.end(timeout=0.0)  # the end is journaled; its writer delivers it
            except Exception:  # a monitor must never take the service down
                self.failed += 1
                logger.exception("flowscope: could not write an inference run")
                continue
            self._runs.append(run)
            self.written += 1
        self.prune()

    def prune(self) -> None:
        """Forget the runs that are delivered (``end`` of an ended run only reports)."""
        self._runs = [run for run in self._runs if not run.end()]

    def _make_room(self) -> None:
        """Wait a little while ``_IN_FLIGHT`` runs are being delivered without trouble: a
        burst of windows (one per request, say) would otherwise open a connection each and
        exhaust the store's pool. Runs whose store is away do not count: a window is
        always journaled, whatever the store does."""
        deadline = time.monotonic() + _ROOM_WAIT
        self.prune()
        while time.monotonic() < deadline:
            healthy = sum(1 for run in self._runs if run.delivery_error is None)
            if healthy < _IN_FLIGHT:
                return
            time.sleep(0.01)
            self.prune()

    def wait(self, deadline: float) -> bool:
        """Wait until every run is delivered or ``deadline`` (monotonic) passes."""
        self.prune()
        while self._runs and time.monotonic() < deadline:
            time.sleep(0.05)
            self.prune()
        return not self._runs

    def stats(self) -> dict[str, float]:
        return {
            "runs_written": self.written,
            "runs_failed": self.failed,
            "runs_undelivered": len(self._runs),
        }


def _earlier_attempt(settings: Settings, local_id: str, task: str) -> Journal | str | None:
    """What a helper that died left of run ``local_id``: its journal, taken over (to be
    completed), ``"stored"`` if the run is already delivered, or None if nothing."""
    from flowscope.tracking.journal import SUFFIX, Journal

    (settings.journal_dir / f".{local_id}.new").unlink(missing_ok=True)  # died creating it
    path = settings.journal_dir / f"{local_id}{SUFFIX}"
    # a living process may hold it (`flowscope sync`, say): wait until it lets go, and
    # then it is either delivered (and gone) or ours to take over
    deadline = time.monotonic() + _LOCK_WAIT
    while path.exists() and time.monotonic() < deadline:
        journal = Journal.claim(path)
        if journal is not None:
            return journal
        time.sleep(0.2)
    return "stored" if _stored(settings, local_id, task) else None


def _stored(settings: Settings, local_id: str, task: str) -> bool:
    """Whether the store holds the run of journal ``local_id``. A store that cannot say
    means no: a window written twice is better than a window lost."""
    from flowscope.tracking.store import StoreAccess

    try:
        client = StoreAccess(settings).client
        experiment = client.get_experiment_by_name(settings.experiment_name(task, "inference"))
        if experiment is None:
            return False
        found = client.search_runs(
            [experiment.experiment_id], f"tags.`{WINDOW_TAG}` = '{local_id}'", max_results=1
        )
        if found and found[0].info.status != "FINISHED":
            # what a dead writer had journaled, delivered by someone else as it was: the
            # window is written again, whole, and the partial run set aside
            logger.warning(
                "flowscope: run %s holds part of an inference window; it is deleted and the "
                "window written again",
                found[0].info.run_id,
            )
            client.delete_run(found[0].info.run_id)
            return False
    except Exception as exc:
        logger.warning("flowscope: could not check whether run %s is stored: %s", local_id, exc)
        return False
    return bool(found)


class ThreadSink:
    """Writes windows in the monitor's own thread (``monitor_process = false``)."""

    restarts = 0

    def __init__(self, settings: Settings, done: Done) -> None:
        self.writer = RunWriter(settings)
        self.done = done

    def submit(self, job: WindowJob) -> None:
        try:
            self.writer.write(job)
        finally:
            self.done(job.rows)

    def poll(self) -> None:
        self.writer.prune()

    def close(self, deadline: float) -> bool:
        return self.writer.wait(deadline)

    def stats(self) -> dict[str, float]:
        return {**self.writer.stats(), "helper_restarts": 0, "helper_ready": 1}
