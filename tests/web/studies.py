"""A small study the study-page tests share: run by ``flowscope.tune`` on a fresh store,
with complete, pruned and failed trials, each with intermediate values, over three
parameters (one log-scaled, one categorical)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from flowscope.config import Settings
from tests.conftest import make_settings

FAILS_AT = 5  # this trial's objective raises
PRUNED_AT = (3, 8)  # these trials are pruned after two reports


def objective(trial: Any) -> float:
    import optuna

    x = trial.suggest_float("x", -10.0, 10.0)
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    booster = trial.suggest_categorical("booster", ["gbtree", "dart"])
    value = (x - 2.0) ** 2 + abs(math.log10(lr) + 2.0) + (0.5 if booster == "dart" else 0.0)
    for step in range(4):
        trial.report(value + 4 - step, step)
        if trial.number in PRUNED_AT and step == 1:
            raise optuna.TrialPruned()
    if trial.number == FAILS_AT:
        raise ValueError("this configuration fails")
    return value


@dataclass
class TunedStudy:
    settings: Settings
    storage: str
    name: str
    parent_run_id: str
    experiment_id: str

    def study(self) -> Any:
        import optuna

        return optuna.load_study(study_name=self.name, storage=self.storage)


def tune_study(root: Path, *, study: str, task: str, trials: int) -> TunedStudy:
    """Run :func:`objective` for ``trials`` trials as ``study`` of ``task`` under ``root``."""
    import optuna

    import flowscope

    settings = make_settings(root, f"sqlite:///{root / 'mlflow.db'}")
    storage = f"sqlite:///{root / 'optuna.db'}"
    result = flowscope.tune(
        objective,
        study=study,
        task=task,
        storage=storage,
        n_trials=trials,
        direction="min",
        metric_name="loss",
        sampler=optuna.samplers.RandomSampler(seed=3),
        catch=(ValueError,),
        settings=settings,
    )
    assert result.parent_run_id is not None
    experiment = MlflowClient(settings.tracking_uri).get_experiment_by_name(task)
    assert experiment is not None
    return TunedStudy(settings, storage, study, result.parent_run_id, experiment.experiment_id)
