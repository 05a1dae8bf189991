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
    command = [sys.executable, "-m", "flowscope.cli", "server", "--port", str(free_port())]
    return subprocess.run(
        [*command, *args],
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
    assert lines[-1].startswith(f"error: the database {named} is unreachable")
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
        .startswith(f"error: the artifact destination {blocker / 'artifacts'} is not usable")
    )
