"""Hostile credentials against a real ``flowscope server --auth``: expired, revoked and
tampered tokens, malformed ``Authorization`` headers, tampered and forged session
cookies, form posts without their CSRF token or from another site, a read token on every
route that changes something, and the login form's wrong password and open redirects.
Each case asserts the answer and that nothing was written (runs, experiments, models,
users, tokens and jobs counted before and after)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from flowscope.auth.sessions import COOKIE, Sessions
from flowscope.auth.tokens import TokenStore
from tests.moments import LONG_AGO, ManualClock
from tests.security.auth_routes import Filler, each_request, request_key
from tests.server import auth_fixtures
from tests.server.auth_fixtures import ALICE, BOB, AuthWorld, basic, bearer, server_routes

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.slow]

auth_world = auth_fixtures.auth_world
PREFIX = "/flowscope"
CREATE = "/api/2.0/mlflow/experiments/create"
# one reading route of each app, and one that writes
PROBES = (
    ("GET", f"{PREFIX}/experiments.json"),
    ("POST", "/api/2.0/mlflow/experiments/search"),
    ("POST", CREATE),
    ("POST", f"{PREFIX}/api/tokens"),
)
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def unchanged(auth_world: AuthWorld) -> Iterator[None]:
    """The test's requests write nothing: every count is the same afterwards."""
    before = auth_world.counts()
    yield
    assert auth_world.counts() == before


def _refused_everywhere(world: AuthWorld, headers: dict[str, str], status: int = 401) -> None:
    with world.client(headers) as client:
        for method, path in PROBES:
            answer = client.request(method, path, json={"name": "written-by-an-attacker"})
            assert answer.status_code == status, (method, path, answer.text[:200])
            assert "set-cookie" not in answer.headers


# -- tokens ---------------------------------------------------------------------------


def test_an_expired_token_is_refused(auth_world: AuthWorld) -> None:
    """Made two days ago to last one day, through the token store with its clock set back
    (the server's clock is the real one)."""
    engine = sa.create_engine(auth_world.database)
    try:
        made = TokenStore(engine, clock=ManualClock(LONG_AGO))
        issued = made.create(ALICE[0], "expired", "write", expires_in_days=1)
    finally:
        engine.dispose()
    before = auth_world.counts()
    with auth_world.client(bearer(issued.token)) as client:
        answer = client.get(f"{PREFIX}/experiments.json")
    assert answer.status_code == 401
    assert "expired" in answer.json()["error"]
    _refused_everywhere(auth_world, bearer(issued.token))
    assert auth_world.counts() == before


def test_a_revoked_token_is_refused_at_once(auth_world: AuthWorld) -> None:
    with auth_world.client(basic(ALICE)) as alice:
        made = alice.post(f"{PREFIX}/api/tokens", json={"name": "short-lived", "scope": "write"})
        token = made.json()["token"]
        with auth_world.client(bearer(token)) as client:  # works, and is now cached
            assert client.get(f"{PREFIX}/experiments.json").status_code == 200
        revoked = alice.post(f"{PREFIX}/api/tokens/{made.json()['token_id']}/revoke")
        assert revoked.status_code == 200
    before = auth_world.counts()
    _refused_everywhere(auth_world, bearer(token))
    assert auth_world.counts() == before


def _tampered(world: AuthWorld) -> dict[str, str]:
    token = world.tokens["alice-write"]
    token_id, secret = token.removeprefix("fst_").split("_", 1)
    bob_id = world.tokens["bob-write"].removeprefix("fst_").split("_", 1)[0]
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    return {
        "one character changed": f"fst_{token_id}_{flipped}",
        "truncated": token[:-8],
        "secret removed": f"fst_{token_id}_",
        "wrong prefix": "fsx_" + token.removeprefix("fst_"),
        "no prefix": token.removeprefix("fst_"),
        "another user's id with own secret": f"fst_{bob_id}_{secret}",
        "an id that is not alphanumeric": f"fst_{token_id}'--_{secret}",
    }


