"""The dashboard with auth on, in process on a SQLite store: who gets in, what each user
sees and may change by MLflow's permissions, and the CSRF token on browser changes."""

from __future__ import annotations

import base64
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from tests.conftest import make_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORDS = {"admin": "admin-passphrase-1", "alice": "alice-passphrase", "bob": "bob-passphrase1"}


def basic(user: str) -> dict[str, str]:
    raw = f"{user}:{PASSWORDS[user]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


class World:
    def __init__(self, settings: Settings, app: Any) -> None:
        self.settings = settings
        self.app = app
        self.client = TestClient(app, raise_server_exceptions=False)
        self.services = app.state.auth
        self.mlflow = MlflowClient(settings.tracking_uri)

    def jobs(self) -> int:
        from flowscope.web.app_queue import job_queue_of

        return len(job_queue_of(self.app).all())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    from flowscope.web import create_app

    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        auth=True,
        secret_key="test-secret-key-not-for-production",
        jobs_embedded=False,
    )
    app = create_app(settings)
    users = app.state.auth.users
    users.create_user("admin", PASSWORDS["admin"], is_admin=True)
    users.create_user("alice", PASSWORDS["alice"])
    users.create_user("bob", PASSWORDS["bob"])
    client = MlflowClient(settings.tracking_uri)
    secret = client.create_experiment("alice-secret")
    shared = client.create_experiment("shared")
    users.create_experiment_permission(secret, "alice", "MANAGE")
    users.create_experiment_permission(secret, "bob", "DENY")
    for experiment in (secret, shared):
        run = client.create_run(experiment, run_name=f"run-of-{experiment}")
        client.log_metric(run.info.run_id, "accuracy", 0.9)
        client.set_terminated(run.info.run_id)
    world = World(settings, app)
    with world.client:
        yield world


def names(answer: Any) -> set[str]:
    return {e["name"] for e in answer.json()["experiments"]}


def test_anonymous_is_refused_and_the_browser_is_shown_the_login_form(world: World) -> None:
    page = world.client.get("/experiments")
    assert page.status_code == 401
    assert 'id="login-form"' in page.text
    assert world.client.get("/experiments.json").status_code == 401
    api = world.client.get("/api/jobs")
    assert api.status_code == 401 and api.json()["ok"] is False
    assert api.headers["www-authenticate"].startswith("Bearer")
    assert world.client.get("/login").status_code == 200


def test_each_user_sees_only_the_experiments_they_may_read(world: World) -> None:
    secret = world.mlflow.get_experiment_by_name("alice-secret").experiment_id
    alice = world.client.get("/experiments.json", headers=basic("alice"))
    bob = world.client.get("/experiments.json", headers=basic("bob"))
    assert {"alice-secret", "shared"} <= names(alice)
    assert "shared" in names(bob) and "alice-secret" not in names(bob)
    for path in (f"/experiments/{secret}", f"/experiments/{secret}/runs.csv"):
        assert world.client.get(path, headers=basic("alice")).status_code == 200
        refused = world.client.get(path, headers=basic("bob"))
        assert refused.status_code == 403, path
        assert "alice-secret" not in refused.text and "run-of" not in refused.text
    [run] = world.mlflow.search_runs([secret])
    assert world.client.get(f"/runs/{run.info.run_id}", headers=basic("bob")).status_code == 403
    compare = f"/compare?runs={run.info.run_id},{run.info.run_id}"
    assert world.client.get(compare, headers=basic("bob")).status_code == 403


def test_wrong_passwords_and_bad_headers_are_401_naming_why(world: World) -> None:
    wrong = {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()}
    assert world.client.get("/experiments", headers=wrong).status_code == 401
    for header in ("Basic %%%", "Basic " + base64.b64encode(b"nocolon").decode(), "Digest x"):
        answer = world.client.get("/api/jobs", headers={"Authorization": header})
        assert answer.status_code == 401, header
        assert answer.json()["error"]


def test_a_read_token_reads_but_changes_nothing_and_revoking_ends_it_at_once(
    world: World,
) -> None:
    made = world.client.post(
        "/api/tokens", json={"name": "ci", "scope": "read"}, headers=basic("alice")
    )
    assert made.status_code == 201, made.text
    bearer = {"Authorization": f"Bearer {made.json()['token']}"}
    assert world.client.get("/experiments.json", headers=bearer).status_code == 200
    before = world.jobs()
    train = {"dataset_id": "builtin:iris", "target": "species", "model_types": ["knn"]}
    refused = world.client.post("/api/jobs", json=train, headers=bearer)
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    escalate = world.client.post(
        "/api/tokens", json={"name": "w", "scope": "write"}, headers=bearer
    )
    assert escalate.status_code == 403
    assert world.jobs() == before
    assert len(world.services.tokens.owned_by("alice")) == 1
    token_id = made.json()["token_id"]
    assert (
        world.client.post(f"/api/tokens/{token_id}/revoke", headers=basic("bob")).status_code == 404
    )
    revoked = world.client.post(f"/api/tokens/{token_id}/revoke", headers=basic("alice"))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    after = world.client.get("/experiments.json", headers=bearer)
    assert after.status_code == 401 and "revoked" in after.json()["error"]


