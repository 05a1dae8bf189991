"""Many worker processes on one study in PostgreSQL: one parent, every trial once, and a
killed worker's trial failed by the others."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

import flowscope
from tests.conftest import make_settings
from tests.moments import ProcessEnded, make_fifo, open_to_read, read_line
from tests.tuning.conftest import study_runs

HANG_TRIAL = 3
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.postgres
def test_three_workers_share_one_study_and_a_killed_workers_trial_fails(
    postgres_database: str, optuna_postgres: str, tmp_path: Path
) -> None:
    MlflowClient(postgres_database).search_experiments()  # the tracking store exists first
    marker = make_fifo(tmp_path / "hanging.pid")  # the hanging trial's worker writes its pid
    told = open_to_read(marker)
    command = [
        sys.executable, "-m", "tests.tuning.workers",
        "--tracking-uri", postgres_database, "--root", str(tmp_path),
        "--storage", optuna_postgres, "--study", "shared", "--trials", "24", "--n-jobs", "2",
        "--hang-trial", str(HANG_TRIAL), "--marker", str(marker),
    ]  # fmt: skip
    logs = [(tmp_path / f"worker-{index}.log").open("w") for index in range(3)]
    workers = [
        subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT) for log in logs
    ]
    try:
        try:
            pid = int(read_line(told, workers, "the hanging trial began"))
        except ProcessEnded as ended:
            log = tmp_path / f"worker-{workers.index(ended.process)}.log"
            raise AssertionError(f"{ended}:\n{log.read_text()[-3000:]}") from None
        killed = next(worker for worker in workers if worker.pid == pid)
        os.kill(pid, signal.SIGKILL)
        killed.wait(timeout=60)
        for worker in workers:
            if worker is not killed:
                log = tmp_path / f"worker-{workers.index(worker)}.log"
                assert worker.wait(timeout=300) == 0, log.read_text()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        for log in logs:
            log.close()
        os.close(told)

    study = optuna.load_study(study_name="shared", storage=optuna_postgres)
    trials = study.get_trials()
    assert len(trials) == 24
    states = {trial.number: trial.state.name for trial in trials}
    assert states[HANG_TRIAL] == "FAIL"
    assert "RUNNING" not in states.values()
    # only the trials the killed worker was running failed (its other thread's, at most)
    assert list(states.values()).count("FAIL") <= 2

    settings = make_settings(tmp_path, postgres_database)
    parent, runs = study_runs(settings, "shared")
    assert len(runs) == 24
    assert [int(run.data.tags["flowscope.trial_number"]) for run in runs] == list(range(24))
    assert {run.data.tags["mlflow.parentRunId"] for run in runs} == {parent.info.run_id}
    assert study.user_attrs["flowscope.parent_run_id"] == parent.info.run_id
    expected = {"COMPLETE": "FINISHED", "FAIL": "FAILED"}
    assert {run.info.status for run in runs} <= {"FINISHED", "FAILED"}
    for run in runs:
        assert run.info.status == expected[states[int(run.data.tags["flowscope.trial_number"])]]
    hanging = runs[HANG_TRIAL]
    assert hanging.data.tags["flowscope.trial_state"] == "FAIL"
    assert "stopped sending heartbeats" in hanging.data.tags["flowscope.error"]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_value"] == study.best_value
    assert parent.data.metrics["trials_total"] == 24


def test_a_worker_delivers_what_a_worker_that_never_reached_the_store_left(
    tmp_path: Path, sqlite_uri: str
) -> None:
    """The first worker's tracking store was unreachable: its parent run and trial runs
    stay in its journal when it exits. The next worker on the machine joins the study and
    delivers them, its own trials under the same parent."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    command = [
        sys.executable, "-m", "tests.tuning.workers",
        "--tracking-uri", "http://127.0.0.1:9", "--root", str(tmp_path),
        "--storage", storage, "--study", "offline", "--trials", "5", "--n-jobs", "1",
        "--flush-timeout", "0",
    ]  # fmt: skip
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    settings = make_settings(tmp_path, sqlite_uri)
    left = sorted(path.name for path in settings.journal_dir.glob("*.journal"))
    assert len(left) == 6  # the parent and five trials

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -10, 10)
        trial.report(x, 0)
        return (x - 2) ** 2

    result = flowscope.tune(
        objective, study="offline", storage=storage, n_trials=8, direction="min", settings=settings
    )
    study = optuna.load_study(study_name="offline", storage=storage)
    assert len(study.trials) == 8
    parent, runs = study_runs(settings, "offline")
    assert parent.info.run_id == result.parent_run_id
    assert [int(run.data.tags["flowscope.trial_number"]) for run in runs] == list(range(8))
    assert {run.data.tags["mlflow.parentRunId"] for run in runs} == {parent.info.run_id}
    assert {run.info.status for run in runs} == {"FINISHED"}
    values = {trial.number: trial.value for trial in study.trials}
    assert {
        int(r.data.tags["flowscope.trial_number"]): r.data.metrics["value"] for r in runs
    } == values
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials_total"] == 8
    assert parent.data.metrics["best_value"] == study.best_value
    assert list(settings.journal_dir.glob("*.journal")) == []