@pytest.mark.parametrize(
    "case",
    [
        "one character changed",
        "truncated",
        "secret removed",
        "wrong prefix",
        "no prefix",
        "another user's id with own secret",
        "an id that is not alphanumeric",
    ],
)
def test_a_tampered_token_is_refused(auth_world: AuthWorld, unchanged: None, case: str) -> None:
    _refused_everywhere(auth_world, bearer(_tampered(auth_world)[case]))


# -- malformed Authorization headers ------------------------------------------------


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("{token}", id="no scheme"),
        pytest.param("Token {token}", id="unknown scheme"),
        pytest.param("Basic !!!not-base64!!!", id="basic not base64"),
        pytest.param(f"Basic {_b64('alice')}", id="basic without colon"),
        pytest.param(f"Basic {_b64(':' + ALICE[1])}", id="basic without user"),
        pytest.param(f"Basic {_b64('alice:wrong-password-here')}", id="basic wrong password"),
        pytest.param(f"Basic {_b64('nobody:' + ALICE[1])}", id="basic unknown user"),
        pytest.param("Bearer", id="bearer without token"),
        pytest.param("Bearer " + "A" * 6000, id="bearer long"),
    ],
)
def test_a_malformed_authorization_header_is_refused(
    auth_world: AuthWorld, unchanged: None, header: str
) -> None:
    value = header.format(token=auth_world.tokens["alice-write"])
    _refused_everywhere(auth_world, {"Authorization": value})


