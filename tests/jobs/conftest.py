"""Job queue fixtures: a store in tmp_path, its queue (SQLite beside it, or the machine's
Redis), and helpers that start real ``flowscope worker`` and ``flowscope ui`` processes."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowscope.config import Settings
from flowscope.jobs import JobQueue, TrainRequest, submit_training
from flowscope.jobs.work import TEST_HOLD_JOBS_ENV
from tests.conftest import make_settings

REDIS_URL = os.environ.get("FLOWSCOPE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.exceptions.ConnectionError:
        return False


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis" and not redis_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return str(request.param)


def job_settings(root: Path, backend: str = "sqlite", **overrides: object) -> Settings:
    """Settings of a store under ``root`` whose queue is SQLite beside it or Redis (a store
    of its own, so its queue is its own too)."""
    if backend == "redis":
        overrides.setdefault("jobs_url", REDIS_URL)
    return make_settings(
        root,
        f"sqlite:///{root / 'mlflow.db'}",
        workbench_dir=root / "workbench",
        **overrides,
    )


def train_request(**fields: object) -> TrainRequest:
    values: dict[str, object] = {
        "dataset_id": "builtin:iris",
        "target": "species",
        "model_types": ["logistic_regression"],
        "task": "iris-jobs",
    }
    values.update(fields)
    return TrainRequest(**values)  # type: ignore[arg-type]


def submit(settings: Settings, queue: JobQueue, **fields: object) -> list[str]:
    return submit_training(settings, queue, train_request(**fields), user="tester")


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWSCOPE_", "MLFLOW_"))}
    env.update(
        {
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
            "FLOWSCOPE_ARTIFACTS_DIR": str(settings.artifacts_dir),
            "FLOWSCOPE_JOURNAL_DIR": str(settings.journal_dir),
            "FLOWSCOPE_WORKBENCH_DIR": str(settings.workbench_dir),
            "FLOWSCOPE_AUTOLOG": "false",
            "FLOWSCOPE_SYNC_ON_START": "false",
            "PYTHONPATH": str(Path(__file__).parents[2] / "src"),
        }
    )
    if settings.jobs_url:
        env["FLOWSCOPE_JOBS_URL"] = settings.jobs_url
    env.update(extra)
    return env


class Worker:
    """A real ``flowscope worker`` process (its own session, so a kill reaches its
    children), its output in a log beside the store."""

    def __init__(self, settings: Settings, processes: int = 1, **env: str) -> None:
        root = settings.workbench_dir.parent
        root.mkdir(parents=True, exist_ok=True)
        self.log = root / f"worker-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flowscope.cli", "worker", "--processes", str(processes)],
                cwd=root,
                env=worker_env(settings, **env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


# Only a safety net, for a job that neither reaches its hold nor dies: the test waits for
# the job's own line (or its process's death), never for this.
HOLD_SAFETY_LIMIT = 120.0


class JobHold:
    """The test's end of :data:`TEST_HOLD_JOBS_ENV`: a FIFO in ``folder``, open for reading
    from the start (so the select below sees the writers' lines), on which each training job
    of a process started with :attr:`env` says that its run exists and then holds, until
    :meth:`release`."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "jobs-started.fifo"
        os.mkfifo(self.path)
        # non-blocking: a blocking open for reading would wait for the first writer
        self._fd: int | None = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._partial = b""
        self.run_ids: dict[str, str] = {}  # job id -> run id, as the held jobs reported them

    @property
    def env(self) -> dict[str, str]:
        return {TEST_HOLD_JOBS_ENV: str(self.path)}

    def wait_started(self, job_id: str, process: subprocess.Popen[bytes], log: Path) -> str:
        """The run id of ``job_id`` once the job holds in ``process``; fails at once when
        ``process`` dies first."""
        assert self._fd is not None, "the hold was released"
        pidfd = os.pidfd_open(process.pid)
        try:
            while job_id not in self.run_ids:
                ready, _, _ = select.select([self._fd, pidfd], [], [], HOLD_SAFETY_LIMIT)
                if self._fd in ready:
                    self._read(job_id, log)
                elif pidfd in ready:
                    pytest.fail(
                        f"the process running job {job_id} exited with {process.wait()} "
                        f"before the job reached its hold; see {log}"
                    )
                else:
                    pytest.fail(
                        f"job {job_id} did not reach its hold in {HOLD_SAFETY_LIMIT:.0f} s "
                        f"and its process still runs; see {log}"
                    )
        finally:
            os.close(pidfd)
        return self.run_ids[job_id]

    def _read(self, job_id: str, log: Path) -> None:
        assert self._fd is not None
        chunk = os.read(self._fd, 4096)
        if not chunk:  # every writer closed: each job that reported has died
            pytest.fail(f"the jobs holding let go before job {job_id} reported; see {log}")
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            held, _, run_id = line.decode().partition(" ")
            self.run_ids[held] = run_id

    def release(self) -> None:
        """Close the test's end: every held job goes on, and later ones do not hold."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@pytest.fixture
def job_hold(tmp_path: Path) -> Iterator[JobHold]:
    hold = JobHold(tmp_path)
    yield hold
    hold.release()


@pytest.fixture
def settings_for(tmp_path: Path) -> Iterator[object]:
    """``settings_for(backend)``: a store of its own with its queue; Redis queues are
    emptied afterwards."""
    queues: list[JobQueue] = []

    def make(backend: str = "sqlite", **overrides: object) -> Settings:
        settings = job_settings(tmp_path / backend, backend, **overrides)
        if backend == "redis":
            queues.append(JobQueue(settings))
        return settings

    yield make
    for queue in queues:
        queue.huey.flush()
