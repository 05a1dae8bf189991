"""The job queue: huey (the queue MLflow's own server runs its jobs on), on a SQLite file
in ``workbench_dir`` by default, or on Redis (``jobs_url``) when several machines share the
work. ``flowscope worker`` consumes it with huey's consumer; ``flowscope ui`` runs a
consumer thread of its own when no ``jobs_url`` is set."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from functools import cached_property
from typing import Any

from flowscope.config import Settings
from flowscope.errors import FlowscopeError
from flowscope.jobs.state import Job, JobStore

logger = logging.getLogger(__name__)

TASK_NAME = "flowscope.run_job"


class JobQueueUnreachableError(FlowscopeError):
    """The queue's storage (its SQLite file or Redis) did not answer: 503, since the same
    submission succeeds once it is back."""

    status = 503


def queue_name(settings: Settings) -> str:
    """One queue per store: workers of one store never take another store's jobs when
    several share a Redis."""
    import hashlib

    return "flowscope-" + hashlib.sha256(settings.tracking_uri.encode()).hexdigest()[:12]


class JobQueue:
    """Submit, read and cancel the jobs of ``settings``' queue, and run them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.huey = _open_huey(settings)
        self._task = self.huey.task(retries=0, name=TASK_NAME)(self._run)
        self.store = JobStore(self.huey.storage, on_lost=self._end_lost_runs)

    @property
    def kind(self) -> str:
        """What the queue is kept in, for pages and answers: never where (a folder of the
        server's machine, Redis's host), which :attr:`location` tells the log."""
        return "redis" if self.settings.jobs_url else "sqlite"

    @property
    def location(self) -> str:
        """Where the queue lives, for the log and the operator (no password)."""
        url = self.settings.jobs_url
        if url is None:
            return str(self.settings.workbench_dir / "jobs.db")
        from urllib.parse import urlparse

        parsed = urlparse(url)
        return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 6379}{parsed.path}"

    def submit(self, kind: str, request: dict[str, Any], *, user: str, batch: str) -> str:
        """Queue one job; its id. When the queue's storage does not answer, a
        :class:`JobQueueUnreachableError`; a job written but not enqueued ends failed."""
        job = Job(
            job_id=uuid.uuid4().hex,
            kind=kind,
            request=request,
            created=time.time(),
            user=user,
            batch=batch,
        )
        unreachable = "the job queue is unreachable"
        try:
            self.store.create(job)
        except self.storage_errors as exc:
            raise JobQueueUnreachableError(unreachable, detail=f"{self.location}: {exc}") from exc
        try:
            self._task(job.job_id)
        except self.storage_errors as exc:
            try:  # no worker will ever take it: it must not stay "queued"
                self.store.finish(job.job_id, "failed", error="could not be queued: " + unreachable)
            except self.storage_errors as again:
                logger.warning("job %s stays queued, never to run: %s", job.job_id, again)
            raise JobQueueUnreachableError(unreachable, detail=f"{self.location}: {exc}") from exc
        return job.job_id

    @cached_property
    def storage_errors(self) -> tuple[type[Exception], ...]:
        """What huey's storage raises when its SQLite file or Redis does not answer."""
        import sqlite3

        if self.settings.jobs_url is None:
            return (sqlite3.Error, OSError)
        from redis.exceptions import RedisError

        return (RedisError, OSError)

    def get(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def all(self) -> list[Job]:
        return self.store.all()

    def cancel(self, job_id: str, user: str) -> bool:
        return self.store.cancel(job_id, user)

    def wait(self, job_id: str, timeout: float) -> Job:
        """The job once it has ended, or as it stands after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        pause = 0.05
        while True:
            job = self.store.get(job_id)
            left = deadline - time.monotonic()
            if job.finished or left <= 0:
                return job
            time.sleep(min(pause, left))
            pause = min(pause * 1.5, 0.5)

    def pending(self) -> int:
        """Jobs in the queue that no consumer has taken yet."""
        return int(self.huey.pending_count())

    def _run(self, job_id: str) -> None:
        from flowscope.jobs.work import run_job

        run_job(self.settings, self.store, job_id)

    def _end_lost_runs(self, job: Job) -> None:
        """The runs of a job whose worker died: what its journal on this machine still
        held is delivered (``sync`` marks such runs KILLED); runs still RUNNING are
        marked KILLED."""
        from flowscope.jobs.work import job_runs
        from flowscope.mlflow_client import client_for
        from flowscope.tracking.sync import sync

        try:
            sync(self.settings, deadline=self.settings.flush_timeout)
            client = client_for(self.settings)
            for run in job_runs(self.settings, job.job_id):
                if run.info.status == "RUNNING":
                    client.set_terminated(run.info.run_id, "KILLED")
        except Exception as exc:  # the store away: `flowscope sync` ends them later
            logger.warning("job %s: could not end the runs of its lost worker: %s", job.job_id, exc)

    # -- consuming -----------------------------------------------------------------------

    @cached_property
    def _stop(self) -> threading.Event:
        return threading.Event()

    def start_embedded(self) -> threading.Thread:
        """Run jobs in a thread of this process, one at a time (``flowscope ui`` with no
        worker configured); :meth:`stop_embedded` ends it after the job under way."""
        thread = threading.Thread(target=self._consume, name="flowscope-jobs", daemon=True)
        thread.start()
        return thread

    def stop_embedded(self) -> None:
        self._stop.set()

    def _consume(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                task = self.huey.dequeue()
            except Exception as exc:  # the queue's store away: try again later
                logger.warning("flowscope jobs: cannot read the queue: %s", exc)
                task = None
            if task is None:
                self._stop.wait(delay)
                delay = min(delay * 1.5, 1.0)
                continue
            delay = 0.1
            try:
                self.huey.execute(task)
            except Exception:  # huey's own storage calls around the job: the next one runs
                logger.exception("flowscope jobs: could not run %s", task)

    def run_worker(self, processes: int = 1) -> None:
        """Consume with huey's consumer in this process: ``processes`` worker processes,
        each taking one job at a time, until interrupted (``flowscope worker``)."""
        consumer = self.huey.create_consumer(
            workers=processes,
            worker_type="process" if processes > 1 else "thread",
            periodic=False,
            check_worker_health=True,
            health_check_interval=1,
            max_delay=1.0,
        )
        consumer.run()


def _open_huey(settings: Settings) -> Any:
    from huey import RedisHuey, SqliteHuey

    name = queue_name(settings)
    if settings.jobs_url:
        return RedisHuey(name, url=settings.jobs_url, results=False)
    folder = settings.workbench_dir
    folder.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str(folder / "jobs.db"), results=False)