def _raw_status(world: AuthWorld, request: bytes) -> int:
    """The status line's code for bytes sent as they are (httpx refuses to send NUL or a
    bare CR in a header, as a client should)."""
    with socket.create_connection(("127.0.0.1", world.server.port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"Bearer fst_abc\x00def", id="NUL"),
        pytest.param(b"Bearer fst_abc\rX-Injected: 1", id="bare CR"),
        pytest.param(b"Basic " + b"A" * 70_000, id="huge"),
    ],
)
def test_control_characters_and_huge_headers_are_refused(
    auth_world: AuthWorld, unchanged: None, value: bytes
) -> None:
    body = b'{"name": "written-by-an-attacker"}'
    request = (
        b"POST " + CREATE.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nAuthorization: "
        + value
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    assert _raw_status(auth_world, request) in (400, 401, 431)


# -- session cookies ------------------------------------------------------------------


@contextmanager
def _signed_in(world: AuthWorld, user: tuple[str, str] = ALICE) -> Iterator[httpx.Client]:
    """A client with a session cookie from the login form."""
    with world.client() as client:
        answer = client.post(
            f"{PREFIX}/login",
            data={"username": user[0], "password": user[1], "next": "/tokens"},
        )
        assert answer.status_code == 303, answer.text[:300]
        assert client.cookies.get(COOKIE)
        yield client


def _csrf(client: httpx.Client) -> str:
    page = client.get(f"{PREFIX}/tokens")
    assert page.status_code == 200
    found = CSRF_INPUT.search(page.text)
    assert found is not None
    return found.group(1)


def _cookie_header(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}"}


def test_a_tampered_or_forged_session_cookie_is_as_if_signed_out(
    auth_world: AuthWorld, unchanged: None
) -> None:
    with _signed_in(auth_world) as alice:
        real = alice.cookies[COOKIE]
    flipped = real[:-2] + ("AA" if real[-2:] != "AA" else "BB")
    wrong_key = Sessions("not the server's key", hours=8).issue("admin")[0]
    past = Sessions(auth_world.server.secret_key, hours=1, clock=ManualClock(LONG_AGO))
    expired = past.issue(ALICE[0])[0]
    payload, _, signature = real.rpartition(".")
    for name, value in {
        "one character changed": flipped,
        "signature removed": payload,
        "signed with another key, as the admin": wrong_key,
        "expired, signed with the server's key": expired,
        "garbage": "not-a-cookie",
    }.items():
        _refused_everywhere(auth_world, _cookie_header(value))
        with auth_world.client(_cookie_header(value)) as client:
            assert client.get("/api/2.0/mlflow/experiments/search").status_code == 401, name
    assert signature  # the cookie is signed


def test_signing_out_leaves_no_cookie(auth_world: AuthWorld) -> None:
    with _signed_in(auth_world) as alice:
        token = _csrf(alice)
        out = alice.post(f"{PREFIX}/logout", data={"csrf_token": token})
        assert out.status_code == 303
        assert COOKIE not in alice.cookies
        assert alice.get(f"{PREFIX}/experiments.json").status_code == 401


# -- CSRF -----------------------------------------------------------------------------


@pytest.fixture
def alice_session(auth_world: AuthWorld) -> Iterator[httpx.Client]:
    with _signed_in(auth_world) as client:
        yield client


def _post_token_form(client: httpx.Client, token: str | None, **kwargs: Any) -> httpx.Response:
    data = {"name": "made-by-a-form", "scope": "write", "expires_in_days": "1"}
    if token is not None:
        data["csrf_token"] = token
    return client.post(f"{PREFIX}/tokens", data=data, **kwargs)


def test_a_form_post_with_its_csrf_token_is_accepted(
    auth_world: AuthWorld, alice_session: httpx.Client
) -> None:
    """The control for the refusals below: the same post with the page's token."""
    before = auth_world.counts()
    answer = _post_token_form(alice_session, _csrf(alice_session))
    assert answer.status_code == 201
    assert auth_world.counts()["tokens"] == before["tokens"] + 1


def test_csrf_refusals(auth_world: AuthWorld, alice_session: httpx.Client) -> None:
    token = _csrf(alice_session)
    with _signed_in(auth_world) as other_session_of_alice, _signed_in(auth_world, BOB) as bob:
        tokens_of_others = {"another session of the same user": _csrf(other_session_of_alice)}
        tokens_of_others["bob's session"] = _csrf(bob)
    before = auth_world.counts()
    refused = {
        "no token": _post_token_form(alice_session, None),
        "wrong token": _post_token_form(alice_session, "0" * 64),
        "empty token": _post_token_form(alice_session, ""),
        **{
            name: _post_token_form(alice_session, other) for name, other in tokens_of_others.items()
        },
        "token in the query string only": _post_token_form(
            alice_session, None, params={"csrf_token": token}
        ),
        "another site's Origin": _post_token_form(
            alice_session, token, headers={"Origin": "https://evil.example"}
        ),
        "another site's Referer": _post_token_form(
            alice_session, token, headers={"Referer": "https://evil.example/page"}
        ),
        "Origin null": _post_token_form(alice_session, token, headers={"Origin": "null"}),
        "JSON without the token": alice_session.post(
            f"{PREFIX}/api/tokens", json={"name": "json", "scope": "write"}
        ),
        "MLflow's REST from another site": alice_session.post(
            CREATE, json={"name": "cross-site"}, headers={"Origin": "https://evil.example"}
        ),
        "MLflow's REST without Origin or Referer": alice_session.post(
            CREATE, json={"name": "no-origin"}
        ),
    }
    assert {name: answer.status_code for name, answer in refused.items()} == {
        name: 403 for name in refused
    }
    assert auth_world.counts() == before


def test_a_multipart_upload_without_its_token_first_is_refused(
    auth_world: AuthWorld, alice_session: httpx.Client
) -> None:
    token = _csrf(alice_session)
    csv = b"x,y\n1,0\n2,1\n"
    with auth_world.client(basic(ALICE)) as alice:
        datasets_before = alice.get(f"{PREFIX}/api/datasets").json()["datasets"]
    before = auth_world.counts()
    boundary = "boundary-of-the-test"
    late_token = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv.decode()}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    answers = {
        "token after the file": alice_session.post(
            f"{PREFIX}/api/datasets",
            content=late_token,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        ),
        "no token": alice_session.post(
            f"{PREFIX}/api/datasets", files={"file": ("b.csv", csv, "text/csv")}
        ),
        "the page's form, no token": alice_session.post(
            f"{PREFIX}/workbench/upload", files={"file": ("c.csv", csv, "text/csv")}
        ),
    }
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(answers, 403)
    assert auth_world.counts() == before
    with auth_world.client(basic(ALICE)) as alice:
        assert alice.get(f"{PREFIX}/api/datasets").json()["datasets"] == datasets_before


