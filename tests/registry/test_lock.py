"""The registry lock, and two promoters racing on one model, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.registry import LockBusyError, RegistryLock, decision_history, parse_policy, promote
from flowscope.registry.tags import LIFECYCLE_TAG, LOCK_SUFFIX
from flowscope.registry.versions import models_overview
from tests.conftest import make_settings
from tests.registry.helpers import HEART_POLICY, heart_versions, snapshot

# The shipped policy without its model guard, for models with unique names (the PostgreSQL
# database is shared by the whole session).
POLICY_TEXT = HEART_POLICY.read_text().replace("model: heart-disease\n", "")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_lock_admits_one_holder_and_names_it(settings: Settings) -> None:
    client = MlflowClient(settings.tracking_uri)
    first = RegistryLock(client, "m", holder="alice@host")
    first.acquire()
    second = RegistryLock(client, "m", holder="bob@host", wait=0.3, poll=0.05)
    with pytest.raises(LockBusyError, match="lock held by alice@host until"):
        second.acquire()
    first.release()
    with second:
        lock = client.get_registered_model(f"m{LOCK_SUFFIX}")
        assert lock.tags["flowscope.lock.holder"] == "bob@host"
        assert models_overview(settings)["models"] == []  # the lock is not shown as a model
    assert client.search_registered_models() == []


def test_an_expired_lock_is_broken(settings: Settings) -> None:
    client = MlflowClient(settings.tracking_uri)
    RegistryLock(client, "m", holder="crashed@host", ttl=-1).acquire()  # never released
    with RegistryLock(client, "m", holder="next@host") as lock:
        assert lock.held
    assert client.search_registered_models() == []


def test_a_promoter_that_finds_the_lock_taken_records_its_attempt_and_changes_nothing(
    settings: Settings,
) -> None:
    heart_versions(settings, "heart-disease")
    policy = parse_policy(POLICY_TEXT)
    client = MlflowClient(settings.tracking_uri)
    with RegistryLock(client, "heart-disease", holder="other@host"):
        before = snapshot(settings)
        with pytest.raises(LockBusyError, match="other@host"):
            promote(settings, "heart-disease", policy)
        assert snapshot(settings) == before
    [attempt] = decision_history(settings, "heart-disease")["decisions"]
    assert attempt["outcome"] == "busy" and "other@host" in attempt["summary"]


def _race(settings: Settings, name: str) -> tuple[list[object], list[Exception]]:
    policy = parse_policy(POLICY_TEXT)
    barrier = threading.Barrier(2)
    results: list[object] = []
    errors: list[Exception] = []

    def promoter(who: str) -> None:
        barrier.wait()
        try:
            results.append(promote(settings, name, policy, who=who))
        except LockBusyError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=promoter, args=(who,)) for who in ("a@one", "b@two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results, errors


def test_two_racing_promoters_leave_one_winner_and_both_attempts_recorded(
    store_uri: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, store_uri)
    name = unique("race")
    versions = heart_versions(settings, name)
    results, errors = _race(settings, name)
    applied = [r for r in results if r.outcome == "applied"]  # type: ignore[attr-defined]
    assert len(applied) == 1
    assert len(results) + len(errors) == 2
    history = decision_history(settings, name)
    assert sorted(d["outcome"] for d in history["decisions"]) in (
        ["applied", "busy"],
        ["applied", "no-op"],
    )
    client = MlflowClient(settings.tracking_uri)
    assert client.get_registered_model(name).aliases == {"production": int(versions["strong"])}
    assert client.get_model_version(name, versions["weak"]).tags[LIFECYCLE_TAG] == "archived"
    [span] = history["aliases"]["production"]
    assert span["run_id"] == applied[0].run_id  # type: ignore[attr-defined]
    lock = client.search_registered_models(f"name = '{name}{LOCK_SUFFIX}'")
    assert lock == []


@pytest.mark.postgres
def test_two_promoter_processes_on_postgresql(postgres_database: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, postgres_database)
    name = unique("procs")
    versions = heart_versions(settings, name)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_TEXT)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": postgres_database,
        "FLOWSCOPE_ARTIFACTS_DIR": str(tmp_path / "mlartifacts"),
        "FLOWSCOPE_AUTOLOG": "false",
        "FLOWSCOPE_SYNC_ON_START": "false",
    }
    command = [sys.executable, "-m", "flowscope.cli", "promote", name, "--policy", str(policy)]
    processes = [
        subprocess.Popen(
            command,
            env={**env, "FLOWSCOPE_JOURNAL_DIR": str(tmp_path / f"journal{index}")},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    finished = [process.communicate(timeout=180) for process in processes]
    codes = sorted(process.returncode for process in processes)
    outputs = " ".join(out + err for out, err in finished)
    assert codes in ([0, 0], [0, 1]), outputs
    if codes == [0, 1]:
        assert "another promotion of" in outputs
    history = decision_history(settings, name)
    assert sorted(d["outcome"] for d in history["decisions"]) in (
        ["applied", "busy"],
        ["applied", "no-op"],
    )
    client = MlflowClient(settings.tracking_uri)
    assert client.get_registered_model(name).aliases == {"production": int(versions["strong"])}
