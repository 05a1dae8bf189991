"""What the dashboard shows of studies, built from the MLflow store alone (see
:mod:`flowscope.tuning.stored`): a study's page, and the Tuning tab's list of studies.

The page's dict holds the trials and, for each chart, the small data object it is drawn
from (``history``, ``intermediate``, ``space``, ``contour``, ``importances``), as Optuna's
visualization builds its ``_get_*_info`` before a figure; the figures themselves are
built from these by :mod:`flowscope.web.study_charts`.

At 10,000 trials the page stays interactive: the JSON carries every trial, the HTML table
shows the first :data:`TABLE_ROWS` of them in the chosen order, and intermediate values are
read for at most :data:`INTERMEDIATE_TRIALS` trials (the latest, and the best).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from flowscope.artifacts import read_json_artifact
from flowscope.errors import FlowscopeError
from flowscope.mlflow_client import client_for
from flowscope.tuning import names
from flowscope.tuning.stored import (
    PARENT_TAG,
    StoredStudy,
    best_trial,
    read_study,
    read_trials,
    space_from_json,
    study_from_row,
    trial_filter,
)

if TYPE_CHECKING:
    from flowscope.analysis.query import RunStore
    from flowscope.config import Settings

TABLE_ROWS = 500
INTERMEDIATE_TRIALS = 100
CONTOUR_BINS = 24
SORTS = ("number", "value", "state", "duration_s", "start_time")
IMPORTANCES_ARTIFACT = "tuning/importances.json"
SPACE_ARTIFACT = "tuning/search_space.json"
_STATE_ORDER = {state: index for index, state in enumerate(names.STATES)}


def study_view(
    settings: Settings,
    store: RunStore,
    run_id: str,
    *,
    sort: str = "",
    order: str = "",
) -> dict[str, Any]:
    """The study page of the study whose parent run is ``run_id``: the study, counts per
    state, the best trial, every trial (sorted by ``sort``: number, value, state,
    duration_s, start_time or ``params.<name>``; ``order`` asc or desc; best value first
    by default) and the charts' data."""
    client = client_for(settings)
    study = read_study(store, run_id)
    if not study.space:  # not known up front: the space the study's end wrote down
        study.space = space_from_json(read_json_artifact(client, run_id, SPACE_ARTIFACT))
    trials = read_trials(store, study)
    best = best_trial(trials, study)
    complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    importances = stored_importances(read_json_artifact(client, run_id, IMPORTANCES_ARTIFACT))
    space = space_data(complete, study)
    counts = {state: 0 for state in names.STATES}
    for trial in trials:
        counts[trial["state"]] = counts.get(trial["state"], 0) + 1
    sort, descending = _sort_choice(sort, order, study)
    return {
        "study": study_header(study),
        "live": study.status == "RUNNING" or counts["RUNNING"] > 0,
        "counts": {**counts, "total": len(trials)},
        "best": None if best is None else _best_entry(best),
        "sort": {"key": sort, "descending": descending},
        "param_names": sorted(study.space),
        "table_rows": TABLE_ROWS,
        "trials": sort_trials(trials, sort, descending),
        "history": history_data(trials, study.maximize) if study.single else None,
        "intermediate": intermediate_data(store, study, trials, best),
        "space": space,
        "contour": contour_data(space, importances) if study.single else None,
        "importances": importances,
    }


def study_header(study: StoredStudy) -> dict[str, Any]:
    return {
        "run_id": study.run_id,
        "experiment_id": study.experiment_id,
        "name": study.name,
        "status": study.status,
        "start_time": study.start_time,
        "end_time": study.end_time,
        "objective": study.objective,
        "directions": study.directions,
        "sampler": study.params.get("sampler"),
        "pruner": study.params.get("pruner"),
        "storage": study.params.get("storage"),
        "space": {name: param.described for name, param in study.space.items()},
        "params": {k: v for k, v in study.params.items() if not k.startswith("space.")},
    }


def _best_entry(trial: dict[str, Any]) -> dict[str, Any]:
    keys = ("number", "value", "params", "run_id", "duration_s")
    return {key: trial[key] for key in keys}


# -- the trials table --------------------------------------------------------------------


def _sort_choice(sort: str, order: str, study: StoredStudy) -> tuple[str, bool]:
    if order not in ("", "asc", "desc"):
        raise FlowscopeError(f"order must be asc or desc, not {order!r}")
    if not sort:
        sort = "value" if study.single else "number"
        default_descending = sort == "value" and study.maximize
        return sort, default_descending if not order else order == "desc"
    if sort not in SORTS and not (sort.startswith("params.") and sort[7:] in study.space):
        raise FlowscopeError(
            f"cannot sort trials by {sort!r}; use {', '.join(SORTS)} or params.<name> "
            "for a parameter of the study"
        )
    return sort, order == "desc"


