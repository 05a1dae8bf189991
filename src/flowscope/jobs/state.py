"""What a job is and where it stands, kept in the queue's own key-value store (huey's: a
SQLite file or Redis), so flowscope keeps no database of its own.

A job is a few keys, each written by one party:

- ``fs.job:ID``: what was asked (written once, at submission);
- ``fs.job:ID:claim``: who took it, set once with ``put_if_empty``: the worker that starts
  it or the user who cancels it, whichever comes first, so a job runs at most once and a
  cancelled job never starts;
- ``fs.job:ID:progress``: how far it got and its runs so far (overwritten by the worker
  alone);
- ``fs.job:ID:beat``: the worker's last heartbeat (overwritten by its heartbeat thread
  alone, never read back there, so a beat cannot write stale progress over fresh);
- ``fs.job:ID:end``: how it ended (set once with ``put_if_empty``): by its worker, or by
  whoever finds that worker dead.

A running job whose worker is gone (a process on this machine that no longer exists, or
no heartbeat for :data:`STALE_AFTER` seconds from another machine) is ended as failed by
the first reader that notices: the page, the API, or any worker's periodic sweep.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from flowscope.errors import NotFoundError

PREFIX = "fs.job:"
HEARTBEAT = 5.0  # seconds between two heartbeats of a running job
STALE_AFTER = 30.0  # a job from another machine with no heartbeat for this long is dead
STATES = ("queued", "running", "succeeded", "failed", "cancelled")


@dataclass
class Job:
    """One job as a page or a script sees it."""

    job_id: str
    kind: str  # "train" or "tune"
    request: dict[str, Any]
    created: float
    user: str
    batch: str  # the jobs submitted together share it
    state: str = "queued"
    progress: float = 0.0
    message: str = ""
    run_ids: list[str] = field(default_factory=list)
    best_run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    worker: str | None = None  # host:pid of the process that ran it
    started: float | None = None
    ended: float | None = None
    heartbeat: float | None = None
    registered: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "duration": self.duration, "finished": self.finished}


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_gone(worker: str) -> bool:
    """True when ``worker`` (host:pid) is a process of this machine that no longer runs."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(int(pid))


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class JobStore:
    """The jobs in one queue's storage (``huey.storage``)."""

    def __init__(
        self,
        storage: Any,
        on_lost: Callable[[Job], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.on_lost = on_lost  # told of a job found dead (its runs are ended there)
        # what "now" is, in seconds since the epoch, for the times this store writes and
        # for judging heartbeats stale; a test passes one it sets itself
        self.clock = clock

    # -- writing -------------------------------------------------------------------------

    def create(self, job: Job) -> None:
        self._put(
            job.job_id,
            "",
            {
                "job_id": job.job_id,
                "kind": job.kind,
                "request": job.request,
                "created": job.created,
                "user": job.user,
                "batch": job.batch,
            },
        )

    def claim(self, job_id: str) -> bool:
        """Take the job to run it here; False when it was taken or cancelled before."""
        claim = {"action": "start", "worker": worker_identity(), "at": self.clock()}
        return bool(self.storage.put_if_empty(self._key(job_id, "claim"), _dump(claim)))

    def cancel(self, job_id: str, user: str) -> bool:
        """Cancel a queued job; False when a worker took it first (or it was cancelled)."""
        self.get(job_id)  # an unknown job is a 404
        claim = {"action": "cancel", "user": user, "at": self.clock()}
        if not self.storage.put_if_empty(self._key(job_id, "claim"), _dump(claim)):
            return False
        self._end(job_id, {"state": "cancelled", "error": None, "at": self.clock()})
        return True

    def progress(
        self, job_id: str, fraction: float, message: str, run_ids: list[str] | None = None
    ) -> None:
        if run_ids is None:
            run_ids = (self._get(job_id, "progress") or {}).get("run_ids", [])
        self._put(
            job_id,
            "progress",
            {"fraction": max(0.0, min(fraction, 1.0)), "message": message, "run_ids": run_ids},
        )
        self.beat(job_id)  # progress is a sign of life too

    def beat(self, job_id: str) -> None:
        """The worker is alive: refresh the heartbeat (its own key, written blindly)."""
        self._put(job_id, "beat", {"at": self.clock()})

    def finish(self, job_id: str, state: str, **outcome: Any) -> bool:
        """End the job (``succeeded`` or ``failed``) with ``run_ids``, ``best_run_id``,
        ``metrics``, ``error``, ``registered``; False when it had ended already."""
        return self._end(job_id, {"state": state, "at": self.clock(), **outcome})

    def _end(self, job_id: str, end: dict[str, Any]) -> bool:
        return bool(self.storage.put_if_empty(self._key(job_id, "end"), _dump(end)))

    # -- reading -------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        doc = self._get(job_id, "") if _valid_id(job_id) else None
        if doc is None:
            raise NotFoundError(f"no job {job_id!r}")
        parts = {part: self._get(job_id, part) for part in ("claim", "progress", "beat", "end")}
        return self._settle(_assemble(doc, **parts))

    def all(self) -> list[Job]:
        """Every job, newest first."""
        grouped: dict[str, dict[str, Any]] = {}
        for key, value in self.storage.result_items().items():
            if not key.startswith(PREFIX):
                continue
            job_id, _, part = key[len(PREFIX) :].partition(":")
            grouped.setdefault(job_id, {})[part] = _load(value)
        jobs = [
            self._settle(
                _assemble(
                    parts[""],
                    parts.get("claim"),
                    parts.get("progress"),
                    parts.get("beat"),
                    parts.get("end"),
                )
            )
            for parts in grouped.values()
            if "" in parts
        ]
        return sorted(jobs, key=lambda job: (-job.created, job.job_id))

    def _settle(self, job: Job) -> Job:
        """A running job whose worker is gone ends as failed, here and for everyone."""
        if job.state != "running" or job.worker is None:
            return job
        silent_for = self.clock() - (job.heartbeat or job.started or job.created)
        if _process_gone(job.worker):
            reason = f"the worker running it ({job.worker}) stopped before it finished"
        elif silent_for > STALE_AFTER:
            reason = (
                f"the worker running it ({job.worker}) sent no heartbeat for "
                f"{silent_for:.0f} s: it stopped or lost its connection"
            )
        else:
            return job
        if self.finish(job.job_id, "failed", error=reason, run_ids=job.run_ids) and self.on_lost:
            self.on_lost(job)
        return self.get(job.job_id)

    # -- keys ----------------------------------------------------------------------------

    def _key(self, job_id: str, part: str) -> str:
        return f"{PREFIX}{job_id}:{part}" if part else f"{PREFIX}{job_id}"

    def _put(self, job_id: str, part: str, value: dict[str, Any]) -> None:
        self.storage.put_data(self._key(job_id, part), _dump(value))

    def _get(self, job_id: str, part: str) -> dict[str, Any] | None:
        from huey.constants import EmptyData

        raw = self.storage.peek_data(self._key(job_id, part))
        return None if raw is EmptyData else _load(raw)


def _assemble(
    doc: dict[str, Any],
    claim: dict[str, Any] | None,
    progress: dict[str, Any] | None,
    beat: dict[str, Any] | None,
    end: dict[str, Any] | None,
) -> Job:
    job = Job(**doc)
    if claim is not None and claim["action"] == "start":
        job.state, job.worker, job.started = "running", claim["worker"], claim["at"]
    if progress is not None:
        job.progress, job.message = progress["fraction"], progress["message"]
        job.run_ids = list(progress["run_ids"])
        job.heartbeat = progress.get("beat")  # a record written before beats had their key
    if beat is not None:
        job.heartbeat = beat["at"]
    if end is not None:
        job.state, job.ended = end["state"], end["at"]
        job.error = end.get("error")
        job.run_ids = list(end.get("run_ids") or job.run_ids)
        job.best_run_id = end.get("best_run_id")
        job.metrics = dict(end.get("metrics") or {})
        job.registered = end.get("registered")
        if job.state == "succeeded":
            job.progress = 1.0
    return job


def _valid_id(job_id: str) -> bool:
    return 0 < len(job_id) <= 64 and all(c.isalnum() or c == "-" for c in job_id)


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def _load(raw: Any) -> dict[str, Any]:
    return dict(json.loads(bytes(raw).decode() if not isinstance(raw, str) else raw))
