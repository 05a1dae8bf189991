"""Waiting for another process to reach a point, without sleeping or polling.

The process says it got there by writing a line to a pipe or FIFO the test reads
(:func:`read_line`); the test watches the process's pidfd at the same time, so a process
that dies first fails the test at once instead of at a deadline.
"""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Sequence
from pathlib import Path

# A safety net only: every wait ends on an event (a line, a process ending) long before.
SAFETY_NET = 300.0


class ProcessEnded(AssertionError):
    """A watched process ended before it said what the test waited for."""

    def __init__(self, process: subprocess.Popen, what: str) -> None:  # type: ignore[type-arg]
        self.process = process
        super().__init__(
            f"the process {process.pid} ended (exit code {process.wait()}) before {what}"
        )


def make_fifo(path: Path) -> Path:
    """A new FIFO at ``path`` (the test's ``tmp_path``)."""
    os.mkfifo(path)
    return path


def open_to_read(fifo: Path) -> int:
    """The read end of ``fifo``, opened without waiting for a writer."""
    return os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)


def read_line(
    fd: int,
    processes: Sequence[subprocess.Popen],  # type: ignore[type-arg]
    what: str,
    timeout: float = SAFETY_NET,
) -> str:
    """The first line written to ``fd`` (a pipe or FIFO opened non-blocking), once some
    process writes it; :class:`ProcessEnded` as soon as one of ``processes`` ends first,
    an AssertionError naming ``what`` if nothing at all happens in ``timeout`` seconds."""
    pidfds = {os.pidfd_open(process.pid): process for process in processes}
    data = b""
    try:
        while b"\n" not in data:
            ready, _, _ = select.select([fd, *pidfds], [], [], timeout)
            if not ready:
                raise AssertionError(f"nothing happened in {timeout:.0f} s: waiting until {what}")
            if fd in ready:  # before a process that wrote and then ended
                try:
                    chunk = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise AssertionError(f"the writer closed its end before {what}")
                data += chunk
            else:
                raise ProcessEnded(pidfds[ready[0]], what)
    finally:
        for pidfd in pidfds:
            os.close(pidfd)
    return data.decode().split("\n", 1)[0]


# a moment long past (2001): what was made then has expired by any real clock, by years
LONG_AGO = 1_000_000_000.0


class ManualClock:
    """A clock a test moves by hand (``clock.now += 60``): what expires, expires when the
    test says so, never while it waits."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
