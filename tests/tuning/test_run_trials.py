"""Runs read as an Optuna study: the importances are Optuna's on the same trials."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import FanovaImportanceEvaluator, get_param_importances

from flowscope.analysis.param_kinds import param_axes
from flowscope.tuning.run_trials import run_importances, runs_as_study


def runs(count: int) -> tuple[list[dict[str, str]], list[float]]:
    rng = random.Random(0)
    rows, scores = [], []
    for _ in range(count):
        lr, depth, kind = rng.uniform(0.001, 0.3), rng.randint(2, 12), rng.choice("ab")
        rows.append({"params.lr": repr(lr), "params.depth": str(depth), "params.kind": kind})
        scores.append(0.5 + lr - 0.01 * depth + (0.05 if kind == "a" else 0.0))
    return rows, scores


def test_runs_become_complete_trials_with_inferred_distributions() -> None:
    rows, scores = runs(40)
    axes = param_axes(rows, ["params.lr", "params.depth", "params.kind"])
    study = runs_as_study(rows, scores, axes, "max")
    trials = study.get_trials()
    assert len(trials) == 40 and study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert trials[0].value == scores[0]
    assert trials[0].params == {
        "lr": float(rows[0]["params.lr"]),
        "depth": int(rows[0]["params.depth"]),
        "kind": rows[0]["params.kind"],
    }
    lows = {row["params.lr"] for row in rows}
    assert trials[0].distributions == {
        "lr": FloatDistribution(min(map(float, lows)), max(map(float, lows))),
        "depth": IntDistribution(2, 12),
        "kind": CategoricalDistribution(("a", "b")),
    }


def test_importances_are_optunas_fanova() -> None:
    rows, scores = runs(40)
    axes = param_axes(rows, ["params.lr", "params.depth", "params.kind"])
    ours = run_importances(rows, scores, axes, "max", evaluator="fanova", seed=3)
    study = runs_as_study(rows, scores, axes, "max")
    theirs = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=3))
    assert list(ours) == list(theirs)
    assert ours == pytest.approx(dict(theirs))
