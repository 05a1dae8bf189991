"""The comparison report: which run of a task is best by a metric and by how much, every
run side by side, charts of the metric against each parameter, which parameters drive the
metric, and what to do next.

:func:`compare_task` (the CLI) and :func:`compare_experiment` (the dashboard) build one
plain dict, the report's data and its JSON form; :mod:`flowscope.reports.comparison_output`
renders it as HTML, Markdown, CSV or JSON. Its keys:

- ``experiment`` (id, name), ``query`` (metric, direction, value, where, kind, importance
  evaluator asked for), ``metric`` (name, direction, value, label), ``counts`` (runs,
  scored, without_metric) and ``as_of`` (the latest start or end of a run, in ms: the
  report's date, the same for the same runs, so that two renderings are the same bytes);
- ``best``: the winner's ids and name, its score, its headline ``metrics``, ``per_class``
  rows and ``confusion`` (with TP/TN/FP/FN on a binary task) from its ``evaluation/``
  artifacts, ``params``, ``training_time_s``, the ``runner_up``, the ``margin``, the paired
  test (``significance``), ``registered`` versions with their lifecycle state, and
  ``summary``, a paragraph from those numbers;
- ``table``: ``columns`` (key, label, kind) and ``rows``, every run ranked best first (runs
  without the metric last), each with ``rank`` and ``score`` (what it was ranked by);
- ``charts``: which charts there are and what they plot (columns of ``table.rows``), so a
  figure is built from the rows without copying them;
- ``insights``: see :mod:`flowscope.reports.insights`;
- ``next_steps``: what to do with the winner, each with a shell command.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from flowscope.analysis.best import BEST_VALUES, check_direction
from flowscope.analysis.listing import MAIN_METRICS, main_metric, varying_params
from flowscope.analysis.param_kinds import param_axes
from flowscope.analysis.task_runs import ranked_runs, task_experiment_ids
from flowscope.errors import FlowscopeError
from flowscope.reports._render import number
from flowscope.reports.insights import EVALUATORS, MAX_CHARTED_PARAMS, parameter_insights

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from flowscope.analysis.best import BestRun
    from flowscope.analysis.query import RunStore
    from flowscope.config import Settings

__all__ = ["KINDS", "CompareQuery", "compare_experiment", "compare_task"]

KINDS = ("training", "trial")
TIME_METRIC = "training_time_s"
_WHICH = {"last": "last value", "min": "minimum over steps", "max": "maximum over steps"}


@dataclass
class CompareQuery:
    """What the report ranks by (every field optional): ``metric`` (default: the runs'
    main metric), ``direction`` (default: by the metric's name), ``value`` (last, min or
    max over steps), ``where`` (MLflow's filter syntax), ``kind`` (training or trial
    runs), ``importance`` (auto, fanova or ped_anova) and its ``seed``."""

    metric: str = ""
    direction: str = ""
    value: str = "last"
    where: str = ""
    kind: str = "training"
    importance: str = "auto"
    seed: int = 0

    def check(self) -> None:
        if self.value not in BEST_VALUES:
            raise FlowscopeError(
                f"value must be one of {', '.join(BEST_VALUES)}, not {self.value!r}"
            )
        if self.direction not in ("", "max", "min"):
            raise FlowscopeError(f"direction must be max or min, not {self.direction!r}")
        if self.kind not in KINDS:
            raise FlowscopeError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.importance not in ("auto", *EVALUATORS):
            raise FlowscopeError(
                f"importance must be auto or one of {', '.join(EVALUATORS)}, "
                f"not {self.importance!r}"
            )


def compare_task(
    settings: Settings, store: RunStore, task: str, query: CompareQuery | None = None
) -> dict[str, Any]:
    """The comparison report of ``task``'s runs (its experiment); an unknown task is a
    :class:`~flowscope.errors.NotFoundError`, a bad filter, a metric no run has or no run
    left after the filter a :class:`~flowscope.errors.FlowscopeError`.

    >>> with reading_runs(settings) as store:  # doctest: +SKIP
    ...     data = compare_task(settings, store, "wine-knn", CompareQuery(metric="f1"))
    """
    experiment = store.experiment(task_experiment_ids(store, settings, task)[0])
    return _report(settings, store, experiment, query or CompareQuery())


def compare_experiment(
    settings: Settings, store: RunStore, experiment_id: str, query: CompareQuery | None = None
) -> dict[str, Any]:
    """:func:`compare_task` for the experiment with id ``experiment_id`` (the dashboard)."""
    return _report(settings, store, store.experiment(experiment_id), query or CompareQuery())


def _report(
    settings: Settings, store: RunStore, experiment: dict[str, Any], query: CompareQuery
) -> dict[str, Any]:
    query.check()
    ids = [str(experiment["experiment_id"])]
    name = str(experiment["name"])
    found = store.summary(ids, kind=query.kind, filter_string=query.where)["total"]
    if not found:
        where = f" match {query.where!r}" if query.where else ""
        raise FlowscopeError(f"no {query.kind} runs of {name!r}{where}")
    metric = query.metric or main_metric(store.keys(ids, query.kind)["metrics"])
    if not metric:
        raise FlowscopeError(f"no {query.kind} run of {name!r} has a metric")
    direction = check_direction(metric, query.direction or None)
    ranked, unscored = ranked_runs(
        store,
        ids,
        metric=metric,
        direction=direction,
        value=query.value,
        where=query.where,
        kind=query.kind,
    )
    rows = [*map(dict, ranked.ranking), *unscored]
    label = metric if query.value == "last" else f"{metric} ({_WHICH[query.value]})"
    present = {key for row in rows for key in row}
    params = varying_params(rows, exclude=[], limit=len(present))
    headline = [metric, *(other for other in MAIN_METRICS if other != metric)]
    headline = [other for other in headline if f"metrics.{other}" in present]
    table = _table(rows, ranked.scores, params, headline)
    scored_rows = table["rows"][: len(ranked.scores)]
    axes = param_axes(scored_rows, params)
    insights = parameter_insights(
        scored_rows,
        list(ranked.scores),
        axes,
        metric=label,
        direction=direction,
        evaluator=query.importance,
        seed=query.seed,
    )
    best = _best(settings, ranked, table["rows"], headline, label, name)
    return {
        "report": "comparison",
        "experiment": {"experiment_id": ids[0], "name": name},
        "query": asdict(query),
        "metric": {"name": metric, "direction": direction, "value": query.value, "label": label},
        "as_of": max(
            (row.get("end_time") or row.get("start_time") or 0 for row in rows), default=0
        ),
        "counts": {
            "runs": len(rows),
            "scored": len(ranked.scores),
            "without_metric": ranked.without_metric,
        },
        "best": best,
        "table": table,
        "charts": _charts(axes, insights, label, len(ranked.scores)),
        "insights": insights,
        "next_steps": _next_steps(name, best),
    }


def _table(
    rows: Sequence[Mapping[str, Any]],
    scores: Sequence[float],
    params: Sequence[str],
    headline: Sequence[str],
) -> dict[str, Any]:
    """Every run as a row of the shown columns, ranked; the time column is the training
    timer where runs have one, else the run's wall time."""
    timed = any(f"metrics.{TIME_METRIC}" in row for row in rows)
    columns = [
        {"key": "rank", "label": "Rank", "kind": "rank"},
        {"key": "run_name", "label": "Run", "kind": "attribute"},
        {"key": "run_id", "label": "Run id", "kind": "attribute"},
        *({"key": key, "label": key.removeprefix("params."), "kind": "param"} for key in params),
        *({"key": f"metrics.{name}", "label": name, "kind": "metric"} for name in headline),
        {
            "key": "time_s",
            "label": "training time (s)" if timed else "run time (s)",
            "kind": "time",
        },
    ]
    table_rows = []
    for index, row in enumerate(rows):
        start, end = row.get("start_time"), row.get("end_time")
        duration = (end - start) / 1000 if start and end else None
        shown = {column["key"]: row.get(column["key"]) for column in columns}
        shown.update(
            rank=index + 1 if index < len(scores) else None,
            score=float(scores[index]) if index < len(scores) else None,
            experiment_id=row.get("experiment_id"),
            status=row.get("status"),
            start_time=start,
            end_time=end,
            time_s=row.get(f"metrics.{TIME_METRIC}") if timed else duration,
        )
        table_rows.append(shown)
    return {"columns": columns, "rows": table_rows}


