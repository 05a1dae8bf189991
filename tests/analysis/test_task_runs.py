"""A task's runs through one reader: the kind is chosen before ``limit`` is counted, on the
SQL store, on the client store forced on the same database, and on a real tracking server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from flowscope.analysis import list_task_runs
from flowscope.analysis.query import ClientRunStore, RunStore, SqlRunStore, reading_runs
from flowscope.analysis.task_runs import task_experiment_ids
from flowscope.config import Settings
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.tracking.kinds import KINDS
from tests.conftest import make_settings
from tests.servers import MlflowServer

T0 = 1_700_000_000_000
# Oldest first. Both trials come before everything else, so the newest runs of the task are
# never trials: a reader that cuts at ``limit`` before choosing the kind finds no trial.
SEED = [
    ("trial", "trial-1"),
    ("trial", "trial-2"),
    (None, "plain"),  # a plain MLflow run: training
    ("inference", "window-1"),
    ("evaluation", "evaluation-1"),
    ("tuning", "study"),
    ("training", "train-1"),
    ("inference", "window-2"),
    ("training", "train-2"),
    ("evaluation", "evaluation-2"),
    ("tuning", "study-2"),
]


@dataclass
class Seeded:
    settings: Settings
    task: str  # unique: the PostgreSQL database is shared by the session's tests
    newest_first: dict[str | None, list[str]]  # run names of each kind (None: every run)


def seed(settings: Settings) -> Seeded:
    """The runs of SEED through plain MlflowClient: inference runs in ``<task>-inference``,
    the rest in ``<task>``, one second apart, and one run of another task."""
    client = MlflowClient(settings.tracking_uri)
    task = f"limits-{uuid.uuid4().hex[:8]}"
    main = client.create_experiment(task)
    inference = client.create_experiment(f"{task}-inference")
    other = client.create_experiment(f"{task}-other")
    newest_first: dict[str | None, list[str]] = {kind: [] for kind in (None, *KINDS)}
    for second, (kind, name) in enumerate(SEED):
        tags = {} if kind is None else {"flowscope.kind": kind}
        experiment = inference if kind == "inference" else main
        run = client.create_run(experiment, start_time=T0 + second * 1000, tags=tags, run_name=name)
        client.set_terminated(run.info.run_id, end_time=T0 + second * 1000 + 500)
        newest_first[kind or "training"].insert(0, name)
        newest_first[None].insert(0, name)
    client.create_run(other, start_time=T0 + 10**6, tags={"flowscope.kind": "trial"})
    return Seeded(settings, task, newest_first)


def _names(store: RunStore, seeded: Seeded, **query: Any) -> list[str]:
    rows = list_task_runs(store, seeded.settings, seeded.task, **query)
    return [str(row["run_name"]) for row in rows]


def check_every_kind_and_limit(store: RunStore, seeded: Seeded) -> None:
    """Each kind (and all kinds) with limit 1, 2, one past its count, and none."""
    for kind in (None, *KINDS):
        expected = seeded.newest_first[kind]
        assert expected, kind
        for limit in (1, 2, len(expected) + 1, None):
            got = _names(store, seeded, kind=kind, limit=limit)
            assert got == expected[:limit], (kind, limit)


@pytest.fixture
def seeded(tmp_path: Path, store_uri: str) -> Seeded:
    return seed(make_settings(tmp_path, store_uri))


@pytest.fixture
def sql_store(seeded: Seeded) -> Iterator[SqlRunStore]:
    store = SqlRunStore(seeded.settings)
    yield store
    store.close()


def test_limit_counts_runs_of_the_kind_asked_on_the_sql_store(
    seeded: Seeded, sql_store: SqlRunStore
) -> None:
    check_every_kind_and_limit(sql_store, seeded)


def test_limit_counts_runs_of_the_kind_asked_on_the_client_store(seeded: Seeded) -> None:
    check_every_kind_and_limit(ClientRunStore(seeded.settings), seeded)


def test_two_trials_and_limit_one_give_the_newest_trial(
    seeded: Seeded, sql_store: SqlRunStore
) -> None:
    """The bug the older reader had: it cut at ``limit`` runs, then kept the trials."""
    for store in (sql_store, ClientRunStore(seeded.settings)):
        assert _names(store, seeded, kind="trial", limit=1) == ["trial-2"]


@pytest.mark.server
def test_limit_on_a_tracking_server(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    seeded = seed(make_settings(tmp_path, mlflow_server.url))
    with reading_runs(seeded.settings) as store:
        assert isinstance(store, ClientRunStore)
        check_every_kind_and_limit(store, seeded)


def test_filters_and_orders_apply_with_the_kind(seeded: Seeded, sql_store: SqlRunStore) -> None:
    for store in (sql_store, ClientRunStore(seeded.settings)):
        assert _names(store, seeded, where="attributes.run_name LIKE 'train-%'") == [
            "train-2",
            "train-1",
        ]
        oldest = _names(store, seeded, kind="training", order_by=["attributes.start_time ASC"])
        assert oldest == ["plain", "train-1", "train-2"]
        assert _names(store, seeded, kind="inference", where="run_name = 'window-1'") == [
            "window-1"
        ]


def test_a_task_is_its_experiment_and_its_inference_sibling(
    seeded: Seeded, sql_store: SqlRunStore
) -> None:
    client = MlflowClient(seeded.settings.tracking_uri)
    names = {
        experiment_id: client.get_experiment(experiment_id).name
        for experiment_id in task_experiment_ids(sql_store, seeded.settings, seeded.task)
    }
    assert sorted(names.values()) == [seeded.task, f"{seeded.task}-inference"]
    # predictions logged for a task trained elsewhere: only the inference experiment exists
    client.create_experiment(f"served-{seeded.task}-inference")
    only = task_experiment_ids(sql_store, seeded.settings, f"served-{seeded.task}")
    assert [client.get_experiment(i).name for i in only] == [f"served-{seeded.task}-inference"]
    for store in (sql_store, ClientRunStore(seeded.settings)):
        with pytest.raises(NotFoundError, match="no experiment named 'nothing'"):
            list_task_runs(store, seeded.settings, "nothing")
        with pytest.raises(FlowscopeError, match="limit must be 1 or more"):
            list_task_runs(store, seeded.settings, seeded.task, limit=0)
        with pytest.raises(FlowscopeError, match="unknown run kind 'study'"):
            list_task_runs(store, seeded.settings, seeded.task, kind="study")
    # a deleted sibling is not part of the task
    sibling = client.get_experiment_by_name(f"{seeded.task}-inference")
    client.delete_experiment(sibling.experiment_id)
    assert len(task_experiment_ids(sql_store, seeded.settings, seeded.task)) == 1
