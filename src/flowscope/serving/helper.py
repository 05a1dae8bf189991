"""The helper process that writes the inference monitor's windows (``monitor_process``).

Writing a window (summarising it, writing its parquet into the journal, delivering the
run) costs about a microsecond of CPU per prediction, most of it holding the GIL. In the
serving process that is taken from answering requests, and the event loop waits whenever
the writer holds the GIL. :class:`HelperSink` moves all of it to a helper process: the
server only sends the window's arrays down a pipe (:mod:`~._pipe`), and the helper writes
the run on the machine's other core.

Nothing is lost if the helper dies. The server keeps every window until the helper says
the window is in the journal; then the journal owns it. A dead helper is started again
and sent what it had not acknowledged, which :class:`~.writers.RunWriter` completes or
skips rather than writing it twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from flowscope.serving._pipe import forget, receive_message, send_message
from flowscope.serving.packing import merge, pack
from flowscope.serving.window import bare, holding
from flowscope.serving.writers import Done, RunWriter

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from flowscope.config import Settings
    from flowscope.serving.window import WindowJob

logger = logging.getLogger(__name__)

# Sends of one window to fresh helpers, after which it is given up (and logged): a window
# that kills every helper it meets must not stop monitoring for good.
_MAX_SENDS = 3
# The helper's scheduling priority below the server's: its work can always wait a little.
_NICENESS = 10


class HelperSink:
    """Sends windows to a helper process that writes them (``monitor_process = true``).

    Every call comes from the monitor's thread, so nothing here needs a lock. A reader
    thread takes the helper's answers off the pipe as they come (so the helper never
    waits to answer while the server waits to send), and :meth:`poll`, which the monitor
    calls as it loops, acts on them."""

    def __init__(self, settings: Settings, done: Done) -> None:
        self.settings = settings
        self.done = done
        # id -> (window, times sent, its spill file while the helper has not read it)
        self._pending: dict[str, tuple[WindowJob, int, str | None]] = {}
        self._stats: dict[str, float] = {}
        self._offset = {"runs_written": 0.0, "runs_failed": 0.0}  # from helpers before
        self.restarts = 0
        self.ready = False  # the helper has imported what it needs and opened the store
        self._process: Any = None
        self._conn: Connection | None = None
        self._answers: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._unsent: list[str] = []  # windows whose handing over failed, to try again
        self._start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a threaded server
        ours, theirs = context.Pipe()
        self._process = context.Process(
            target=helper_main,
            args=(theirs, self.settings),
            name="flowscope-monitor-helper",
            daemon=True,
        )
        self._process.start()
        theirs.close()
        self._conn = ours
        self._answers = queue.Queue()
        threading.Thread(
            target=_read_answers,
            args=(ours, self._answers),
            name="flowscope-monitor-answers",
            daemon=True,
        ).start()
        for job, _, _ in list(self._pending.values()):  # what a helper before it left
            self._send(job)
        # then orphaned journals: those of the windows sent again are taken over by now
        self._message(("recover", None))

    def submit(self, job: WindowJob) -> None:
        self._pending[job.id] = (job, 0, None)
        self._send(job)

    def _send(self, job: WindowJob) -> None:
        window, sends, spill = self._pending[job.id]
        forget(spill)  # a dead helper's: it may not have read it
        if sends >= _MAX_SENDS:
            del self._pending[job.id]
            self._offset["runs_failed"] += len(job.groups)
            logger.error(
                "flowscope: the monitor's helper died %d times writing window %s; its %d "
                "predictions are not recorded",
                sends,
                job.id,
                job.rows,
            )
            self.done(job.rows)
            return
        try:
            # the packed parts as they are: the helper, not the server, puts them together
            parts = [
                (bare(group), [*group.packed, pack(group.model, group.observations)])
                for group in job.groups
            ]
        except Exception:  # never expected; but a window must not stay pending for good
            logger.exception("flowscope: could not pack inference window %s", job.id)
            del self._pending[job.id]
            self._offset["runs_failed"] += len(job.groups)
            self.done(job.rows)
            return
        message = ("write", (dataclasses.replace(job, groups=[], resent=sends > 0), parts))
        sent, spill = self._message(message)
        self._pending[job.id] = (window, sends + 1, spill)
        if not sent and self._process.is_alive():  # e.g. no room for the spill file
            self._unsent.append(job.id)

    def _message(self, message: tuple[str, Any]) -> tuple[bool, str | None]:
        """Send ``message``; (whether it went, its spill file). A helper that is gone is
        replaced by poll(); any other failure is logged, and the window tried again."""
        try:
            assert self._conn is not None
            return True, send_message(self._conn, message)
        except (OSError, ValueError) as exc:
            if self._process.is_alive():
                logger.warning("flowscope: could not hand a window to the helper: %s", exc)
            return False, None

    def poll(self, wait: float = 0.0) -> None:
        """Act on the helper's answers; if it died, start another and send it again every
        window not yet acknowledged; try again to hand over what failed to go."""
        self._take_answers(wait)
        if not self._process.is_alive():
            self._restart()
        unsent, self._unsent = self._unsent, []
        for job_id in unsent:
            if job_id in self._pending:
                self._send(self._pending[job_id][0])

    def _take_answers(self, wait: float = 0.0) -> bool:
        """Act on the answers read so far, waiting up to ``wait`` seconds for a first one;
        False once the helper's end of the pipe is closed."""
        try:
            answer = self._answers.get(timeout=wait) if wait > 0 else self._answers.get_nowait()
            while True:
                if answer is None:
                    return False
                self._answer(answer)
                answer = self._answers.get_nowait()
        except queue.Empty:
            return True

    def _answer(self, message: tuple[Any, ...]) -> None:
        kind, *rest = message
        if kind == "done":
            job_id, stats = rest
            entry = self._pending.pop(job_id, None)
            self._stats = stats
            if entry is not None:
                self.done(entry[0].rows)
        elif kind == "closed":
            (self._stats,) = rest
        elif kind == "ready":
            self.ready = True

    def _restart(self) -> None:
        code = self._process.exitcode
        for key in self._offset:
            self._offset[key] += self._stats.get(key, 0)
        self._stats = {}
        self.restarts += 1
        self.ready = False
        logger.warning(
            "flowscope: the monitor's helper process ended (exit code %s); starting another "
            "and sending it the %d windows it had not written",
            code,
            len(self._pending),
        )
        if self._conn is not None:
            self._conn.close()
        self._start()

    def close(self, deadline: float) -> bool:
        """Let the helper write every window and wait for their delivery until
        ``deadline`` (monotonic); False when some runs are left to the journal."""
        while True:
            self._message(("close", max(deadline - time.monotonic(), 0.0)))
            self._drain(max(deadline, time.monotonic()) + 5.0)
            if not self._pending or time.monotonic() >= deadline:
                break
            self._restart()  # it died with windows unwritten: another one writes them
        self._process.join(5.0)
        if self._process.is_alive():
            self._process.kill()
        assert self._conn is not None
        self._conn.close()
        for job, _, spill in self._pending.values():  # not written: said, and let go
            logger.error("flowscope: inference window %s was not written before the end", job.id)
            forget(spill)
            self.done(job.rows)
        return not self._pending and not self._stats.get("runs_undelivered", 0)

    def _drain(self, until: float) -> None:
        """Act on the helper's answers until it is gone (its end of the pipe closes)."""
        while time.monotonic() < until:
            if not self._take_answers(0.1):
                return
            if not self._process.is_alive() and self._answers.empty():
                return

    def stats(self) -> dict[str, float]:
        return {
            "runs_written": self._offset["runs_written"] + self._stats.get("runs_written", 0),
            "runs_failed": self._offset["runs_failed"] + self._stats.get("runs_failed", 0),
            "runs_undelivered": self._stats.get("runs_undelivered", 0),
            "helper_restarts": self.restarts,
            "helper_ready": int(self.ready),
        }


