"""Many short runs from one courier: each run exactly as its own writer would leave it,
several to a transaction, a long run live while it goes, a replay creating nothing twice."""

from __future__ import annotations

import math
from pathlib import Path

from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.mlflow_client import client_for
from flowscope.tracking.courier import Courier
from flowscope.tracking.journal import journal_paths
from flowscope.tracking.run import Run, start_run
from flowscope.tracking.store import LOCAL_ID_TAG, StoreAccess
from flowscope.tracking.sync import sync
from tests.conftest import make_settings


def _record(run: Run, index: int) -> None:
    """The records of a short run: params, stepped and final metrics (NaN and a repeat
    included), tags, then its end."""
    run.log_params({"x": index, "name": f"trial {index}"})
    for step in range(5):
        value = 1.0 / (step + 1 + index)
        run.log_metrics({"intermediate": value}, step=step, timestamp=1000 + step)
    run.log_metrics({"intermediate": 0.5}, step=2, timestamp=1002)  # the same step again
    run.log_metrics({"value": index * 0.1, "odd": math.nan}, timestamp=2000)
    run.set_tags({"state": "COMPLETE", "index": index})
    run.set_tags({"state": "PRUNED" if index % 2 else "COMPLETE"})  # a tag set twice
    run.end("KILLED" if index % 2 else "FINISHED", timeout=0)


def _comparable(client: MlflowClient, run_id: str) -> dict:
    """A run as a user of MLflow sees it, without what differs between any two runs."""
    run = client.get_run(run_id)
    tags = {k: v for k, v in run.data.tags.items() if k not in (LOCAL_ID_TAG,)}
    histories = {
        key: sorted(
            (p.step, p.timestamp, "nan" if math.isnan(p.value) else p.value)
            for p in client.get_metric_history(run_id, key)
        )
        for key in run.data.metrics
    }
    return {
        "name": run.info.run_name,
        "status": run.info.status,
        "lifecycle": run.info.lifecycle_stage,
        "user": run.info.user_id,
        "ended": run.info.end_time is not None and run.info.end_time >= run.info.start_time,
        "artifacts": run.info.artifact_uri.endswith(f"/{run_id}/artifacts"),
        "params": run.data.params,
        "tags": tags,
        "latest": {k: ("nan" if math.isnan(v) else v) for k, v in run.data.metrics.items()},
        "histories": histories,
    }


def _runs(settings: Settings, task: str) -> list:
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(task)
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], max_results=1000)


def test_courier_runs_equal_writer_runs(tmp_path: Path, store_uri: str) -> None:
    settings = make_settings(tmp_path, store_uri)
    parent = start_run("courier", run_name="parent", kind="tuning", settings=settings)
    assert parent.run_id is not None
    courier = Courier(StoreAccess(settings), max_backoff=0.5)
    ours = [
        start_run("courier", f"r{i}", "trial", parent=parent, settings=settings, courier=courier)
        for i in range(30)
    ]
    for index, run in enumerate(ours):
        _record(run, index)
    theirs = []
    for index in range(30):  # each by its own writer, one after the other
        run = start_run("courier", f"r{index}", "trial", parent=parent, settings=settings)
        _record(run, index)
        assert run._writer is not None and run._writer.wait(60)
        theirs.append(run)
    assert courier.wait(60)
    parent.end()
    client = MlflowClient(store_uri)
    for a, b in zip(ours, theirs, strict=True):
        assert a.run_id and b.run_id and a.run_id != b.run_id
        assert _comparable(client, a.run_id) == _comparable(client, b.run_id)
        assert client.get_run(a.run_id).data.tags["mlflow.parentRunId"] == parent.run_id
    assert len(_runs(settings, "courier")) == 61  # each run once
    assert journal_paths(settings.journal_dir) == []
    # plain MLflow finds them by what they hold
    found = client.search_runs(
        [client.get_experiment_by_name("courier").experiment_id],
        "params.x = '3' and metrics.value > 0.2 and tags.state = 'PRUNED'",
    )
    assert len(found) == 2  # the courier's r3 and the writer's


