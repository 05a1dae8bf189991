"""``flowscope serve --auth``: a real service process reading the users, grants and tokens
that ``flowscope server --auth`` keeps (MLflow's auth store and flowscope's token table),
made here with MLflow's own store and flowscope's :class:`TokenStore`."""

from __future__ import annotations

import base64
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

from flowscope.auth import TokenStore
from flowscope.serving.app import create_serving_app
from flowscope.serving.guard import ServiceGuard
from flowscope.serving.server import _HANDOVER, app_from_environment
from tests.conftest import run_cli
from tests.moments import LONG_AGO, ManualClock
from tests.servers import FlowscopeServer
from tests.serving.conftest import Registry, inference_runs, iris_features, records

READER, READER_PASSWORD = "reader", "reader-passphrase-1"
STRANGER, STRANGER_PASSWORD = "stranger", "stranger-passphrase-2"


@dataclass
class Users:
    """The auth database, its two users' grants on ``model`` and their tokens."""

    uri: str
    model: str
    tokens: dict[str, str]


def basic(username: str, password: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_users(folder: Path, model: str) -> Users:
    """A reader with READ on ``model``, a stranger with nothing granted, and the reader's
    tokens: a read one, a write one, one expired a day ago, one revoked, one tampered."""
    uri = f"sqlite:///{folder / 'auth.db'}"
    users = SqlAlchemyStore()
    users.init_db(uri)
    users.create_user(READER, READER_PASSWORD)
    users.create_user(STRANGER, STRANGER_PASSWORD)
    users.create_registered_model_permission(model, READER, "READ")
    # the stranger has no grant: the server's default_permission, NO_PERMISSIONS, applies
    store = TokenStore(users.engine)
    two_days_ago = TokenStore(users.engine, clock=ManualClock(LONG_AGO))
    read = store.create(READER, "scoring", "read").token
    revoked = store.create(READER, "old", "read")
    store.revoke(revoked.info.token_id, READER)
    tokens = {
        "read": read,
        "write": store.create(READER, "pipeline", "write").token,
        "expired": two_days_ago.create(READER, "short", "read", expires_in_days=1).token,
        "revoked": revoked.token,
        "tampered": read[:-4] + ("aaaa" if not read.endswith("aaaa") else "bbbb"),
        "stranger": store.create(STRANGER, "theirs", "read").token,
    }
    users.engine.dispose()
    return Users(uri, model, tokens)


def service(folder: Path, registry: Registry, users: Users) -> FlowscopeServer:
    return FlowscopeServer(
        folder,
        registry.settings.tracking_uri,
        ["serve", f"{users.model}@champion", "--auth"],
        health_path="/health",
        settings={
            "autolog": "false",
            "auth_database_uri": users.uri,
            "default_permission": "NO_PERMISSIONS",
        },
        name="flowscope-serve-auth",
    )


def routes(registry: Registry, model: str) -> list[tuple[str, str]]:
    """Every (method, path) of the service's app, /health included."""
    app = create_serving_app(registry.settings, f"{model}/1")  # built, never started
    return sorted(
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", ()) or ()
        if method != "HEAD"
    )


def expected_labels(registry: Registry, model: str, frame: Any) -> list[Any]:
    """What plain MLflow's pyfunc answers for ``frame``."""
    uri = MlflowClient(registry.settings.tracking_uri).get_model_version_download_uri(model, "1")
    return list(mlflow.pyfunc.load_model(uri).predict(frame))


def test_only_readers_of_the_model_are_served_and_only_their_predictions_recorded(
    registry: Registry, tmp_path: Path
) -> None:
    name = registry.fresh("random_forest")
    users = make_users(tmp_path, name)
    frame = iris_features().sample(10, random_state=3)
    rows = records(frame)
    every_route = routes(registry, name)
    assert ("GET", "/health") in every_route and ("POST", "/invocations") in every_route
    server = service(tmp_path / "serve", registry, users)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:

            def call(method: str, path: str, headers: dict[str, str] | None = None) -> Any:
                body = {"inputs": rows} if path == "/invocations" else rows
                if method == "GET":
                    return client.get(path, headers=headers)
                return client.request(method, path, json=body, headers=headers)

            anonymous = {route: call(*route) for route in [*every_route, ("GET", "/nowhere")]}
            refused = {
                label: call("POST", "/predict", headers)
                for label, headers in {
                    "stranger by password": basic(STRANGER, STRANGER_PASSWORD),
                    "stranger by token": bearer(users.tokens["stranger"]),
                    "wrong password": basic(READER, "not-the-passphrase"),
                    "unknown user": basic("nobody", READER_PASSWORD),
                    "not base64": {"Authorization": "Basic !!!"},
                    "no colon": {"Authorization": "Basic " + base64.b64encode(b"x").decode()},
                    "other scheme": {"Authorization": "Digest username=reader"},
                    "expired token": bearer(users.tokens["expired"]),
                    "revoked token": bearer(users.tokens["revoked"]),
                    "tampered token": bearer(users.tokens["tampered"]),
                    "not a token": bearer("abc"),
                }.items()
            }
            refused_invocation = call("POST", "/invocations", basic(STRANGER, STRANGER_PASSWORD))
            by_password = call("POST", "/predict", basic(READER, READER_PASSWORD))
            by_password_again = call("POST", "/predict", basic(READER, READER_PASSWORD))
            by_read_token = call("POST", "/invocations", bearer(users.tokens["read"]))
            by_write_token = call("POST", "/invocations", bearer(users.tokens["write"]))
            reads = {
                path: client.get(path, headers=bearer(users.tokens["read"]))
                for path in ("/model", "/ping", "/version", "/metrics", "/openapi.json")
            }
    finally:
        code = server.terminate()  # a graceful stop writes the open window
    assert code in (0, -signal.SIGTERM)

    for (method, path), answer in anonymous.items():
        if path == "/health":
            assert answer.status_code == 200, answer.text
            continue
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["WWW-Authenticate"].startswith("Basic "), (method, path)
        assert "prediction" not in answer.text and name not in answer.text, (method, path)
    assert anonymous[("POST", "/invocations")].json()["error_code"] == "UNAUTHENTICATED"
    assert anonymous[("POST", "/predict")].json()["ok"] is False

    for label, answer in refused.items():
        expected = 403 if label.startswith("stranger") else 401
        assert answer.status_code == expected, (label, answer.text)
        assert "predictions" not in answer.json(), label
        assert ("WWW-Authenticate" in answer.headers) == (expected == 401), label
    assert "read" in refused["stranger by password"].json()["error"]
    assert "expired" in refused["expired token"].json()["error"]
    assert "revoked" in refused["revoked token"].json()["error"]
    assert refused_invocation.status_code == 403
    assert refused_invocation.json()["error_code"] == "PERMISSION_DENIED"

    labels = expected_labels(registry, name, frame)
    for answer in (by_password, by_password_again):
        assert answer.status_code == 200, answer.text
        assert [row["prediction"] for row in answer.json()["predictions"]] == labels
    for answer in (by_read_token, by_write_token):
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": labels}
    assert all(answer.status_code == 200 for answer in reads.values()), reads
    assert reads["/model"].json()["name"] == name

    # the monitor recorded the 40 authorised rows, and nothing of the refused requests
    (run,) = inference_runs(registry.settings, name)
    assert run.data.metrics["samples"] == 40
    assert run.data.metrics.get("errors", 0) == 0


def test_serve_with_auth_refuses_to_start_without_the_auth_tables(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """It only reads the auth store: no tables, no start, and nothing created."""
    name = registry.fresh("random_forest")
    uri = registry.settings.tracking_uri
    missing = tmp_path / "nowhere.db"
    monkeypatch.setenv("FLOWSCOPE_AUTH_DATABASE_URI", f"sqlite:///{missing}")
    code, out, err = run_cli(capsys, "serve", f"{name}@champion", "--auth", "--tracking-uri", uri)
    assert code == 1 and "serving" not in out
    assert err.strip().splitlines() == [
        "error: auth is on but the auth database has no users: start `flowscope server "
        "--auth` on it once (it creates the tables and the first admin), or set "
        "auth_database_uri (FLOWSCOPE_AUTH_DATABASE_URI) to the server's"
    ]
    assert not missing.exists()

    # by default the users are in the tracking database, which has none here
    monkeypatch.delenv("FLOWSCOPE_AUTH_DATABASE_URI")
    monkeypatch.setenv("FLOWSCOPE_AUTH", "true")
    code, out, err = run_cli(capsys, "serve", f"{name}@champion", "--tracking-uri", uri)
    assert code == 1 and "auth database has no users" in err
    assert "users" not in _tables(uri)


def _tables(uri: str) -> set[str]:
    engine = sa.create_engine(uri)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_workers_get_the_guard_and_need_no_secret_key(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = registry.fresh("random_forest")
    users = make_users(tmp_path, name)
    settings = registry.using(auth=True, auth_database_uri=users.uri, secret_key=None)
    handover = {
        "model": f"{name}/1",
        "host": "127.0.0.1",
        "settings": settings.model_dump(mode="json"),
    }
    monkeypatch.setenv(_HANDOVER, json.dumps(handover))
    app = app_from_environment()  # built, never started
    (guard,) = [m for m in app.user_middleware if m.cls is ServiceGuard]
    assert guard.kwargs["model_name"] == name


def test_decisions_and_tokens_are_trusted_for_the_cache_time_only(tmp_path: Path) -> None:
    """A request that hits the caches costs no query; a grant taken away or a token
    revoked on the server applies here once ``cache_seconds`` have passed."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from flowscope.auth import Authenticator, AuthServices

    users = make_users(tmp_path, "churn")
    store = SqlAlchemyStore()
    store.init_db(users.uri)
    clock = ManualClock()
    tokens = TokenStore(store.engine, clock)
    services = AuthServices(
        users=store,
        tokens=tokens,
        authenticator=Authenticator(store, tokens, None, cache_seconds=10, clock=clock),
        default_permission="NO_PERMISSIONS",
    )
    inner = Starlette(
        routes=[Route("/predict", lambda r: PlainTextResponse("ok"), methods=["POST"])]
    )
    guard = ServiceGuard(inner, services, "churn", cache_seconds=10, clock=clock)

    async def statuses(*headers: dict[str, str]) -> list[int]:
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            return [(await client.post("/predict", headers=h)).status_code for h in headers]

    token = bearer(users.tokens["read"])
    password = basic(READER, READER_PASSWORD)
    assert asyncio.run(statuses(token, password)) == [200, 200]
    store.delete_registered_model_permission("churn", READER)
    tokens.revoke(users.tokens["read"][4:].split("_")[0], READER)
    queries: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    assert asyncio.run(statuses(token, password)) == [200, 200]  # still trusted
    assert queries == []  # nor asked: dictionary lookups only
    clock.now += 10
    assert asyncio.run(statuses(token, password)) == [401, 403]
    assert queries  # asked again, on the same engine the listener watches
    store.engine.dispose()
