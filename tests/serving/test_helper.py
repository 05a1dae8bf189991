"""The monitor's helper process: a killed helper is replaced and loses no window, and a
window a dead helper had written, wholly or in part, is stored exactly once."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pickle
import signal
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.serving import create_serving_app
from flowscope.serving.inference_run import WINDOW_TAG
from flowscope.serving.model import ModelRef, load_served_model
from flowscope.serving.packing import Observation
from flowscope.serving.window import VersionGroup, WindowJob, bare, holding, packed
from flowscope.serving.writers import RunWriter
from flowscope.tracking.journal import SUFFIX
from tests.serving.conftest import Registry, inference_runs, iris_features, records

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _request_ids(settings: Settings, runs: list[Any], folder: Path) -> Counter[str]:
    client = MlflowClient(settings.tracking_uri)
    found: Counter[str] = Counter()
    for run in runs:
        if not run.data.metrics.get("samples"):
            continue
        local = client.download_artifacts(
            run.info.run_id, "predictions/predictions.parquet", str(folder / run.info.run_id)
        )
        found.update(pd.read_parquet(local)["request_id"].astype(str))
    return found


def test_a_killed_helper_is_replaced_and_loses_no_window(
    registry: Registry, tmp_path: Path
) -> None:
    name = registry.fresh("random_forest")
    settings = registry.using(monitor_window_size=10, monitor_window_seconds=3600)
    rows = records(iris_features())
    sent: list[str] = []
    with TestClient(create_serving_app(settings, f"{name}@champion")) as client:
        monitor = client.app.state.service.monitor  # type: ignore[attr-defined]
        first = monitor.helper_pid
        assert first is not None and first != os.getpid()

        def predict(row: dict[str, Any]) -> None:
            answer = client.post("/predict", json=row)
            assert answer.status_code == 200, answer.text
            sent.append(answer.json()["request_id"])

        os.kill(first, signal.SIGSTOP)  # windows are sent to it and never acknowledged
        for row in rows[:45]:
            predict(row)
        # the monitor's thread has handed the four closed windows to the stopped helper
        assert monitor.wait_for(lambda: _handed_over(monitor) == 4, 60), _handed_over(monitor)
        stats = monitor.stats()
        assert stats["buffered_predictions"] == 45 and stats["runs_written"] == 0
        os.kill(first, signal.SIGKILL)
        assert monitor.wait_for(lambda: monitor.helper_pid != first, 60), "never replaced"
        for row in rows[45:100]:
            predict(row)
        # the new one is warmed up
        assert monitor.wait_for(lambda: monitor.stats()["helper_ready"] == 1, 60), "not ready"
        metrics = client.get("/metrics").text
    assert "flowscope_monitor_helper_restarts 1" in metrics
    assert "flowscope_monitor_helper_ready 1" in metrics
    runs = inference_runs(settings, name)
    assert sum(run.data.metrics["samples"] for run in runs) == 100
    assert _request_ids(settings, runs, tmp_path) == Counter(sent)  # each exactly once
    assert all(run.info.status == "FINISHED" for run in runs)


def _handed_over(monitor: Any) -> int:
    """Windows sent to the helper and not yet acknowledged (the moment a test waits for;
    no figure in /metrics says it)."""
    return len(monitor._sink._pending)


def _window(settings: Settings, name: str, rows: int) -> WindowJob:
    """A window of ``rows`` single-row requests to the served model ``name``."""
    model = load_served_model(settings, ModelRef.parse(f"{name}@champion"))
    frame = iris_features().head(rows)
    predicted = model.predict_columns({c: frame[c].tolist() for c in frame.columns})
    now = time.time()
    observations = [
        Observation(f"request-{i}", now + i / 1000, 0.002, predicted, i, 1) for i in range(rows)
    ]
    return WindowJob([VersionGroup(model, observations)], now, now + 1)


def _write_and_die(settings: Settings, payload: Path, appends: int | None, deliver: bool) -> None:
    """A helper that writes the window in ``payload`` and is killed: after ``appends``
    journal records (None: after the whole window), or once it is delivered."""
    import flowscope.tracking.journal as journal_module

    job, parts = pickle.loads(payload.read_bytes())
    job.groups = [holding(group, window) for group, window in parts]
    original = journal_module.Journal.append
    done = 0

    def append(self: Any, record: dict[str, Any]) -> None:
        nonlocal done
        if done == appends:
            # its writer thread has delivered what is journaled: the store holds part of
            # the window (exit code 8 if it never does, which fails the test)
            deadline = time.monotonic() + 60
            while done and self.load_state().offset < self.size():
                if time.monotonic() > deadline:
                    os._exit(8)
                time.sleep(0.02)
            os._exit(9)
        done += 1
        original(self, record)

    journal_module.Journal.append = append  # type: ignore[method-assign]
    writer = RunWriter(settings)
    writer.write(job)
    if deliver:
        assert writer.wait(time.monotonic() + 60)
    os._exit(9)


@pytest.mark.parametrize(
    ("appends", "deliver", "synced"),
    [
        (0, False, False),
        (2, False, False),
        (4, False, False),
        (4, False, True),
        (None, False, False),
        (None, True, False),
    ],
    ids=[
        "creating-journal",
        "after-params",
        "mid-window",
        "mid-window-then-synced",
        "before-ack",
        "delivered",
    ],
)
def test_a_window_a_dead_helper_wrote_is_stored_exactly_once(
    registry: Registry, tmp_path: Path, appends: int | None, deliver: bool, synced: bool
) -> None:
    name = registry.fresh("random_forest")
    settings = registry.using(journal_dir=tmp_path / "journal")
    job = _window(settings, name, 30)
    payload = tmp_path / "window.pickle"
    parts = [(bare(group), packed(group)) for group in job.groups]
    payload.write_bytes(pickle.dumps((dataclasses.replace(job, groups=[]), parts)))
    context = multiprocessing.get_context("spawn")
    dead = context.Process(target=_write_and_die, args=(settings, payload, appends, deliver))
    dead.start()
    dead.join(120)
    assert dead.exitcode == 9
    journal = settings.journal_dir / f"{job.id}{SUFFIX}"
    assert journal.exists() == (appends != 0 and not deliver)
    if synced:  # `flowscope sync` delivers the partial run, as KILLED, before the resend
        from flowscope.tracking.sync import sync

        assert sync(settings).delivered
        assert not journal.exists()

    writer = RunWriter(settings)
    writer.write(dataclasses.replace(job, resent=True))
    assert writer.wait(time.monotonic() + 60)

    runs = MlflowClient(settings.tracking_uri).search_runs(
        [inference_runs(settings, name)[0].info.experiment_id],
        f"tags.`{WINDOW_TAG}` = '{job.id}'",
    )
    assert len(runs) == 1
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert run.data.metrics["samples"] == 30 and run.data.metrics["requests"] == 30
    assert run.data.params["model_version"] == "1"
    assert _request_ids(settings, runs, tmp_path) == Counter(f"request-{i}" for i in range(30))
    assert not journal.exists()
    assert not list(settings.journal_dir.glob(f".{job.id}*"))


def test_a_burst_of_per_request_runs_while_the_helper_is_stalled(registry: Registry) -> None:
    """Hundreds of one-request windows reach a helper that is stopped for a while: the
    server and the helper never wait on each other for good, and every run is written."""
    name = registry.fresh("random_forest")
    settings = registry.using(monitor_per_request=True, monitor_window_seconds=3600)
    rows = records(iris_features())
    with TestClient(create_serving_app(settings, f"{name}@champion")) as client:
        monitor = client.app.state.service.monitor  # type: ignore[attr-defined]
        helper = monitor.helper_pid
        os.kill(helper, signal.SIGSTOP)
        for row in rows:
            assert client.post("/predict", json=row).status_code == 200
        # windows reach the stopped helper
        assert monitor.wait_for(lambda: _handed_over(monitor) > 0, 60), "none handed over"
        os.kill(helper, signal.SIGCONT)
        written = monitor.wait_for(lambda: monitor.stats()["runs_written"] == len(rows), 120)
        assert written, monitor.stats()
        assert monitor.stats()["buffered_predictions"] == 0
    runs = inference_runs(settings, name)
    assert len(runs) == len(rows) and all(run.data.metrics["samples"] == 1 for run in runs)
