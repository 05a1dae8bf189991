"""Job queue fixtures: a store in tmp_path, its queue (SQLite beside it, or the machine's
Redis), and helpers that start real ``flowscope worker`` and ``flowscope ui`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowscope.config import Settings
from flowscope.jobs import JobQueue, TrainRequest, submit_training
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


def wait_for_file(path: Path, process: subprocess.Popen[bytes], log: Path) -> str:
    """The content of ``path`` once the process under test has written it (the moment it
    reached its hold); fails at once if the process died instead."""
    deadline = time.monotonic() + 120
    while not path.exists():
        assert process.poll() is None, f"the process exited; see {log}"
        assert time.monotonic() < deadline, f"{path.name} never appeared; see {log}"
        time.sleep(0.05)
    return path.read_text()


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
