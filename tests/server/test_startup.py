"""``flowscope server`` refuses to start, with one line naming the part at fault and
exit 1, when its database or its artifact destination cannot be used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import free_port, isolated_environment

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _start(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _flowscope(tmp_path, "server", "--port", str(free_port()), *args)


def _flowscope(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowscope.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=isolated_environment(tmp_path),
        cwd=tmp_path,
        check=False,
    )


def test_an_unreachable_database_is_named_and_nothing_is_served(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    uri = f"postgresql+psycopg://flowscope:secret@127.0.0.1:{port}/runs"
    result = _start(tmp_path, "--backend-store-uri", uri)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    named = f"postgresql+psycopg://flowscope:***@127.0.0.1:{port}/runs"
    # the operator's own setting is named, its password never
    assert lines[-1].startswith(f"error: the database is unreachable ({named}: ")
    assert "secret" not in result.stderr + result.stdout
    assert "flowscope server on" not in result.stdout


def test_an_unusable_artifact_destination_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _start(
        tmp_path,
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination",
        str(blocker / "artifacts"),
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: the artifact destination refused a write: Not a directory "
            f"({blocker / 'artifacts'}: "
        )
    )


def test_a_worker_beside_the_server_refuses_what_cannot_work(tmp_path: Path) -> None:
    """``flowscope worker --artifacts-destination`` writes as the server's own jobs do; on
    a server's address (not its database), or with a destination it cannot use, it says so
    and runs nothing."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    through_server = _flowscope(
        tmp_path,
        "worker",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
        "--tracking-uri",
        f"http://127.0.0.1:{free_port()}",
    )
    unusable = _flowscope(
        tmp_path,
        "worker",
        "--artifacts-destination",
        str(blocker / "artifacts"),
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    for result in (through_server, unusable):
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "flowscope worker:" not in result.stdout  # no consumer started
    assert (
        through_server.stderr.strip()
        .splitlines()[-1]
        .startswith("error: --artifacts-destination is for a process on the server's database")
    )
    assert (
        unusable.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: the artifact destination refused a write: Not a directory "
            f"({blocker / 'artifacts'}: "
        )
    )
