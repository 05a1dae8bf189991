"""Which parameters drive the metric over a set of runs, and which of their values do best.

Importances are Optuna's own evaluators applied to the runs as trials
(:mod:`flowscope.tuning.run_trials`): fANOVA (seeded) up to :data:`FANOVA_MAX_RUNS` scored
runs, PED-ANOVA beyond, where fANOVA's forest takes a minute at 10,000 runs and PED-ANOVA a
fraction of a second; either can be asked for. Above :data:`IMPORTANCE_MAX_RUNS` runs the
evaluator sees that many, evenly spaced in the ranking, and the note says so.

For the most important parameters the runs are grouped by value (numeric ones in quartile
bins) and each group's mean, standard deviation, range and count of the metric is given,
and the best value of each is written as a sentence, with the runs that combine them.

Nothing is said below :data:`MIN_RUNS` scored runs, when no parameter varies, when every
run scored the same, or without Optuna; ``reason`` says which.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from flowscope.errors import MissingDependencyError
from flowscope.reports._render import number
from flowscope.reports.sampling import evenly_spaced

if TYPE_CHECKING:
    from flowscope.analysis.param_kinds import ParamAxis

__all__ = [
    "EVALUATORS",
    "FANOVA_MAX_RUNS",
    "MAX_CHARTED_PARAMS",
    "MIN_RUNS",
    "parameter_insights",
]

EVALUATORS = ("fanova", "ped_anova")
EVALUATOR_NAMES = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA"}
MIN_RUNS = 10
FANOVA_MAX_RUNS = 500
# Optuna copies every trial it is handed, a few hundred microseconds each: above this many
# runs the evaluator sees this many, evenly spaced in the ranking (every quantile of the
# metric kept, which is what PED-ANOVA compares).
IMPORTANCE_MAX_RUNS = 1000
TOP_PARAMS = 3
MAX_CHARTED_PARAMS = 6
NUMERIC_BINS = 4
# A parameter below this share of the importance is not worth a sentence (the first always is).
_WORTH_SAYING = 0.1


def parameter_insights(
    rows: Sequence[Mapping[str, Any]],
    scores: Sequence[float],
    axes: Sequence[ParamAxis],
    *,
    metric: str,
    direction: str,
    evaluator: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """The insights over scored ``rows`` (``scores`` aligned, ``axes`` their varying
    parameters): ``available``, ``reason`` when not, ``evaluator`` used and why,
    ``importances`` (name: share, most important first), ``params`` (the top parameters'
    value ``groups`` and ``best`` group) and ``sentences``."""
    data: dict[str, Any] = {
        "available": False,
        "reason": None,
        "evaluator": None,
        "evaluator_note": None,
        "seed": seed,
        "runs": len(rows),
        "importances": {},
        "params": [],
        "sentences": [],
    }
    if not axes:
        data["reason"] = "no parameter varies across these runs"
        return data
    if len(rows) < MIN_RUNS:
        data["reason"] = (
            f"only {len(rows)} run{'s' if len(rows) != 1 else ''} with {metric}; saying which "
            f"parameters matter needs at least {MIN_RUNS}"
        )
        return data
    values = np.asarray(scores, dtype=float)
    if np.all(values == values[0]):
        data["reason"] = f"every run has the same {metric}"
        return data
    chosen, note = _evaluator(evaluator, len(rows), seed)
    data.update(evaluator=chosen, evaluator_note=note)
    try:
        from flowscope.tuning.run_trials import run_importances
    except MissingDependencyError as exc:
        data["reason"] = f"parameter importance needs Optuna: {exc.message}"
        return data
    sample = evenly_spaced(len(rows), IMPORTANCE_MAX_RUNS)
    if sample.size < len(rows):
        data["evaluator_note"] = (
            f"{note}, on {sample.size:,} of the {len(rows):,} runs, evenly spaced in the ranking"
        )
    try:
        found = run_importances(
            [rows[i] for i in sample], values[sample], axes, direction, evaluator=chosen, seed=seed
        )
    except Exception as exc:  # Optuna's evaluators raise many kinds (as summary.py knows)
        data["reason"] = f"{EVALUATOR_NAMES[chosen]} could not rank the parameters: {exc}"
        return data
    importances = dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))
    by_name = {axis.name: axis for axis in axes}
    top = [name for name in importances if importances[name] >= _WORTH_SAYING][:TOP_PARAMS]
    top = top or list(importances)[:1]
    params = [_groups(by_name[name], rows, values, direction, importances[name]) for name in top]
    data.update(available=True, importances=importances, params=params)
    data["sentences"] = _sentences(params, values, metric, direction, chosen)
    return data


def _evaluator(asked: str, runs: int, seed: int) -> tuple[str, str]:
    if asked == "fanova":
        return "fanova", f"fANOVA (seed {seed}), as asked"
    if asked == "ped_anova":
        return "ped_anova", "PED-ANOVA, as asked"
    if runs <= FANOVA_MAX_RUNS:
        return "fanova", f"fANOVA (seed {seed})"
    return "ped_anova", (
        f"PED-ANOVA: fANOVA over more than {FANOVA_MAX_RUNS} runs would take too long"
    )


def _groups(
    axis: ParamAxis,
    rows: Sequence[Mapping[str, Any]],
    values: np.ndarray,
    direction: str,
    importance: float,
) -> dict[str, Any]:
    """The runs grouped by ``axis``'s value (quartile bins when numeric) with the metric's
    mean, spread and count in each; ``best`` is the group with the best mean."""
    settings = [axis.value(row) for row in rows]
    groups = []
    if axis.kind == "categorical":
        for choice in axis.choices:
            mask = np.fromiter((value == choice for value in settings), bool, len(settings))
            groups.append(_stats(f"{axis.name}={choice}", {"value": choice}, mask, values))
    else:
        numbers = np.asarray(settings, dtype=float)
        edges = np.unique(np.quantile(numbers, np.linspace(0.0, 1.0, NUMERIC_BINS + 1)))
        for index, (low, high) in enumerate(itertools.pairwise(edges)):
            last = index == len(edges) - 2
            mask = (numbers >= low) & ((numbers <= high) if last else (numbers < high))
            closing = "]" if last else ")"
            label = f"{axis.name} in [{number(float(low))}, {number(float(high))}{closing}"
            bounds = {"low": float(low), "high": float(high), "closed": last}
            groups.append(_stats(label, bounds, mask, values))
    groups = [group for group in groups if group["count"]]
    sign = -1.0 if direction == "max" else 1.0
    best = min(groups, key=lambda group: (sign * group["mean"], -group["count"]))
    best_mask = best["mask"]
    for group in groups:
        group.pop("mask")
    return {
        "name": axis.name,
        "column": axis.column,
        "kind": axis.kind,
        "importance": importance,
        "groups": groups,
        "best": best["label"],
        "_best_mask": best_mask,
    }


def _stats(
    label: str, match: dict[str, Any], mask: np.ndarray, values: np.ndarray
) -> dict[str, Any]:
    chosen = values[mask]
    count = int(chosen.size)
    return {
        "label": label,
        "match": match,
        "count": count,
        "mean": float(chosen.mean()) if count else None,
        "std": float(chosen.std(ddof=1)) if count > 1 else 0.0 if count else None,
        "min": float(chosen.min()) if count else None,
        "max": float(chosen.max()) if count else None,
        "mask": mask,
    }


def _sentences(
    params: list[dict[str, Any]],
    values: np.ndarray,
    metric: str,
    direction: str,
    evaluator: str,
) -> list[str]:
    first, rest = params[0], params[1:]
    lead = (
        f"{first['name']} matters most for {metric} ({EVALUATOR_NAMES[evaluator]} importance "
        f"{first['importance']:.2f})"
    )
    if rest:
        lead += ", then " + ", ".join(f"{p['name']} ({p['importance']:.2f})" for p in rest)
    sentences = [lead + "."]
    for param in params:
        groups = {group["label"]: group for group in param["groups"]}
        best = groups[param["best"]]
        others = [group for group in param["groups"] if group["label"] != param["best"]]
        text = f"{best['label']} does best: {_spread(best, metric)}"
        if others:
            text += "; against " + "; ".join(
                f"{group['label']}: {_spread(group, metric)}" for group in others[:5]
            )
            if len(others) > 5:
                text += f"; and {len(others) - 5} more values"
        sentences.append(text + ".")
    sentences.append(_combination(params, values, metric, direction))
    for param in params:
        param.pop("_best_mask")
    return sentences


def _spread(group: Mapping[str, Any], metric: str) -> str:
    runs = "run" if group["count"] == 1 else "runs"
    mean, spread = number(group["mean"]), number(group["std"])
    return f"mean {metric} {mean} ± {spread} over {group['count']} {runs}"


def _combination(
    params: list[dict[str, Any]],
    values: np.ndarray,
    metric: str,
    direction: str,
) -> str:
    """The sentence on runs that have the best value of every top parameter at once."""
    matches = np.ones(values.size, dtype=bool)
    for param in params:
        matches &= param["_best_mask"]
    labels = ", ".join(param["best"] for param in params)
    chosen = values[matches]
    if chosen.size == 0:
        return f"No run combines {labels}: a run worth trying."
    median = float(np.median(values))
    good = chosen >= median if direction == "max" else chosen <= median
    runs = "run" if chosen.size == 1 else "runs"
    stats = (
        f"mean {metric} {number(float(chosen.mean()))} over {chosen.size} {runs}, against a "
        f"median of {number(median)} over all {values.size}"
    )
    if bool(np.all(good)):
        return f"Runs with {labels} consistently performed well: {stats}."
    return f"Runs with {labels} did best on average, though not every one beat the median: {stats}."