def test_finished_runs_share_transactions(settings: Settings) -> None:
    courier = Courier(StoreAccess(settings), max_backoff=0.5)
    transactions = []
    courier.access.experiment_id(settings.experiment_name("batched", "trial"))
    store = courier.access.store
    original = store.ManagedSessionMaker

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        transactions.append(kwargs.get("read_only", True))
        return original(*args, **kwargs)

    store.ManagedSessionMaker = counted
    try:
        with courier.held():  # every run ends before the courier sees one
            runs = [
                start_run("batched", f"r{i}", "trial", settings=settings, courier=courier)
                for i in range(40)
            ]
            for index, run in enumerate(runs):
                _record(run, index)
        assert courier.wait(60)
    finally:
        store.ManagedSessionMaker = original
    assert len(_runs(settings, "batched")) == 40
    assert transactions.count(False) == 1  # one for the 40 runs, not four per run


def test_a_long_run_is_delivered_while_it_goes(settings: Settings) -> None:
    client = client_for(settings)  # the store exists before the courier's first request
    courier = Courier(StoreAccess(settings), live_after=0.0, max_backoff=0.5)
    run = start_run("live", "long", "trial", settings=settings, courier=courier)
    run.log_metrics({"loss": 1.0}, step=0)
    assert run.flush(60), "the running run never reached the store"  # delivered as it goes
    assert run.run_id is not None and "loss" in client.get_run(run.run_id).data.metrics
    assert client.get_run(run.run_id).info.status == "RUNNING"
    run.log_artifact(__file__, "code")
    run.end()
    stored = client.get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(run.run_id, "code")] == [
        f"code/{Path(__file__).name}"
    ]


def test_a_run_with_artifacts_goes_record_by_record(settings: Settings) -> None:
    courier = Courier(StoreAccess(settings), max_backoff=0.5)
    run = start_run("artifacts", "short", "trial", settings=settings, courier=courier)
    run.log_dict({"a": 1}, "summary/a.json")
    run.log_metrics({"value": 2.0})
    run.end()
    client = MlflowClient(settings.tracking_uri)
    assert run.run_id is not None
    assert client.get_run(run.run_id).data.metrics == {"value": 2.0}
    assert [a.path for a in client.list_artifacts(run.run_id, "summary")] == ["summary/a.json"]


def test_a_replay_after_a_committed_batch_creates_nothing_twice(settings: Settings) -> None:
    """The process dies after the transaction and before removing the journals: sync
    finds each run by its local id and leaves it as it was."""
    courier = Courier(StoreAccess(settings), max_backoff=0.5)
    with courier.held():  # the courier never gets to these runs
        runs = [
            start_run("replay", f"r{i}", "trial", settings=settings, courier=courier)
            for i in range(3)
        ]
        for index, run in enumerate(runs):
            _record(run, index)
        wholes = [courier._whole_run(run._writer, {}) for run in runs]  # type: ignore[arg-type]
        from flowscope.tracking import fastpath

        created, existing = fastpath.create_finished_runs(
            courier.access.store, wholes, local_id_tag=LOCAL_ID_TAG
        )
        assert existing == set() and len(created) == 3
        client = MlflowClient(settings.tracking_uri)
        before = {c: _comparable(client, run_id) for c, (run_id, _) in created.items()}
        for run in runs:  # as if this process died: the journals stay for sync
            run._writer.journal.close()  # type: ignore[union-attr]
        courier._handles.clear()
    result = sync(settings)
    assert not result.failed and len(result.delivered) == 3
    assert len(_runs(settings, "replay")) == 3
    for local_id, (run_id, _) in created.items():
        assert _comparable(client, run_id) == before[local_id]
    again, existing = fastpath.create_finished_runs(
        courier.access.store, wholes, local_id_tag=LOCAL_ID_TAG
    )
    assert again == {} and existing == set(created)