def sort_trials(trials: list[dict[str, Any]], sort: str, descending: bool) -> list[dict[str, Any]]:
    """``trials`` by ``sort``, missing values last either way, then by number."""

    def value(trial: dict[str, Any]) -> Any:
        if sort == "state":
            return _STATE_ORDER.get(trial["state"], len(_STATE_ORDER))
        if sort.startswith("params."):
            return trial["params"].get(sort[7:])
        return trial[sort]

    present = [t for t in trials if value(t) is not None]
    missing = [t for t in trials if value(t) is None]
    try:
        present.sort(key=lambda t: (value(t), t["number"] or 0), reverse=descending)
    except TypeError:  # a parameter with numbers and text: compare as text
        present.sort(key=lambda t: (str(value(t)), t["number"] or 0), reverse=descending)
    return present + missing


# -- chart data --------------------------------------------------------------------------


def history_data(trials: list[dict[str, Any]], maximize: bool) -> dict[str, Any]:
    """Each complete trial's value by number and the best value so far: Optuna's
    optimization history."""
    numbers, values, best = [], [], []
    current: float | None = None
    for trial in trials:
        value = trial["value"]
        if trial["state"] != "COMPLETE" or value is None or trial["number"] is None:
            continue
        if current is None or (value > current if maximize else value < current):
            current = value
        numbers.append(trial["number"])
        values.append(value)
        best.append(current)
    return {"number": numbers, "value": values, "best": best}


def intermediate_data(
    store: RunStore, study: StoredStudy, trials: list[dict[str, Any]], best: dict[str, Any] | None
) -> dict[str, Any]:
    """What ``trial.report`` got, one series per trial, for the latest
    :data:`INTERMEDIATE_TRIALS` trials and the best one (a chart of 10,000 lines shows
    nothing a person can read)."""
    metric = f"{names.INTERMEDIATE_PREFIX}{study.objective}"
    chosen = trials[-INTERMEDIATE_TRIALS:]
    if best is not None and all(t["run_id"] != best["run_id"] for t in chosen):
        chosen = [best, *chosen[1:]]
    histories = store.metric_histories([t["run_id"] for t in chosen], metric)
    series = []
    for trial in chosen:
        points = histories.get(trial["run_id"])
        if points:
            series.append(
                {
                    "number": trial["number"],
                    "state": trial["state"],
                    "steps": [step for step, _ in points],
                    "values": [value for _, value in points],
                }
            )
    series.sort(key=lambda item: item["number"] if item["number"] is not None else -1)
    return {"metric": metric, "trials": series, "shown": len(chosen), "total": len(trials)}


def space_data(complete: list[dict[str, Any]], study: StoredStudy) -> dict[str, Any]:
    """The complete trials' parameters and values, column by column: what the parallel
    coordinates, the slice plots and the contour are drawn from. A parameter a trial did
    not suggest (a conditional space) is None there."""
    params = []
    for name in sorted(study.space):
        param = study.space[name]
        values = [trial["params"].get(name) for trial in complete]
        if any(value is not None for value in values):
            params.append(
                {
                    "name": name,
                    "kind": param.kind,
                    "log": param.log,
                    "values": values,
                    "categories": _categories(values) if param.kind == "categorical" else None,
                }
            )
    return {
        "numbers": [trial["number"] for trial in complete],
        "objective": [trial["value"] for trial in complete],
        "params": params,
    }


