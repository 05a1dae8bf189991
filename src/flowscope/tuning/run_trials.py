"""Runs that were never a study, read as one: each scored run a finished Optuna trial, so
that Optuna's own importance evaluators say which parameters drive a metric over a grid
search, a set of hand-made runs or a study's trials alike.

A run's parameters become the trial's, with the distributions of
:mod:`flowscope.analysis.param_kinds`: a categorical axis is a ``CategoricalDistribution``
of its choices, a numeric one an ``IntDistribution`` or ``FloatDistribution`` from its
lowest to its highest value. The study lives in memory and is thrown away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flowscope._imports import try_import
from flowscope.tuning.summary import importances

try_import("optuna", "tune")

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

    from flowscope.analysis.param_kinds import ParamAxis

__all__ = ["axis_distribution", "run_importances", "runs_as_study"]


def axis_distribution(axis: ParamAxis) -> BaseDistribution:
    """The Optuna distribution a parameter's values were drawn from, as far as runs tell."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if axis.kind == "categorical":
        return CategoricalDistribution(axis.choices)
    low, high = float(axis.low or 0.0), float(axis.high or 0.0)
    if axis.integer:
        return IntDistribution(int(low), int(high))
    return FloatDistribution(low, high)


def runs_as_study(
    rows: Sequence[Mapping[str, Any]],
    scores: Sequence[float],
    axes: Sequence[ParamAxis],
    direction: str,
) -> optuna.Study:
    """An in-memory study with one complete trial per run: its values on ``axes`` as the
    parameters and its score (``scores``, aligned with ``rows``) as the value."""
    import optuna

    distributions = {axis.name: axis_distribution(axis) for axis in axes}
    trials = [
        optuna.trial.create_trial(
            params={axis.name: axis.value(row) for axis in axes},
            distributions=distributions,
            value=float(score),
        )
        for row, score in zip(rows, scores, strict=True)
    ]
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory"
    try:
        study = optuna.create_study(direction="maximize" if direction == "max" else "minimize")
    finally:
        optuna.logging.set_verbosity(previous)
    study.add_trials(trials)
    return study


def run_importances(
    rows: Sequence[Mapping[str, Any]],
    scores: Sequence[float],
    axes: Sequence[ParamAxis],
    direction: str,
    *,
    evaluator: str = "fanova",
    seed: int = 0,
) -> dict[str, float]:
    """Optuna's importance of each parameter on ``axes`` for the runs' scores, by
    ``evaluator`` ("fanova" or "ped_anova"), normalised to sum to one, most important
    first: :func:`flowscope.tuning.summary.importances` on :func:`runs_as_study`."""
    study = runs_as_study(rows, scores, axes, direction)
    return importances(study, evaluator, seed=seed)
