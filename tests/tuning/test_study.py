"""``flowscope.tune``: a study as one parent run, every trial a child run with its state."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest

import flowscope
from flowscope.config import Settings
from flowscope.errors import FlowscopeError
from flowscope.tuning import importances
from tests.tuning.conftest import artifact_json, metric_steps, study_runs

PRUNED, FAILED = 2, 3


def objective(trial: optuna.Trial) -> float:
    """A quadratic whose trial 2 is pruned after three reports and trial 3 fails."""
    x = trial.suggest_float("x", -10, 10)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    for step in range(3):
        trial.report((x - 2) ** 2 + 10 - step, step)
    if trial.number == PRUNED:
        raise optuna.TrialPruned()
    if trial.number == FAILED:
        raise ValueError("this trial fails")
    return (x - 2) ** 2 + (1.0 if kind == "b" else 0.0)


def test_a_study_is_a_parent_run_and_each_trial_a_child_run(
    settings: Settings, tmp_path: Path
) -> None:
    result = flowscope.tune(
        objective,
        study="quadratic",
        n_trials=10,
        direction="min",
        sampler=optuna.samplers.TPESampler(seed=1),
        catch=(ValueError,),
        settings=settings,
    )
    study = result.study
    parent, trials = study_runs(settings, "quadratic")
    assert parent.info.run_id == result.parent_run_id
    assert parent.info.status == "FINISHED"
    assert study.user_attrs["flowscope.parent_run_id"] == parent.info.run_id
    assert [int(run.data.tags["flowscope.trial_number"]) for run in trials] == list(range(10))
    by_number = {trial.number: trial for trial in study.trials}
    for run in trials:
        trial = by_number[int(run.data.tags["flowscope.trial_number"])]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        expected = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
        assert run.info.status == expected[trial.state.name]
        assert run.data.tags["flowscope.trial_state"] == trial.state.name
        assert run.data.params == {key: str(value) for key, value in trial.params.items()}
        assert metric_steps(settings, run.info.run_id, "intermediate_value") == (
            trial.intermediate_values
        )
        if trial.value is not None:
            assert run.data.metrics["value"] == trial.value
        else:
            assert "value" not in run.data.metrics
    assert by_number[PRUNED].state.name == "PRUNED" and by_number[FAILED].state.name == "FAIL"
    # a pruned trial's value is its last intermediate value, as Optuna keeps it
    assert trials[PRUNED].data.metrics["value"] == by_number[PRUNED].intermediate_values[2]
    assert "ValueError: this trial fails" in trials[FAILED].data.tags["flowscope.error"]

    best = study.best_trial
    assert parent.data.metrics["best_value"] == best.value
    assert parent.data.metrics["best_trial"] == best.number
    assert artifact_json(settings, parent.info.run_id, "tuning/best.json", tmp_path) == {
        "number": best.number,
        "value": best.value,
        "params": best.params,
    }
    assert parent.data.params["sampler"] == "TPESampler"
    assert parent.data.params["direction"] == "minimize"
    assert parent.data.params["n_trials"] == "10"
    assert parent.data.metrics["trials_complete"] == 8


def test_importances_are_optunas_own(settings: Settings, tmp_path: Path) -> None:
    result = flowscope.tune(
        objective,
        study="importances",
        n_trials=12,
        sampler=optuna.samplers.RandomSampler(seed=3),
        catch=(ValueError,),
        settings=settings,
    )
    logged = artifact_json(settings, str(result.parent_run_id), "tuning/importances.json", tmp_path)
    fanova = optuna.importance.get_param_importances(
        result.study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
    )
    ped_anova = optuna.importance.get_param_importances(
        result.study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
    )
    assert logged["seed"] == 0
    assert logged["importances"]["fanova"] == pytest.approx(dict(fanova), abs=0, rel=1e-12)
    assert logged["importances"]["ped_anova"] == pytest.approx(dict(ped_anova), rel=1e-12)
    assert importances(result.study, "fanova") == pytest.approx(dict(fanova), rel=1e-12)
    history = artifact_json(settings, str(result.parent_run_id), "tuning/history.json", tmp_path)
    assert [row["number"] for row in history["trials"]] == list(range(12))
    client_files = {
        info.path
        for info in __import__("mlflow")
        .MlflowClient(settings.tracking_uri)
        .list_artifacts(str(result.parent_run_id), "tuning")
    }
    assert {"tuning/history.png", "tuning/importances.png"} <= client_files


def test_trials_of_n_jobs_run_at_once(settings: Settings) -> None:
    """Two trials must be inside the objective together to get past the barrier: nothing
    serialises the objective."""
    barrier = threading.Barrier(2, timeout=60)

    def together(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number < 2:
            barrier.wait()  # raises BrokenBarrierError (a failed trial) if alone
        return x

    result = flowscope.tune(together, study="parallel", n_trials=6, n_jobs=2, settings=settings)
    states = [trial.state.name for trial in result.study.trials]
    assert states == ["COMPLETE"] * 6
    parent, trials = study_runs(settings, "parallel")
    assert len(trials) == 6
    assert {run.data.tags["mlflow.parentRunId"] for run in trials} == {parent.info.run_id}
    assert {run.info.status for run in trials} == {"FINISHED"}


def test_n_trials_is_the_studys_exact_total(settings: Settings) -> None:
    """Four threads asking at once never take the study past its total (Optuna's
    MaxTrialsCallback lets each overshoot by one), and a second call adds none."""
    result = flowscope.tune(
        lambda trial: trial.suggest_float("x", 0, 1),
        study="total",
        n_trials=9,
        n_jobs=4,
        settings=settings,
    )
    assert len(result.study.trials) == 9
    again = flowscope.tune(
        lambda trial: trial.suggest_float("x", 0, 1), study="total", n_trials=9, settings=settings
    )
    assert len(again.study.trials) == 9
    assert again.parent_run_id == result.parent_run_id
    _, trials = study_runs(settings, "total")
    assert len(trials) == 9


def test_a_direction_that_contradicts_the_study_is_refused(settings: Settings) -> None:
    flowscope.tune(
        lambda trial: trial.suggest_float("x", 0, 1),
        study="fixed",
        n_trials=1,
        direction="max",
        settings=settings,
    )
    with pytest.raises(FlowscopeError, match="is set to maximize; direction minimize"):
        flowscope.tune(lambda trial: 0.0, study="fixed", direction="min", settings=settings)
