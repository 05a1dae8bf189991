"""API tokens: only a hash is kept, a token says who and what scope, and an expired,
revoked or altered one is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from flowscope.auth.tokens import TOKENS, TokenRefused, TokenStore
from flowscope.errors import FlowscopeError, NotFoundError
from tests.moments import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def tokens(tmp_path: Path, clock: ManualClock) -> TokenStore:
    return TokenStore(sa.create_engine(f"sqlite:///{tmp_path / 'auth.db'}"), clock)


def test_a_token_names_its_owner_and_scope_and_only_its_hash_is_kept(tokens: TokenStore) -> None:
    issued = tokens.create("alice", "laptop", "write", expires_in_days=30)
    info = tokens.verify(issued.token)
    assert (info.username, info.name, info.scope) == ("alice", "laptop", "write")
    with tokens._engine.connect() as conn:
        stored = conn.execute(sa.select(TOKENS)).one()._mapping
    secret = issued.token.rsplit("_", 1)[1]
    assert secret not in {str(value) for value in stored.values()}
    assert [t.token_id for t in tokens.owned_by("alice")] == [info.token_id]
    assert tokens.owned_by("bob") == []


def test_a_token_expires_at_its_time(tokens: TokenStore, clock: ManualClock) -> None:
    issued = tokens.create("alice", "ci", "read", expires_in_days=1)
    clock.now += 86_400 - 1
    assert tokens.verify(issued.token).username == "alice"
    clock.now += 1
    with pytest.raises(TokenRefused, match="expired"):
        tokens.verify(issued.token)


def test_a_revoked_token_is_refused_and_only_its_owner_or_an_admin_revokes_it(
    tokens: TokenStore,
) -> None:
    issued = tokens.create("alice", "old", "read", expires_in_days=None)
    with pytest.raises(NotFoundError):
        tokens.revoke(issued.info.token_id, "bob")
    assert tokens.verify(issued.token).revoked_at is None
    assert tokens.revoke(issued.info.token_id, "alice").revoked_at is not None
    with pytest.raises(TokenRefused, match="revoked"):
        tokens.verify(issued.token)
    other = tokens.create("alice", "other", "read")
    assert tokens.revoke(other.info.token_id, None).revoked_at is not None  # an admin


@pytest.mark.parametrize(
    "alter",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character of the secret
        lambda t: t[:-5],  # truncated
        lambda t: "ghp_" + t[4:],  # another kind of token
        lambda t: t.replace("fst_", "fst__"),
        lambda t: "fst_" + "0" * 16 + "_" + t.rsplit("_", 1)[1],  # an unknown id
        lambda t: "",
        lambda t: "fst_" + "x" * 5000,
    ],
)
def test_an_altered_token_is_refused(tokens: TokenStore, alter) -> None:  # type: ignore[no-untyped-def]
    issued = tokens.create("alice", "laptop", "write")
    with pytest.raises(TokenRefused):
        tokens.verify(alter(issued.token))


def test_another_users_id_with_ones_own_secret_is_refused(tokens: TokenStore) -> None:
    alice = tokens.create("alice", "a", "write")
    mallory = tokens.create("mallory", "m", "read")
    forged = f"fst_{alice.info.token_id}_{mallory.token.rsplit('_', 1)[1]}"
    with pytest.raises(TokenRefused):
        tokens.verify(forged)


@pytest.mark.parametrize(
    ("name", "scope", "days", "named"),
    [
        ("", "read", 30, "name"),
        ("x" * 101, "read", 30, "name"),
        ("ok", "admin", 30, "scope"),
        ("ok", "read", 0, "expires"),
        ("ok", "read", 100_000, "expires"),
    ],
)
def test_a_bad_token_request_names_the_problem_and_makes_nothing(
    tokens: TokenStore, name: str, scope: str, days: float, named: str
) -> None:
    with pytest.raises(FlowscopeError, match=named):
        tokens.create("alice", name, scope, days)
    assert tokens.owned_by("alice") == []
