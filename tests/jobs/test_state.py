"""A job's keys, each written by one party: what one writer puts there is never lost to
another's write."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from huey.storage import SqliteStorage

from flowscope.jobs.state import Job, JobStore


class InterleavingStorage(SqliteStorage):
    """Huey's SQLite storage, where a test may run ``between`` once, right after the next
    read of ``key``: what another thread of the worker would write at that moment."""

    def __init__(self, filename: Path) -> None:
        super().__init__("jobs", filename=str(filename))
        self.key = ""
        self.between: Callable[[], None] | None = None

    def peek_data(self, key: str) -> Any:
        value = super().peek_data(key)
        if key == self.key and self.between is not None:
            between, self.between = self.between, None
            between()
        return value


def test_a_heartbeat_never_drops_what_progress_recorded_meanwhile(tmp_path: Path) -> None:
    storage = InterleavingStorage(tmp_path / "jobs.db")
    now = 1_000_000.0
    store = JobStore(storage, clock=lambda: now)
    store.create(Job("job1", "train", {}, now, "tester", "batch1"))
    storage.put_if_empty("fs.job:job1:claim", b'{"action": "start", "worker": "w:1", "at": 0}')
    store.progress("job1", 0.1, "training")
    # the main thread records the run: while the heartbeat thread is between its read and
    # its write if a beat reads the progress record, else once the beat is written
    storage.key = "fs.job:job1:progress"
    storage.between = lambda: store.progress("job1", 0.2, "training", ["run1"])
    now += 5
    store.beat("job1")
    if storage.between is not None:
        storage.between()
    job = store.get("job1")
    assert job.run_ids == ["run1"]
    assert (job.progress, job.message, job.heartbeat) == (0.2, "training", now)


def test_a_progress_record_from_before_beats_had_their_key_still_gives_the_heartbeat(
    tmp_path: Path,
) -> None:
    storage = InterleavingStorage(tmp_path / "jobs.db")
    store = JobStore(storage, clock=lambda: 2_000.0)
    store.create(Job("job2", "train", {}, 1_000.0, "tester", "batch2"))
    storage.put_if_empty("fs.job:job2:claim", b'{"action": "start", "worker": "w:1", "at": 0}')
    old = b'{"beat": 1990.0, "fraction": 0.5, "message": "half", "run_ids": ["r"]}'
    storage.put_data("fs.job:job2:progress", old)
    job = store.get("job2")
    assert (job.heartbeat, job.progress, job.run_ids) == (1990.0, 0.5, ["r"])
