"""A study's summary: best trial, counts, optimization history and parameter importances.

Built in two steps, as Optuna's visualization is: :func:`summarize` turns a study into
plain data (what the JSON artifacts hold), and the figure builders turn that data into
matplotlib figures. Importances are Optuna's own evaluators through
``optuna.importance.get_param_importances``, so they are the numbers Optuna gives for the
same study (fANOVA with the recorded seed).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from flowscope._imports import try_import

try_import("optuna", "tune")  # a clear message, not a bare ImportError, without it

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure
    from optuna.distributions import BaseDistribution

    from flowscope.tracking.run import Run

EVALUATORS = ("fanova", "ped_anova")


@dataclass
class StudySummary:
    """What a study found, as JSON-able data."""

    study_name: str
    directions: list[str]
    counts: dict[str, int]
    best: dict[str, Any] | None
    history: list[dict[str, Any]]
    importances: dict[str, dict[str, float]] = field(default_factory=dict)
    importance_errors: dict[str, str] = field(default_factory=dict)
    importance_seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(study: optuna.Study, *, seed: int = 0) -> StudySummary:
    """The summary of ``study`` as it stands; importances need two finished trials."""
    trials = study.get_trials(deepcopy=False)
    directions = [d.name.lower() for d in study.directions]
    counts = Counter(trial.state.name for trial in trials)
    best = None
    if len(directions) == 1 and counts.get("COMPLETE"):
        chosen = study.best_trial
        best = {"number": chosen.number, "value": chosen.value, "params": chosen.params}
    summary = StudySummary(
        study_name=study.study_name,
        directions=directions,
        counts={state: counts.get(state, 0) for state in ("COMPLETE", "PRUNED", "FAIL")}
        | {"RUNNING": counts.get("RUNNING", 0), "total": len(trials)},
        best=best,
        history=_history(trials, directions),
        importance_seed=seed,
    )
    if len(directions) == 1:
        for name in EVALUATORS:
            try:
                summary.importances[name] = importances(study, name, seed=seed)
            except Exception as exc:  # too few trials, one value per parameter...
                summary.importance_errors[name] = f"{type(exc).__name__}: {exc}"
    else:
        for name in EVALUATORS:
            summary.importance_errors[name] = "importances need a single objective"
    return summary


def importances(study: optuna.Study, evaluator: str, *, seed: int = 0) -> dict[str, float]:
    """Optuna's parameter importances of ``study`` by ``evaluator`` ("fanova" or
    "ped_anova"), normalised to sum to one."""
    import warnings

    import optuna
    from optuna.importance import (
        FanovaImportanceEvaluator,
        PedAnovaImportanceEvaluator,
        get_param_importances,
    )

    chosen: optuna.importance.BaseImportanceEvaluator
    if evaluator == "fanova":
        chosen = FanovaImportanceEvaluator(seed=seed)
    elif evaluator == "ped_anova":
        chosen = PedAnovaImportanceEvaluator()
    else:
        raise ValueError(f"unknown importance evaluator {evaluator!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        found = get_param_importances(study, evaluator=chosen)
    return {name: float(value) for name, value in found.items()}


def _history(trials: list[Any], directions: list[str]) -> list[dict[str, Any]]:
    rows = []
    best: float | None = None
    maximize = directions == ["maximize"]
    for trial in trials:
        value = trial.value if len(directions) == 1 and trial.state.name == "COMPLETE" else None
        if value is not None and math.isfinite(value):
            improves = best is None or (value > best if maximize else value < best)
            best = value if improves else best
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": value,
                "values": trial.values,
                "best_so_far": best,
                "datetime_start": _iso(trial.datetime_start),
                "datetime_complete": _iso(trial.datetime_complete),
                "duration_s": trial.duration.total_seconds() if trial.duration else None,
                "params": trial.params,
            }
        )
    return rows


def _iso(moment: Any) -> str | None:
    return None if moment is None else str(moment.isoformat())


# -- figures -----------------------------------------------------------------------------


def history_figure(summary: StudySummary) -> Figure:
    """Each finished trial's value and the best so far, by trial number."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    points = [row for row in summary.history if row["value"] is not None]
    axes.scatter(
        [row["number"] for row in points],
        [row["value"] for row in points],
        s=14,
        label="trial value",
    )
    best = [row for row in summary.history if row["best_so_far"] is not None]
    axes.step(
        [row["number"] for row in best],
        [row["best_so_far"] for row in best],
        where="post",
        color="tab:red",
        label="best so far",
    )
    axes.set_xlabel("trial")
    axes.set_ylabel("objective value")
    axes.set_title(f"Optimization history of {summary.study_name}")
    axes.legend(loc="best")
    return figure


def importance_figure(summary: StudySummary) -> Figure:
    """Parameter importances, one horizontal bar chart per evaluator."""
    from matplotlib.figure import Figure

    shown = [name for name in EVALUATORS if summary.importances.get(name)]
    figure = Figure(figsize=(7, 1.2 + 2.5 * max(len(shown), 1)))
    if not shown:
        axes = figure.add_subplot()
        axes.text(0.5, 0.5, "no importances: too few finished trials", ha="center")
        axes.set_axis_off()
        return figure
    for index, name in enumerate(shown, start=1):
        axes = figure.add_subplot(len(shown), 1, index)
        ranked = sorted(summary.importances[name].items(), key=lambda item: item[1])
        axes.barh([param for param, _ in ranked], [value for _, value in ranked])
        axes.set_title(f"{name} importance")
        axes.set_xlim(0, 1)
    figure.tight_layout()
    return figure


def log_summary(run: Run, summary: StudySummary, space: dict[str, BaseDistribution] | None) -> None:
    """Write ``summary`` on a study's parent ``run``: metrics, best tags and ``tuning/``."""
    import json

    from flowscope.tuning import names
    from flowscope.tuning.space import space_as_json

    metrics: dict[str, float] = {
        f"trials_{state.lower()}": float(count) for state, count in summary.counts.items()
    }
    if summary.best is not None:
        metrics["best_value"] = float(summary.best["value"])
        metrics["best_trial"] = float(summary.best["number"])
        run.set_tags(
            {
                names.BEST_TRIAL_TAG: summary.best["number"],
                names.BEST_PARAMS_TAG: json.dumps(summary.best["params"], default=str),
            }
        )
        run.log_dict(summary.best, "tuning/best.json")
    last = max((row["number"] for row in summary.history), default=0)
    run.log_metrics(metrics, step=last)
    run.log_dict(
        {
            "study_name": summary.study_name,
            "directions": summary.directions,
            "counts": summary.counts,
            "trials": summary.history,
        },
        "tuning/history.json",
    )
    run.log_dict(
        {
            "seed": summary.importance_seed,
            "importances": summary.importances,
            "errors": summary.importance_errors,
        },
        "tuning/importances.json",
    )
    if space:
        run.log_dict(space_as_json(space), "tuning/search_space.json")
    run.log_figure(history_figure(summary), "tuning/history.png")
    run.log_figure(importance_figure(summary), "tuning/importances.png")