# -- a read token may only read -------------------------------------------------------

# Routes that take a POST but change nothing a read token may not: the dashboard's dry-run
# promotion preview and its predictions (READ on the model), signing in and out, and making
# another read token (a read token may not make a write one: its own test below).
READ_POSTS_OF_THE_DASHBOARD = {
    "POST /flowscope/models/{name}/preview",
    "POST /flowscope/api/models/{name}/{ref}/predict",
    "POST /flowscope/api/models/{name}/{ref}/predict/batch",
    "POST /flowscope/models/{name}/predict",
    "POST /flowscope/models/{name}/predict/batch",
    "POST /flowscope/login",
    "POST /flowscope/logout",
    "POST /flowscope/api/tokens",
    "POST /flowscope/tokens",
}
MLFLOW_READ_POSTS = re.compile(
    r"/(runs|experiments|registered-models|model-versions|logged-models|traces|datasets)/search$"
    r"|/metrics/get-history-bulk-interval$|^/graphql$"
)


def test_a_read_token_changes_nothing_anywhere(auth_world: AuthWorld) -> None:
    """Every route that takes a change, sent with alice's read token at alice's own
    resources (which her password may change): refused, and nothing written."""
    requests = [
        r
        for r in each_request(server_routes(auth_world))
        if r["method"] != "GET"
        and request_key(r["method"], r["path"]) not in READ_POSTS_OF_THE_DASHBOARD
        and not MLFLOW_READ_POSTS.search(r["path"])
        and not r["path"].endswith("/login")
    ]
    assert len(requests) > 200
    filler = Filler(auth_world)
    before = auth_world.counts()
    with auth_world.client(bearer(auth_world.tokens["alice-read"])) as reader:
        answered = {
            request_key(r["method"], r["path"]): filler.send(reader, r["method"], r["path"])
            for r in requests
        }
        made = reader.post(f"{PREFIX}/api/tokens", json={"name": "escalate", "scope": "write"})
    allowed = {
        key: (answer.status_code, answer.text[:160])
        for key, answer in answered.items()
        if answer.status_code not in (401, 403)
    }
    assert allowed == {}
    assert made.status_code == 403
    assert auth_world.counts() == before


# -- the login form -------------------------------------------------------------------


def test_a_wrong_password_is_refused_without_a_cookie(
    auth_world: AuthWorld, unchanged: None
) -> None:
    with auth_world.client() as client:
        for username, password in ((ALICE[0], "wrong-password-123"), ("nobody", ALICE[1])):
            answer = client.post(
                f"{PREFIX}/login", data={"username": username, "password": password}
            )
            assert answer.status_code == 401
            assert "set-cookie" not in answer.headers
            assert 'id="login-error"' in answer.text
        assert not client.cookies


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "http:evil.example",
        "/%2F%2Fevil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
    ],
)
def test_signing_in_never_redirects_off_site(auth_world: AuthWorld, target: str) -> None:
    with auth_world.client() as client:
        form = client.get(f"{PREFIX}/login", params={"next": target})
        assert form.status_code == 200
        found = re.search(r'name="next" value="([^"]*)"', form.text)
        assert found is not None
        inside = found.group(1)  # a path inside the dashboard
        assert inside.startswith("/") and not inside.startswith("//"), inside
        assert "\\" not in inside and httpx.URL(inside).host == "", inside
        answer = client.post(
            f"{PREFIX}/login",
            data={"username": ALICE[0], "password": ALICE[1], "next": target},
        )
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(f"{PREFIX}/"), location
    assert not location.startswith("//") and "\\" not in location
    assert httpx.URL(location).host == ""
