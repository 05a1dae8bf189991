"""A real ``flowscope server --auth`` on a throwaway PostgreSQL database with two users
made through MLflow's own REST API as the admin: alice, who owns an experiment (a real
training job's run and a tuning study in it) and a registered scikit-learn model, and bob,
who was granted nothing on a server whose default permission is NO_PERMISSIONS.

Everything alice owns is made as alice, through the server, so that MLflow grants her
MANAGE as it does for any creator; the names are distinctive so that a page that leaks one
is caught by a plain substring test.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from flowscope.web.jobs import MAX_WAIT
from tests.conftest import throwaway_postgres
from tests.servers import TrackingServer

ADMIN = ("admin", "admin-passphrase-for-tests")
ALICE = ("alice", "alice-passphrase-for-tests")
BOB = ("bob", "bob-passphrase-for-tests")
EXPERIMENT = "alice-secret-experiment"
MODEL = "alice-secret-model"
SPARE_EXPERIMENT = "alice-spare-experiment"  # changed and deleted by the route tests
SPARE_MODEL = "alice-spare-model"


def basic(user: tuple[str, str]) -> dict[str, str]:
    """The ``Authorization`` header MLflow's clients send for a user name and password."""
    pair = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class AuthServer(TrackingServer):
    """``flowscope server --auth`` with the admin and session key in its environment and
    nothing shared by default."""

    name = "flowscope-auth-server"

    def __init__(self, root: Path, backend_store_uri: str, **env: str) -> None:
        variables = {
            "FLOWSCOPE_ADMIN_USERNAME": ADMIN[0],
            "FLOWSCOPE_ADMIN_PASSWORD": ADMIN[1],
            "FLOWSCOPE_SECRET_KEY": secrets.token_urlsafe(32),
            "FLOWSCOPE_DEFAULT_PERMISSION": "NO_PERMISSIONS",
            **env,
        }
        super().__init__(root, backend_store_uri, args=["--auth"], env=variables)

    @property
    def secret_key(self) -> str:
        return self.env["FLOWSCOPE_SECRET_KEY"]


