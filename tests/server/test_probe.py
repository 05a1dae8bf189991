"""Which part is away is asked once for a burst of failing requests: a verdict is kept
for a moment (judged on a clock the test sets), then asked again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio

from flowscope.server.startup import ServerConfig
from flowscope.server.unavailable import PROBE_FOR_SECONDS, PartProbe
from tests.leaks import assert_no_leak


def test_a_verdict_is_kept_for_a_moment_then_asked_again(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    sqlite3.connect(database).close()
    artifacts = tmp_path / "artifacts"
    now = [100.0]
    probe = PartProbe(ServerConfig(f"sqlite:///{database}", str(artifacts)), clock=lambda: now[0])
    path = "/api/2.0/mlflow/runs/get"

    async def ask(at: float) -> str | None:
        now[0] = at
        return await probe(path)

    assert anyio.run(ask, 100.0) is None  # every part is there
    database.unlink()
    database.mkdir()  # a folder where the file was: SQLite cannot open it
    assert anyio.run(ask, 100.0 + PROBE_FOR_SECONDS / 2) is None  # the kept verdict
    away = anyio.run(ask, 100.0 + PROBE_FOR_SECONDS * 2)
    assert away == "the database is unreachable"  # for a client: where it is, in the log
    # an artifact route asks about the artifact destination too, on a verdict of its own
    database.rmdir()
    sqlite3.connect(database).close()
    artifacts.write_text("a file where the folder should be")
    assert anyio.run(ask, 100.0 + PROBE_FOR_SECONDS * 4) is None
    now[0] = 100.0 + PROBE_FOR_SECONDS * 4
    on_artifacts = anyio.run(probe, "/api/2.0/mlflow-artifacts/artifacts/x")
    assert on_artifacts is not None
    assert on_artifacts.startswith("the artifact destination refused a write")
    assert_no_leak(on_artifacts, tmp_path)
