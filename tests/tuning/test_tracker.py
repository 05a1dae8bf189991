"""``StudyTracker`` on plain Optuna code: the same runs with or without ``flowscope.tune``."""

from __future__ import annotations

import threading

import optuna
import pytest

from flowscope.config import Settings
from flowscope.tuning import StudyTracker
from flowscope.tuning.claims import claim
from flowscope.tuning.storage import open_storage
from tests.tuning.conftest import metric_steps, study_runs


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5, 5)
    for step in range(4):
        trial.report(x * x + 4 - step, step)
    if trial.number == 1:
        raise optuna.TrialPruned()
    return x * x


@pytest.mark.parametrize("wrapped", [True, False], ids=["wrap-and-callback", "callback-only"])
def test_plain_optuna_gets_the_same_runs(settings: Settings, wrapped: bool) -> None:
    study = optuna.create_study(study_name="plain", sampler=optuna.samplers.RandomSampler(0))
    tracker = StudyTracker("plain", settings=settings, metric_name="loss")
    study.optimize(tracker.wrap(objective) if wrapped else objective, 4, callbacks=[tracker])
    summary = tracker.finish(study)
    parent, runs = study_runs(settings, "plain")
    assert summary.best is not None and summary.best["number"] == study.best_trial.number
    assert parent.data.metrics["best_value"] == study.best_value
    assert [run.info.status for run in runs] == ["FINISHED", "KILLED", "FINISHED", "FINISHED"]
    for run, trial in zip(runs, study.trials, strict=True):
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert metric_steps(settings, run.info.run_id, "intermediate_loss") == (
            trial.intermediate_values
        )
        assert run.data.metrics["loss"] == trial.value


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_one_claim_wins_when_workers_race(
    backend: str, tmp_path: object, request: pytest.FixtureRequest
) -> None:
    """Eight workers, each with its own connection, claim the parent at the same moment:
    every one of them reads back the same winner."""
    url = (
        f"sqlite:///{tmp_path}/optuna.db"  # type: ignore[operator]
        if backend == "sqlite"
        else str(request.getfixturevalue("optuna_postgres"))
    )
    optuna.create_study(study_name="race", storage=open_storage(url, heartbeat_interval=None))
    studies = [
        optuna.load_study(study_name="race", storage=open_storage(url, heartbeat_interval=None))
        for _ in range(8)
    ]
    start = threading.Barrier(len(studies), timeout=60)
    seen: list[object] = []

    def worker(index: int) -> None:
        start.wait()
        seen.append(claim(studies[index], "flowscope.parent_local_id", f"worker-{index}"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(studies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and len(set(seen)) == 1
    assert studies[0].user_attrs["flowscope.parent_local_id"] == seen[0]