def _best(
    settings: Settings,
    ranked: BestRun,
    rows: list[dict[str, Any]],
    headline: Sequence[str],
    label: str,
    task: str,
) -> dict[str, Any]:
    """The winner with what its artifacts and the registry add, and the paragraph."""
    from flowscope.analysis.significance import paired_verdict
    from flowscope.reports.best_details import evaluation_details, model_links

    winner = dict(ranked.winner)
    run_id = str(winner["run_id"])
    runner_up = None
    significance = None
    if len(ranked.ranking) > 1:
        second = ranked.ranking[1]
        runner_up = {
            "run_id": second["run_id"],
            "run_name": second.get("run_name"),
            "score": float(ranked.scores[1]),
        }
        significance = paired_verdict(settings, run_id, str(second["run_id"]), ranked.metric)
    links = model_links(settings, run_id)
    best = {
        "run_id": run_id,
        "run_name": winner.get("run_name"),
        "experiment_id": winner.get("experiment_id"),
        "metric": ranked.metric,
        "direction": ranked.direction,
        "label": label,
        "score": float(ranked.value),
        "metrics": {name: winner.get(f"metrics.{name}") for name in headline},
        "params": {
            key.removeprefix("params."): value
            for key, value in winner.items()
            if key.startswith("params.")
        },
        "training_time_s": rows[0]["time_s"],
        "runner_up": runner_up,
        "margin": None if runner_up is None else abs(ranked.value - runner_up["score"]),
        "tie_break": ranked.tie_break,
        "significance": significance,
        **evaluation_details(settings, winner),
        **links,
    }
    best["summary"] = _summary(best, task, ranked.considered)
    return best


