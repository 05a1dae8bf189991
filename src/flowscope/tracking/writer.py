"""The background writer: follows a run's journal and delivers it while the run goes on."""

from __future__ import annotations

import logging
import threading

from flowscope._retry import Backoff
from flowscope.tracking.delivery import Delivery, DeliveryStalled
from flowscope.tracking.journal import Journal
from flowscope.tracking.store import StoreAccess

logger = logging.getLogger(__name__)

_IDLE_WAIT = 0.5
_FIRST_BACKOFF = 0.1


class Follower:
    """What a run sees of whoever delivers its journal: how far it is, and waiting for it."""

    journal: Journal
    delivery: Delivery
    finished: threading.Event  # every record, the end included, is delivered
    # every record appended so far is delivered (cleared by each append, set by delivery)
    caught_up: threading.Event

    def wait(self, timeout: float) -> bool:
        """Wait until everything is delivered; False if ``timeout`` ran out first."""
        return self.finished.wait(timeout)

    def wait_caught_up(self, timeout: float) -> bool:
        """Wait until the records appended so far are delivered, the run going on."""
        return self.caught_up.wait(timeout)

    def _follow(self) -> None:
        """Set up the events (called by each deliverer's constructor)."""
        self.finished = threading.Event()
        self.caught_up = threading.Event()
        self.failing = threading.Event()  # set while delivery attempts fail
        self._last_error: str | None = None
        self._progress_lock = threading.Lock()

    @property
    def last_error(self) -> str | None:
        """Why the last delivery attempt failed, while attempts fail; else None."""
        return self._last_error

    @last_error.setter
    def last_error(self, error: str | None) -> None:
        self._last_error = error
        if error is None:
            self.failing.clear()
        else:
            self.failing.set()

    def wait_failing(self, timeout: float) -> bool:
        """Wait until a delivery attempt has failed (the store away); False if ``timeout``
        ran out first. A test's explicit moment for "the outage has been met"."""
        return self.failing.wait(timeout)

    def _appended(self) -> None:
        with self._progress_lock:  # after the record's append: a later check sees it
            self.caught_up.clear()

    def _note_progress(self) -> None:
        with self._progress_lock:
            if self.pending_bytes() == 0:
                self.caught_up.set()

    def pending_bytes(self) -> int:
        try:
            return max(self.journal.size() - self.delivery.state.offset, 0)
        except OSError:
            return 0


class Writer(Follower):
    """Delivers one journal in a daemon thread, retrying with backoff while the store is away.

    The thread never raises into the training process: a failure is one warning when it
    starts and one line when delivery resumes.
    """

    def __init__(self, journal: Journal, access: StoreAccess, *, max_backoff: float) -> None:
        self.journal = journal
        self.delivery = Delivery(journal, access, live=True)
        self.max_backoff = max_backoff
        self.created = threading.Event()  # the run exists, or a first attempt failed
        self._follow()
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"flowscope-writer-{journal.local_id[:8]}", daemon=True
        )
        self._thread.start()

    def notify(self, *, final: bool = False) -> None:
        """Tell the writer a record was appended (``final``: the run's end)."""
        self._appended()
        self._wake.set()

    def _loop(self) -> None:
        backoff = Backoff(_FIRST_BACKOFF, self.max_backoff)
        failing = False
        while True:
            self._wake.clear()
            try:
                delivered = self.delivery.step(complete=False)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.created.set()
                if not failing and not isinstance(exc, DeliveryStalled):
                    logger.warning(
                        "flowscope: delivery to the tracking store failed (%s); training goes "
                        "on, records are kept in %s and delivery is retried",
                        _short(exc),
                        self.journal.path,
                    )
                failing = True
                backoff.pause()
                continue
            if self.delivery.run_id is not None:
                self.created.set()
            if failing and delivered:
                logger.warning("flowscope: delivery to the tracking store resumed")
                failing = False
                self.last_error = None
            backoff.reset()
            if self.delivery.finished:
                self.journal.remove()
                self.caught_up.set()
                self.finished.set()
                return
            self._note_progress()
            if not delivered:
                self._wake.wait(_IDLE_WAIT)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