@dataclass
class AuthWorld:
    """The running server, its database, and what alice owns there."""

    server: AuthServer
    database: str
    experiment_id: str
    run_id: str  # the training job's run: a fitted model, metrics, artifacts
    study_run_id: str  # a tuning study's parent run
    job_id: str
    model_version: str
    dataset_id: str
    alice_token_id: str
    bob_token_id: str
    spare_experiment_id: str
    spare_run_id: str
    tokens: dict[str, str] = field(default_factory=dict)  # "alice-read", "alice-write", ...

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client on the server; ``headers`` are who it is (none: anonymous)."""
        return httpx.Client(
            base_url=self.url, headers=headers or {}, timeout=MAX_WAIT + 30, **kwargs
        )

    def counts(self) -> dict[str, int]:
        """How many of each thing the server holds: compared before and after a refused
        request, to show that nothing was written."""
        tables = {
            "experiments": "experiments",
            "runs": "runs",
            "params": "params",
            "tags": "tags",
            "metrics": "metrics",
            "registered_models": "registered_models",
            "model_versions": "model_versions",
            "users": "users",
            "tokens": "flowscope_tokens",
            "revoked_tokens": "flowscope_tokens WHERE revoked_at IS NOT NULL",
        }
        engine = sa.create_engine(self.database)
        try:
            with engine.connect() as conn:
                found = {
                    name: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
                    for name, table in tables.items()
                }
        finally:
            engine.dispose()
        with self.client(basic(ADMIN)) as admin:
            found["jobs"] = len(admin.get("/flowscope/api/jobs").json()["jobs"])
        return found


def _ok(answer: httpx.Response, expected: int = 200) -> dict[str, Any]:
    if answer.status_code != expected:
        raise AssertionError(f"{answer.request.url}: {answer.status_code} {answer.text[:500]}")
    return dict(answer.json())


def _create_user(url: str, user: tuple[str, str]) -> None:
    with httpx.Client(base_url=url, headers=basic(ADMIN), timeout=30) as admin:
        _ok(
            admin.post(
                "/api/2.0/mlflow/users/create",
                json={"username": user[0], "password": user[1]},
            )
        )


def _token(url: str, user: tuple[str, str], scope: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, headers=basic(user), timeout=30) as web:
        return _ok(
            web.post(
                "/flowscope/api/tokens",
                json={"name": f"{user[0]}-{scope}", "scope": scope, "expires_in_days": 1},
            ),
            201,
        )


def _finished_job(web: httpx.Client, job_id: str) -> dict[str, Any]:
    for _ in range(3):  # the server waits at most MAX_WAIT seconds per request
        job = _ok(web.get(f"/flowscope/api/jobs/{job_id}", params={"wait": MAX_WAIT}))
        if job["state"] not in ("queued", "running"):
            break
    if job["state"] != "succeeded":
        raise AssertionError(f"alice's job did not succeed: {job}")
    return job


def seed(server: AuthServer, database: str) -> AuthWorld:
    """Users alice and bob, and alice's experiment, job, study, model and data set."""
    url = server.url
    _create_user(url, ALICE)
    _create_user(url, BOB)
    with httpx.Client(base_url=url, headers=basic(ALICE), timeout=MAX_WAIT + 30) as alice:
        experiment_id = _ok(
            alice.post("/api/2.0/mlflow/experiments/create", json={"name": EXPERIMENT})
        )["experiment_id"]
        job_ids = _ok(
            alice.post(
                "/flowscope/api/jobs",
                json={
                    "dataset_id": "builtin:iris",
                    "target": "species",
                    "model_types": ["logistic_regression"],
                    "task": EXPERIMENT,
                    "tune_trials": 2,
                },
            ),
            201,
        )["job_ids"]
        [job_id] = job_ids
        job = _finished_job(alice, job_id)
        runs = _ok(
            alice.post(
                "/api/2.0/mlflow/runs/search",
                json={"experiment_ids": [experiment_id], "max_results": 100},
            )
        )["runs"]
        kinds = {
            run["info"]["run_id"]: {t["key"]: t["value"] for t in run["data"].get("tags", [])}.get(
                "flowscope.kind"
            )
            for run in runs
        }
        [study_run_id] = [run_id for run_id, kind in kinds.items() if kind == "tuning"]
        run_id = next(r for r in job["run_ids"] if kinds.get(r) == "training")
        _ok(alice.post("/api/2.0/mlflow/registered-models/create", json={"name": MODEL}))
        version = _ok(
            alice.post(
                "/api/2.0/mlflow/model-versions/create",
                json={"name": MODEL, "source": f"runs:/{run_id}/model", "run_id": run_id},
            )
        )["model_version"]["version"]
        spare_experiment_id = _ok(
            alice.post("/api/2.0/mlflow/experiments/create", json={"name": SPARE_EXPERIMENT})
        )["experiment_id"]
        spare_run_id = _ok(
            alice.post("/api/2.0/mlflow/runs/create", json={"experiment_id": spare_experiment_id})
        )["run"]["info"]["run_id"]
        _ok(alice.post("/api/2.0/mlflow/registered-models/create", json={"name": SPARE_MODEL}))
        _ok(
            alice.post(
                "/api/2.0/mlflow/model-versions/create",
                json={"name": SPARE_MODEL, "source": f"runs:/{run_id}/model", "run_id": run_id},
            )
        )
        dataset_id = _ok(
            alice.post(
                "/flowscope/api/datasets",
                files={"file": ("alice-secret-data.csv", b"x,y\n1,0\n2,1\n3,0\n4,1\n")},
            ),
            201,
        )["dataset_id"]
    made = {
        f"{user[0]}-{scope}": _token(url, user, scope)
        for user in (ALICE, BOB)
        for scope in ("read", "write")
    }
    return AuthWorld(
        server=server,
        database=database,
        experiment_id=experiment_id,
        run_id=run_id,
        study_run_id=study_run_id,
        job_id=job_id,
        model_version=str(version),
        dataset_id=dataset_id,
        alice_token_id=made["alice-read"]["token_id"],
        bob_token_id=made["bob-read"]["token_id"],
        spare_experiment_id=spare_experiment_id,
        spare_run_id=spare_run_id,
        tokens={name: token["token"] for name, token in made.items()},
    )


def server_routes(world: AuthWorld) -> list[dict[str, Any]]:
    """Every route of the server's app, read from the app built as a worker builds it
    (:mod:`tests.security.auth_routes`), in the server's environment."""
    server = world.server
    env = server.environment()
    repository = str(Path(__file__).resolve().parents[2])  # for ``tests.security``
    env["PYTHONPATH"] = os.pathsep.join([repository, env["PYTHONPATH"]])
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.security.auth_routes",
            server.backend_store_uri,
            server.artifacts_destination,
        ],
        env=env,
        cwd=server.root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if answer.returncode != 0:
        raise AssertionError(f"the routes could not be listed: {answer.stderr[-2000:]}")
    return list(json.loads(answer.stdout))


@pytest.fixture(scope="module")
def auth_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthWorld]:
    """One ``flowscope server --auth`` per test module, seeded by :func:`seed`."""
    with throwaway_postgres("flowscope_auth") as database:
        server = AuthServer(tmp_path_factory.mktemp("auth-server"), database)
        server.start()
        try:
            yield seed(server, database)
        finally:
            server.stop()