def _summary(best: Mapping[str, Any], task: str, considered: int) -> str:
    """One paragraph from the numbers: who won, by how much, and whether it holds up."""
    name = best["run_name"] or best["run_id"]
    adjective = "highest" if best["direction"] == "max" else "lowest"
    parts = [
        f"Run {name} ({best['run_id']}) has the {adjective} {best['label']} of the "
        f"{considered} runs of {task}: {number(best['score'])}."
    ]
    runner_up = best["runner_up"]
    if runner_up is None:
        parts.append("It is the only run with the metric, so there is nothing to compare.")
        return " ".join(parts)
    other = runner_up["run_name"] or runner_up["run_id"]
    if best["margin"] == 0:
        parts.append(f"The runner-up, {other}, has the same score; {best['tie_break']}.")
    else:
        parts.append(
            f"That is {number(best['margin'])} ahead of the runner-up, {other} "
            f"({number(runner_up['score'])})."
        )
    verdict = best["significance"] or {}
    if not verdict.get("available"):
        parts.append(f"No paired test: {verdict.get('reason', 'no runner-up')}.")
        return " ".join(parts)
    interval = (
        f"{verdict['metric']} difference {verdict['difference']:+.4g}, "
        f"{1 - verdict['alpha']:.0%} interval [{verdict['ci_low']:+.4g}, "
        f"{verdict['ci_high']:+.4g}], bootstrap p = {number(verdict['p_bootstrap'], 3)}"
    )
    if verdict.get("mcnemar"):
        interval += f", McNemar p = {number(verdict['mcnemar']['p_value'], 3)}"
    rows = f"the same {verdict['n']} held-out rows"
    if verdict["significant"] and verdict["better"] == "a":
        parts.append(f"On {rows} the lead is significant ({interval}).")
    elif verdict["significant"]:
        parts.append(
            f"On {rows} the runner-up is significantly better by {verdict['metric']} ({interval})."
        )
    else:
        parts.append(f"On {rows} the difference is not significant ({interval}).")
    return " ".join(parts)


def _charts(
    axes: Sequence[Any], insights: Mapping[str, Any], label: str, scored: int
) -> dict[str, Any]:
    """Which charts the report draws, as columns of the table rows: the score per run,
    each varying parameter against it (most important first), and parallel coordinates."""
    order = {name: index for index, name in enumerate(insights.get("importances") or {})}
    shown = sorted(axes, key=lambda axis: (order.get(axis.name, len(order)), axis.column))
    shown = shown[:MAX_CHARTED_PARAMS]
    return {
        "metric_per_run": {"value": "score", "label": label, "runs": scored},
        "params": [axis.as_dict() for axis in shown],
        "parallel": (
            {"axes": [axis.as_dict() for axis in shown], "value": "score", "label": label}
            if shown
            else None
        ),
        "left_out": [axis.name for axis in axes if axis not in shown],
    }


def _next_steps(task: str, best: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What to do with the winner: promote its registered version, register its model, or
    train it again with a registration."""
    steps = []
    for version in best["registered"]:
        steps.append(
            {
                "what": f"Promote {version['name']} v{version['version']} "
                f"({version['state'] or 'no lifecycle state yet'}) by your policy",
                "command": shlex.join(
                    [
                        "flowscope",
                        "promote",
                        version["name"],
                        "--policy",
                        "policy.yaml",
                        "--version",
                        str(version["version"]),
                    ]
                ),
            }
        )
    if steps:
        return steps
    run_id = best["run_id"]
    if best["has_model"]:
        return [
            {
                "what": f"Register the best run's model as {task}, then promote it by your "
                "policy",
                "command": shlex.join(["flowscope", "register", run_id, task]),
            }
        ]
    params = best["params"]
    if params.get("dataset") not in (None, "dataframe") and params.get("model_type"):
        command = [
            "flowscope",
            "train",
            "--dataset",
            str(params["dataset"]),
            "--model",
            str(params["model_type"]),
            "--task",
            task,
            "--register",
            task,
        ]
        for key, value in sorted(params.items()):
            if key.startswith("model."):
                command += ["--param", f"{key.removeprefix('model.')}={value}"]
        return [
            {
                "what": "The run logged no model: train it again and register it",
                "command": shlex.join(command),
            }
        ]
    return [
        {
            "what": "The run logged no model: train one with its parameters and register "
            "it (flowscope train --register)",
            "command": None,
        }
    ]
