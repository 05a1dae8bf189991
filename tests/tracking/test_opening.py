"""A new store is created once, under a lock, whole or not at all, whoever opens it first:
a process killed in the middle of MLflow's migrations leaves no store, and a second opener
waits for the first instead of migrating the same file in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowscope.config import Settings
from flowscope.mlflow_client import client_for
from flowscope.tracking.opening import ensure_store
from tests.conftest import make_settings
from tests.tracking import workers


def _experiments(settings: Settings) -> list[str]:
    """What a complete store answers; a half-migrated one fails to open."""
    return sorted(e.name for e in client_for(settings).search_experiments())


def _drafts(database: Path) -> list[Path]:
    return list(database.parent.glob(f".{database.name}.*.creating"))


@pytest.mark.slow
def test_a_process_killed_mid_migration_leaves_no_store_and_the_next_creates_it(
    tmp_path: Path, settings: Settings, sqlite_uri: str
) -> None:
    database = Path(sqlite_uri.removeprefix("sqlite:///"))
    marker = tmp_path / "held"
    env = workers.holding_creation(workers.environment(tmp_path, sqlite_uri), marker)
    creator = workers.start(env, "open", "sdk")
    workers.wait_until_held(creator, marker)
    assert not database.exists() and _drafts(database)  # the migrations run beside it
    creator.kill()
    creator.wait(timeout=30)
    assert not database.exists()

    ensure_store(settings)
    assert _experiments(settings) == ["Default"]
    assert not _drafts(database)  # the dead process's draft is cleared away


@pytest.mark.slow
@pytest.mark.parametrize("via", ["sdk", "client"])
def test_an_opener_waits_for_the_creation_in_progress_and_never_sees_it_half_made(
    tmp_path: Path, settings: Settings, sqlite_uri: str, via: str
) -> None:
    """A second process opening a store that another is creating (the SDK's writer, or
    MLflow's client as the CLI, the registry and the prediction service use it) waits for
    the lock instead of running the migrations in place; when the first dies, the second
    creates the store whole in its turn."""
    database = Path(sqlite_uri.removeprefix("sqlite:///"))
    env = workers.environment(tmp_path, sqlite_uri)
    first, second = tmp_path / "first-held", tmp_path / "second-held"
    creator = workers.start(workers.holding_creation(env, first), "open", "sdk")
    workers.wait_until_held(creator, first)
    opener = workers.start(workers.holding_creation(env, second), "open", via)
    creator.kill()
    creator.wait(timeout=30)
    workers.wait_until_held(opener, second)  # the second creates the store, beside it
    assert not database.exists()
    workers.release(second)
    out, err = opener.communicate(timeout=120)
    assert opener.returncode == 0, err[-3000:]
    assert out.split() == ["opened", "Default"]
    assert _experiments(settings) == ["Default"]
    assert not _drafts(database)


def test_a_separate_sqlite_registry_is_created_too(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'runs.db'}",
        registry_uri=f"sqlite:///{tmp_path / 'models.db'}",
    )
    client = client_for(settings)
    client.create_registered_model("m")
    assert [m.name for m in client.search_registered_models()] == ["m"]
    assert (tmp_path / "runs.db").stat().st_size > 0 and (tmp_path / "models.db").stat().st_size > 0


def test_an_existing_store_is_opened_as_it_is(settings: Settings, sqlite_uri: str) -> None:
    client = client_for(settings)
    client.create_experiment("kept")
    database = Path(sqlite_uri.removeprefix("sqlite:///"))
    before = database.stat().st_ino
    ensure_store(settings)
    assert database.stat().st_ino == before
    assert _experiments(settings) == ["Default", "kept"]