def _read_answers(conn: Connection, answers: queue.Queue[tuple[Any, ...] | None]) -> None:
    """Move the helper's answers from the pipe to ``answers``; None when it closes."""
    try:
        while True:
            answers.put(receive_message(conn))
    except (EOFError, OSError):
        answers.put(None)


def helper_main(conn: Connection, settings: Settings) -> None:
    """The helper: write each window it is sent, say so, and on ``close`` (or when the
    server is gone) write what is left and wait for delivery before it exits.

    Ctrl-C and SIGTERM reach the whole process group; the helper leaves ending to the
    server, which closes it once the server's own last window is sent."""
    from flowscope.tracking.sync import recover_in_background

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(_NICENESS)  # the machine's spare CPU, never the server's
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _warm_up(settings)
    with contextlib.suppress(OSError):
        send_message(conn, ("ready",))
    writer = RunWriter(settings)
    deadline = None
    while deadline is None:
        try:
            kind, value = receive_message(conn)
        except (EOFError, OSError):  # the server is gone: finish what was sent
            deadline = time.monotonic() + settings.flush_timeout
            break
        if kind == "close":
            deadline = time.monotonic() + max(float(value), 0.0)
            break
        if kind == "recover":  # journals left undelivered by processes that are gone
            try:
                recover_in_background(settings)
            except Exception as exc:  # a journal that vanished while listed, say
                logger.warning("flowscope: looking for undelivered journals failed: %s", exc)
            continue
        job, parts = value
        job.groups = [holding(group, merge(windows)) for group, windows in parts]
        writer.write(job)
        try:
            send_message(conn, ("done", job.id, writer.stats()))
        except OSError:
            deadline = time.monotonic() + settings.flush_timeout
    writer.wait(deadline)
    with contextlib.suppress(OSError):
        send_message(conn, ("closed", writer.stats()))


def _warm_up(settings: Settings) -> None:
    """Import what writing a run needs and open the store now, while the server starts,
    not when the first window arrives under load."""
    import pyarrow.parquet  # noqa: F401

    import flowscope.serving.summary
    import flowscope.tracking.delivery  # noqa: F401
    from flowscope.tracking.store import StoreAccess

    try:
        StoreAccess(settings).store  # noqa: B018
    except Exception as exc:  # a store away now is retried by each run's writer
        logger.debug("flowscope: the store is not reachable yet: %s", exc)