def contour_data(
    space: dict[str, Any], importances: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The objective over the two most important parameters (by the study's stored
    importances; before those exist, by rank correlation with the objective): the mean
    value of the trials in each of :data:`CONTOUR_BINS` × :data:`CONTOUR_BINS` cells
    (categories get a cell each), None where no trial fell."""
    by_name = {param["name"]: param for param in space["params"]}
    ranked, reason = _ranked_params(space, importances)
    pair = [name for name in ranked if name in by_name][:2]
    if len(pair) < 2 or len(space["objective"]) < 2:
        return None
    x_axis, y_axis = (_axis(by_name[name]) for name in pair)
    cells: dict[tuple[int, int], list[float]] = {}
    for xi, yi, value in zip(
        x_axis.pop("cells"), y_axis.pop("cells"), space["objective"], strict=True
    ):
        if xi is not None and yi is not None:
            cells.setdefault((xi, yi), []).append(value)
    z = [
        [_mean(cells.get((xi, yi))) for xi in range(len(x_axis["ticks"]))]
        for yi in range(len(y_axis["ticks"]))
    ]
    return {"x": x_axis, "y": y_axis, "z": z, "chosen_by": reason}


def _ranked_params(
    space: dict[str, Any], importances: dict[str, Any] | None
) -> tuple[list[str], str]:
    for evaluator in ("fanova", "ped_anova"):
        found = ((importances or {}).get("importances") or {}).get(evaluator)
        if found:
            return sorted(found, key=lambda name: -found[name]), f"{evaluator} importance"
    objective = _ranks(space["objective"])
    scored = []
    for param in space["params"]:
        present = [(v, o) for v, o in zip(param["values"], objective, strict=True) if v is not None]
        if len(present) < 2:
            continue
        if param["kind"] == "categorical":
            order = {c: i for i, c in enumerate(param["categories"])}
            xs = [float(order[str(v)]) for v, _ in present]
        else:
            xs = [float(v) for v, _ in present]
        scored.append((abs(_correlation(_ranks(xs), [o for _, o in present])), param["name"]))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [name for _, name in scored], "rank correlation with the objective"


def _axis(param: dict[str, Any]) -> dict[str, Any]:
    """An axis of the contour: its ticks (bin centres or categories) and each trial's cell."""
    values = param["values"]
    axis: dict[str, Any] = {"name": param["name"], "log": param["log"]}
    if param["kind"] == "categorical":
        order = {category: index for index, category in enumerate(param["categories"])}
        axis.update(
            categorical=True,
            ticks=list(param["categories"]),
            cells=[None if v is None else order[str(v)] for v in values],
        )
        return axis
    numbers = [float(v) for v in values if v is not None]
    log = param["log"] and min(numbers) > 0
    scaled = [math.log10(v) for v in numbers] if log else numbers
    low, high = min(scaled), max(scaled)
    width = (high - low) / CONTOUR_BINS or 1.0
    bins = CONTOUR_BINS if high > low else 1
    centres = [low + width * (index + 0.5) for index in range(bins)]

    def cell(value: Any) -> int | None:
        if value is None:
            return None
        position = math.log10(float(value)) if log else float(value)
        return min(int((position - low) / width), bins - 1)

    axis.update(
        categorical=False,
        ticks=[10**c if log else c for c in centres],
        cells=[cell(v) for v in values],
    )
    return axis


def stored_importances(found: Any) -> dict[str, Any] | None:
    """The importances the study's last ``finish`` wrote (``found``: its
    ``tuning/importances.json``, Optuna's fANOVA, seeded, and PED-ANOVA), None before any:
    computing them here would need the Optuna storage, and seconds."""
    if not isinstance(found, dict) or not isinstance(found.get("importances"), dict):
        return None
    return {
        "importances": {
            evaluator: {str(k): float(v) for k, v in values.items()}
            for evaluator, values in found["importances"].items()
            if isinstance(values, dict)
        },
        "errors": found.get("errors") or {},
        "seed": found.get("seed"),
    }


# -- the Tuning tab ----------------------------------------------------------------------


def with_studies(store: RunStore, listing: dict[str, Any]) -> dict[str, Any]:
    """The runs page's dict, with ``studies`` on its Tuning tab: each study of the page
    with its state, trials per state (one grouped query for the page), best value and
    start."""
    if listing["query"]["tab"] != "tuning" or listing["error"]:
        return listing
    parents = listing["runs"]
    ids = [str(listing["experiment"]["experiment_id"])]
    counts: dict[str, dict[str, int]] = {row["run_id"]: {} for row in parents}
    if parents:
        grouped = store.count_by(ids, [f"tags.{PARENT_TAG}", "status"], kind="trial")
        for (parent, status), count in grouped.items():
            if parent in counts:
                state = names.TRIAL_STATE.get(str(status), "FAIL")
                counts[parent][state] = counts[parent].get(state, 0) + count
    studies = []
    for row in parents:
        study = study_from_row(row)
        by_state = {state: counts[row["run_id"]].get(state, 0) for state in names.STATES}
        best = _best_value(store, study, ids) if by_state["COMPLETE"] else None
        studies.append(
            {
                **study_header(study),
                "counts": {**by_state, "total": sum(by_state.values())},
                "best_value": best,
                "duration_s": row.get("duration_s"),
            }
        )
    return {**listing, "studies": studies}


def _best_value(store: RunStore, study: StoredStudy, experiment_ids: list[str]) -> float | None:
    """The best objective value among the study's complete trials, ranked in SQL."""
    if not study.single or not study.objective:
        return None
    try:
        found = store.best(
            experiment_ids,
            metric=study.objective,
            direction="max" if study.maximize else "min",
            kind="trial",
            filter_string=f"{trial_filter(study.run_id)} and attributes.status = 'FINISHED'",
            runners_up=0,
        )
    except FlowscopeError:  # no complete trial has the metric yet
        return None
    return found.value


# -- small numerics ----------------------------------------------------------------------


def _categories(values: list[Any]) -> list[str]:
    return sorted({str(value) for value in values if value is not None})


def _mean(values: list[float] | None) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share theirs), as Spearman's correlation ranks."""
    order = sorted(range(len(values)), key=lambda index: values[index])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2
        start = end + 1
    return ranks


def _correlation(xs: list[float], ys: list[float]) -> float:
    """Pearson's correlation of two equally long lists; 0 when either is constant."""
    count = len(xs)
    mean_x, mean_y = math.fsum(xs) / count, math.fsum(ys) / count
    cov = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    var_x = math.fsum((x - mean_x) ** 2 for x in xs)
    var_y = math.fsum((y - mean_y) ** 2 for y in ys)
    return cov / math.sqrt(var_x * var_y) if var_x > 0 and var_y > 0 else 0.0
