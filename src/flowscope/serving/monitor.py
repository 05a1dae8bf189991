"""The inference monitor: every prediction kept, written as inference runs off the request
path.

The request path only appends an :class:`~.packing.Observation` to the open window in
memory (:mod:`~.window`; a lock and a list append). A background thread closes the window
when its time is up or it holds ``monitor_window_size`` predictions, and hands it to a
sink that writes one inference run per model version in it to ``<task>-inference``
(:mod:`~.inference_run`): by default a helper process (:mod:`~.helper`), else the thread
itself (:mod:`~.writers`); a batch upload gets a run of its own. Runs go through
flowscope's journal, so once a window is written a store outage loses none of it: the
journal's writers deliver when the store is back, or ``flowscope sync`` does later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from flowscope.serving.packing import pack
from flowscope.serving.window import VersionGroup, WindowJob

if TYPE_CHECKING:
    from flowscope.config import Settings
    from flowscope.serving.model import ServedModel
    from flowscope.serving.packing import Observation

logger = logging.getLogger(__name__)

# The longest the writer thread sleeps between looks at the sink's answers.
_POLL = 0.5


class InferenceMonitor:
    """Buffers predictions and writes inference runs in a background thread.

    >>> monitor = InferenceMonitor(settings)          # doctest: +SKIP
    >>> monitor.observe(model, observation)           # on the request path: an append
    >>> monitor.close()                               # writes what is left
    """

    def __init__(self, settings: Settings) -> None:
        from flowscope.serving.helper import HelperSink
        from flowscope.serving.writers import ThreadSink

        self.settings = settings
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._groups: dict[str, VersionGroup] = {}
        self._rows = 0
        self._jobs: list[WindowJob] = []
        self._window_start = time.time()
        self._buffered = 0
        self._closing = False
        self._deadline = 0.0  # monotonic, set by close()
        self._delivered = False
        self._cpu_seconds = 0.0  # the monitor thread's own CPU time, for /metrics
        self._pass_ended = threading.Condition()  # see wait_for()
        self._ended = False  # the thread is done: no pass will come
        self.dropped = 0
        sink = HelperSink if settings.monitor_process else ThreadSink
        self._sink = sink(settings, self._written)
        self._thread = threading.Thread(target=self._loop, name="flowscope-monitor", daemon=True)
        self._thread.start()

    # -- the request path --------------------------------------------------------------

    def observe(self, model: ServedModel, observation: Observation) -> None:
        """Record one answered request; a window or per-request run is written later."""
        rows = observation.rows
        with self._lock:
            if self._buffered + rows > self.settings.monitor_max_buffered or self._closing:
                self._drop(model, rows)
                return
            self._buffered += rows
            if self.settings.monitor_per_request:
                now = time.time()
                group = VersionGroup(model, [observation])
                self._jobs.append(WindowJob([group], observation.timestamp, now))
                self._wake.set()
                return
            self._group(model).observations.append(observation)
            self._rows += rows
            if self._rows >= self.settings.monitor_window_size:
                self._close_window()

    def observe_error(self, model: ServedModel) -> None:
        """Count a refused or failed request in the open window."""
        with self._lock:
            self._group(model).errors += 1

    def observe_batch(self, model: ServedModel, observation: Observation, filename: str) -> None:
        """Record a batch upload: it gets an inference run of its own."""
        with self._lock:
            if self._buffered + observation.rows > self.settings.monitor_max_buffered:
                self._drop(model, observation.rows)
                return
            self._buffered += observation.rows
            group = VersionGroup(model, [observation])
            job = WindowJob([group], observation.timestamp, time.time(), "batch", filename)
            self._jobs.append(job)
        self._wake.set()

    def _group(self, model: ServedModel) -> VersionGroup:
        group = self._groups.get(model.version)
        if group is None:
            group = self._groups[model.version] = VersionGroup(model)
        return group

    def _drop(self, model: ServedModel, rows: int) -> None:
        """Count predictions there is no room for (the lock is held); the window's run
        reports them as ``dropped``."""
        self.dropped += rows
        if self.dropped == rows:
            logger.warning(
                "flowscope: the inference monitor holds %d predictions, its limit; further "
                "ones are counted as dropped (monitor_max_buffered)",
                self._buffered,
            )
        if not self._closing:
            self._group(model).dropped += rows

    # -- the writer thread -------------------------------------------------------------

    def _close_window(self) -> None:
        """Hand the open window to the writer (the lock is held)."""
        now = time.time()
        groups = [
            g for g in self._groups.values() if g.observations or g.packed or g.errors or g.dropped
        ]
        if groups:
            self._jobs.append(WindowJob(groups, self._window_start, now))
        self._groups = {}
        self._rows = 0
        self._window_start = now
        self._wake.set()

    def _loop(self) -> None:
        """The monitor's thread: the only one that touches the sink, its end included."""
        try:
            self._passes()
        finally:
            self._passed(ended=True)  # a waiter learns at once that no pass will come

    def _passes(self) -> None:
        while True:
            deadline = self._window_start + self.settings.monitor_window_seconds
            self._wake.wait(min(max(deadline - time.time(), 0.0), _POLL))
            self._wake.clear()
            with self._lock:
                if time.time() >= deadline or self._closing:
                    self._close_window()
                jobs, self._jobs = self._jobs, []
                closing = self._closing
            for job in jobs:
                try:
                    self._sink.submit(job)
                except Exception:  # a monitor must never take the service down
                    logger.exception("flowscope: could not hand over inference window %s", job.id)
            if closing:
                self._delivered = self._sink.close(self._deadline)
                return
            try:
                self._pack()
                self._sink.poll()
            except Exception:
                logger.exception("flowscope: the inference monitor's upkeep failed")
            self._cpu_seconds = time.thread_time()
            self._passed()

    def _passed(self, ended: bool = False) -> None:
        with self._pass_ended:
            self._ended = ended
            self._pass_ended.notify_all()

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()`` holds, checked now and after each pass of the
        monitor's thread (where windows close, are handed over and acknowledged, and a
        dead helper is replaced); False if it still does not after ``timeout`` seconds
        or once the thread has ended. For a test that acts at such a moment.

        >>> monitor.wait_for(lambda: monitor.stats()["runs_written"] >= 1, 60)  # doctest: +SKIP
        """
        with self._pass_ended:
            self._pass_ended.wait_for(lambda: condition() or self._ended, timeout)
            return condition()

    def _pack(self) -> None:
        """Pack the open window's new observations (see :mod:`~.packing`)."""
        with self._lock:
            for group in self._groups.values():
                if group.observations:
                    group.packed.append(pack(group.model, group.observations))
                    group.observations = []

    def _written(self, rows: int) -> None:
        """The sink is done with a window of ``rows`` predictions: they leave the buffer."""
        with self._lock:
            self._buffered -= rows

    # -- ending ------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> bool:
        """Write what is buffered and wait, at most ``timeout`` seconds (``flush_timeout``),
        until every inference run is delivered; False when some are left to the journal."""
        wait = self.settings.flush_timeout if timeout is None else timeout
        with self._lock:
            self._deadline = time.monotonic() + wait
            self._closing = True
        self._wake.set()
        # the thread hands over the last window and ends the sink, within the deadline
        # (and the few seconds a helper process is given to exit)
        self._thread.join(max(wait, 1.0) + 15.0)
        return self._delivered and not self._thread.is_alive()

    @property
    def helper_pid(self) -> int | None:
        """The helper process writing the windows (None when they are written here)."""
        return getattr(self._sink, "pid", None)

    def stats(self) -> dict[str, float]:
        """Counters for ``/metrics``; ``cpu_seconds`` is what the monitor's thread has
        spent of the serving process's CPU (packing, handing windows over)."""
        return {
            "buffered_predictions": self._buffered,
            "dropped_predictions": self.dropped,
            "cpu_seconds": self._cpu_seconds,
            **self._sink.stats(),
        }
