"""``flowscope server --auth`` refuses to start, exit 1 with the reason, without a usable
first admin (no name, no password, a short one, a known default one, the user name as
password), and starts, guarded, with a good one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import throwaway_postgres
from tests.server.auth_fixtures import ADMIN, AuthServer, basic
from tests.servers import free_port, isolated_environment

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.slow]


def _start(tmp_path: Path, database: str, **admin: str) -> subprocess.CompletedProcess[str]:
    env = isolated_environment(tmp_path)
    env.update({f"FLOWSCOPE_ADMIN_{key.upper()}": value for key, value in admin.items()})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "flowscope.cli",
            "server",
            "--auth",
            "--port",
            str(free_port()),
            "--backend-store-uri",
            database,
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )


@pytest.mark.parametrize(
    ("admin", "reason"),
    [
        ({"password": "a-long-enough-passphrase"}, "no admin is named"),
        ({"username": "  ", "password": "a-long-enough-passphrase"}, "no admin is named"),
        ({"username": "admin"}, "the admin has no password"),
        ({"username": "admin", "password": "short-pass"}, "too short"),
        ({"username": "admin", "password": "password1234"}, "a known default"),
        ({"username": "admin", "password": "PASSWORD1234"}, "a known default"),
        ({"username": "administrator", "password": "administrator"}, "a known default"),
        ({"username": "team-admin-2026", "password": "team-admin-2026"}, "a known default"),
    ],
    ids=[
        "no username",
        "blank username",
        "no password",
        "short password",
        "password1234",
        "password1234 in capitals",
        "a default admin name as password",
        "password equal to the username",
    ],
)
def test_a_server_without_a_usable_admin_does_not_start(
    tmp_path: Path, admin: dict[str, str], reason: str
) -> None:
    """The admin is checked before the database is touched: the URI names no server."""
    unreachable = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    result = _start(tmp_path, unreachable, **admin)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and reason in last, result.stderr[-500:]
    assert "flowscope server on" not in result.stdout
    if "password" in admin:
        assert admin["password"] not in result.stderr + result.stdout


def test_a_good_admin_starts_a_guarded_server(tmp_path: Path) -> None:
    with throwaway_postgres("flowscope_auth_start") as database:
        server = AuthServer(tmp_path / "server", database)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                assert client.get("/health").status_code == 200
                assert client.get("/api/2.0/mlflow/experiments/search").status_code == 401
                assert client.get("/flowscope/experiments.json").status_code == 401
                admin = basic(ADMIN)
                answer = client.get("/api/2.0/mlflow/users/current", headers=admin)
                assert answer.status_code == 200
                assert answer.json()["user"]["is_admin"] is True
                assert client.get("/flowscope/experiments.json", headers=admin).status_code == 200
            log = (server.root / f"{server.name}.log").read_text()
            assert ADMIN[1] not in log
        finally:
            server.stop()