def test_training_needs_edit_on_the_experiment_and_a_new_one_is_its_creators(
    world: World,
) -> None:
    before = world.jobs()
    denied = {"dataset_id": "builtin:iris", "target": "species", "model_types": ["knn"]}
    refused = world.client.post(
        "/api/jobs", json={**denied, "task": "alice-secret"}, headers=basic("bob")
    )
    assert refused.status_code == 403, refused.text
    shared = world.client.post("/api/jobs", json={**denied, "task": "shared"}, headers=basic("bob"))
    assert shared.status_code == 403, shared.text  # READ by default is not EDIT
    assert world.jobs() == before
    made = world.client.post("/api/jobs", json={**denied, "task": "bobs-own"}, headers=basic("bob"))
    assert made.status_code == 201, made.text
    assert world.jobs() == before + 1
    experiment = world.mlflow.get_experiment_by_name("bobs-own")
    granted = world.services.users.get_experiment_permission(experiment.experiment_id, "bob")
    assert granted.permission == "MANAGE"
    job_id = made.json()["job_ids"][0]
    assert world.client.get(f"/api/jobs/{job_id}", headers=basic("bob")).status_code == 200
    # alice may not see bob's job (nothing granted on bobs-own, and default READ reads it)
    listed = world.client.get("/api/jobs", headers=basic("alice")).json()["jobs"]
    assert [job["job_id"] for job in listed] == [job_id]  # READ by default: she may read it


def login(world: World, user: str) -> str:
    """Sign in through the form; the CSRF token of the session's pages."""
    answer = world.client.post(
        "/login",
        data={"username": user, "password": PASSWORDS[user], "next": "/tokens"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/tokens"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    page = world.client.get("/tokens")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def test_a_browser_change_needs_its_sessions_csrf_token_from_this_site(world: World) -> None:
    token = login(world, "alice")
    form = {"name": "laptop", "scope": "read", "expires_in_days": "30"}
    assert world.client.post("/tokens", data=form).status_code == 403
    assert world.client.post("/tokens", data={**form, "csrf_token": "x" * 64}).status_code == 403
    foreign = world.client.post(
        "/tokens", data={**form, "csrf_token": token}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert world.services.tokens.owned_by("alice") == []
    made = world.client.post("/tokens", data={**form, "csrf_token": token})
    assert made.status_code == 201 and 'id="token-secret"' in made.text
    assert len(world.services.tokens.owned_by("alice")) == 1


def test_an_upload_carries_its_csrf_token_first(world: World) -> None:
    token = login(world, "alice")
    csv = ("data.csv", b"a,b\n1,2\n3,4\n", "text/csv")
    without = world.client.post("/workbench/upload", files={"file": csv})
    assert without.status_code == 403
    # the token after the file is not read: the file is never read for it
    late = world.client.post(
        "/workbench/upload", files=[("file", csv), ("csrf_token", (None, token))]
    )
    assert late.status_code == 403
    first = world.client.post(
        "/workbench/upload",
        files=[("csrf_token", (None, token)), ("file", csv)],
        follow_redirects=False,
    )
    assert first.status_code in (200, 303), first.text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example"])
def test_signing_in_never_sends_the_browser_to_another_site(world: World, target: str) -> None:
    answer = world.client.post(
        "/login",
        data={"username": "alice", "password": PASSWORDS["alice"], "next": target},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/experiments"


def test_a_wrong_password_sets_no_cookie(world: World) -> None:
    answer = world.client.post(
        "/login", data={"username": "alice", "password": "not-her-password"}, follow_redirects=False
    )
    assert answer.status_code == 401 and "set-cookie" not in answer.headers
    assert "wrong user name or password" in answer.text


def test_an_uploaded_data_set_is_its_uploaders_alone(world: World) -> None:
    csv = ("private.csv", b"x,y,label\n1,2,a\n3,4,b\n5,6,a\n7,8,b\n", "text/csv")
    made = world.client.post("/api/datasets", files={"file": csv}, headers=basic("alice"))
    assert made.status_code == 201, made.text
    dataset_id = made.json()["dataset_id"]

    def listed(user: str) -> set[str]:
        found = world.client.get("/api/datasets", headers=basic(user)).json()["datasets"]
        return {d["dataset_id"] for d in found}

    assert dataset_id in listed("alice") and dataset_id in listed("admin")
    assert dataset_id not in listed("bob") and "builtin:iris" in listed("bob")
    shown = world.client.get(f"/api/datasets/{dataset_id}", headers=basic("bob"))
    assert shown.status_code == 404 and "private" not in shown.text
    page = world.client.get(f"/workbench?dataset={dataset_id}", headers=basic("bob"))
    assert page.status_code == 404 and "private.csv" not in page.text
    before = world.jobs()
    train = {"dataset_id": dataset_id, "target": "label", "model_types": ["knn"], "task": "b"}
    assert world.client.post("/api/jobs", json=train, headers=basic("bob")).status_code == 404
    assert world.jobs() == before
    # the same bytes uploaded by bob: he has them, the data set is his too
    again = world.client.post("/api/datasets", files={"file": csv}, headers=basic("bob"))
    assert again.status_code == 201 and again.json()["dataset_id"] == dataset_id
    assert dataset_id in listed("bob")
