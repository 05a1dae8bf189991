"""Nothing is lost: a dead tracking server, a killed training process, many writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

import flowscope
from tests.conftest import make_settings
from tests.servers import MlflowServer, free_port
from tests.tracking import workers
from tests.writers import metric_points


def _expected(steps: range, metrics: int) -> Counter[tuple[str, int, float]]:
    return Counter(
        (f"m{i}", step, float(step * 1000 + i)) for step in steps for i in range(metrics)
    )


@pytest.mark.server
@pytest.mark.slow
def test_server_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    """The server dies with requests in flight and training goes on logging; once it is
    back every point is there exactly once. (How long a log call takes meanwhile is
    measured in bench/logging.py, not asserted here.)"""
    server = MlflowServer(tmp_path / "server")
    server.start()
    settings = make_settings(tmp_path, server.url, flush_timeout=120, request_timeout=2)
    steps, metrics = 3000, 4
    try:
        run = flowscope.start_run("outage", settings=settings)
        assert run.run_id is not None
        for step in range(steps):
            if step == 1000:
                server.stop()  # SIGKILL: the server dies with requests in flight
            if step == 2500:
                # the writer has met the dead server, and training went on regardless
                assert run.wait_delivery_failure(60), "delivery never met the dead server"
                server.start()
            run.log_metrics({f"m{i}": step * 1000 + i for i in range(metrics)}, step=step)
        assert run.end(timeout=120)
        assert run.delivery_error is None  # delivery resumed by itself
        client = MlflowClient(server.url)
        assert metric_points(client, run.run_id, metrics) == _expected(range(steps), metrics)
        assert client.get_run(run.run_id).info.status == "FINISHED"
    finally:
        server.stop()


@pytest.mark.server
@pytest.mark.slow
def test_run_started_while_the_server_is_down_is_created_later(tmp_path: Path) -> None:
    server = MlflowServer(tmp_path / "server", port=free_port())
    settings = make_settings(tmp_path, server.url, start_timeout=0.5, request_timeout=1)
    try:
        run = flowscope.start_run("offline-start", run_name="late", settings=settings)
        assert run.run_id is None  # nothing to talk to yet: training goes on offline
        run.log_params({"lr": 0.1})
        for step in range(500):
            run.log_metrics({"m0": step * 1000.0}, step=step)
        server.start()
        assert run.end(timeout=120)
        client = MlflowClient(server.url)
        assert run.run_id is not None
        stored = client.get_run(run.run_id)
        assert stored.info.run_name == "late"
        assert stored.data.params == {"lr": "0.1"}
        assert metric_points(client, run.run_id, 1) == _expected(range(500), 1)
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("when", ["after-logging", "creating-the-store"])
def test_killed_training_process_is_delivered_by_sync(
    tmp_path: Path, sqlite_uri: str, when: str
) -> None:
    """Killed once everything is journaled, or while its writer is in the middle of
    MLflow's migrations creating the new store: the store is absent or whole, never half
    made, and ``flowscope sync`` delivers every point exactly once."""
    steps, metrics = 2000, 10
    database = Path(sqlite_uri.removeprefix("sqlite:///"))
    env = workers.environment(tmp_path, sqlite_uri)
    marker = tmp_path / "held"
    child = workers.start(
        workers.holding_creation(env, marker) if when == "creating-the-store" else env,
        *("log", "crash", "killed", f"--steps={steps}", f"--metrics={metrics}", "--then=hang"),
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "logged"  # every point is journaled
    if when == "creating-the-store":
        workers.wait_until_held(child, marker)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    if when == "creating-the-store":
        assert not database.exists()  # a store is there whole or not at all
        assert list(tmp_path.glob(f".{database.name}.*.creating"))  # killed mid-migration

    status = subprocess.run(
        [sys.executable, "-m", "flowscope.cli", "sync", "--status", "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    synced = subprocess.run(
        [sys.executable, "-m", "flowscope.cli", "sync"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert synced.returncode == 0, synced.stderr
    assert "delivered 1 run(s)" in synced.stdout

    client = MlflowClient(sqlite_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    assert run.info.status == "KILLED"
    assert run.data.params == {"steps": str(steps), "metrics": str(metrics)}
    assert metric_points(client, run.info.run_id, metrics) == _expected(range(steps), metrics)
    assert not list((tmp_path / "journal").glob("*.journal"))  # nothing left behind
    assert not list(tmp_path.glob(f".{database.name}.*.creating"))  # nor a half-made store


def test_torn_last_record_is_skipped_and_the_rest_delivered(
    tmp_path: Path, sqlite_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    from flowscope.tracking.journal import Journal, encode
    from flowscope.tracking.sync import sync

    settings = make_settings(tmp_path, sqlite_uri)
    journal_dir = settings.journal_dir
    header = {"op": "run", "experiment": "torn", "run_name": "torn", "tags": {}, "t": 1000}
    journal = Journal.create(journal_dir, "abc123", header)
    for step in range(100):
        journal.append({"op": "metrics", "d": {"m0": step * 1000.0}, "s": step, "t": 2000 + step})
    torn = encode({"op": "metrics", "d": {"m0": -1.0}, "s": 100, "t": 9999})
    os.write(journal._fd, torn[: len(torn) // 2])  # the process died mid-write
    journal.close()

    result = sync(settings, deadline=30)
    assert len(result.delivered) == 1
    assert "torn last record" in caplog.text
    client = MlflowClient(sqlite_uri)
    assert metric_points(client, result.delivered[0], 1) == _expected(range(100), 1)


@pytest.mark.slow
def test_eight_processes_share_one_sqlite_store(tmp_path: Path, sqlite_uri: str) -> None:
    env = workers.environment(tmp_path, sqlite_uri)
    steps, metrics = 300, 5
    processes = [
        workers.start(env, "log", "many", f"worker-{n}", f"--steps={steps}", f"--metrics={metrics}")
        for n in range(8)
    ]
    outputs = [worker.communicate(timeout=600) for worker in processes]
    for worker, (out, err) in zip(processes, outputs, strict=True):
        assert worker.returncode == 0, err[-2000:]
        assert "delivered" in out
    client = MlflowClient(sqlite_uri)
    runs = client.search_runs([client.get_experiment_by_name("many").experiment_id])
    assert sorted(run.info.run_name for run in runs) == [f"worker-{n}" for n in range(8)]
    for run in runs:
        assert metric_points(client, run.info.run_id, metrics) == _expected(range(steps), metrics)


@pytest.mark.server
@pytest.mark.slow
def test_a_refused_point_is_set_aside_and_the_rest_delivered(tmp_path: Path) -> None:
    server = MlflowServer(tmp_path / "server")
    server.start()
    settings = make_settings(tmp_path, server.url)
    try:
        run = flowscope.start_run("refusals", settings=settings)
        for step in range(3000):
            run.log_metrics({"m0": step * 1000.0}, step=step)
            if step == 1500:  # a timestamp MLflow refuses, in the middle of the stream
                run.log_metrics({"m0": -1.0}, step=step, timestamp=-5)
        assert run.end(timeout=120)
        client = MlflowClient(server.url)
        assert metric_points(client, run.run_id, 1) == _expected(range(3000), 1)
        rejected = list(settings.journal_dir.glob("*.rejected"))
        assert len(rejected) == 1 and "-5" in rejected[0].read_text()
    finally:
        server.stop()
