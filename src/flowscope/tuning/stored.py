"""A study as the MLflow store holds it: its parent run and its trial runs, read back
through the run store alone.

The dashboard never opens the Optuna storage: MLflow is the system of record, and the
storage (a SQLite file on a tuning machine, a PostgreSQL the dashboard has no account on)
may be out of its reach. Everything a study page shows is therefore read from what
:class:`~flowscope.tuning.tracker.StudyTracker` wrote: the parent's params (direction,
sampler, ``space.<name>``) and tags, and each trial run's number, state, parameters and
objective metric. Trial runs are rows of the run store (see
:mod:`flowscope.analysis.query`), so a study of 10,000 trials is read in a few queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from flowscope.analysis.task_runs import search_all
from flowscope.errors import NotFoundError
from flowscope.tuning import names

if TYPE_CHECKING:
    from flowscope.analysis.query import RunStore

PARENT_TAG = MLFLOW_PARENT_RUN_ID
# Metrics every trial run has besides the objective.
_BOOKKEEPING = (names.DURATION_METRIC, names.TRIAL_NUMBER_METRIC)


@dataclass
class Param:
    """One parameter of the search space, as a reader needs it to plot it."""

    name: str
    kind: str  # "int", "float" or "categorical"
    log: bool = False
    described: str | None = None  # the parent's ``space.<name>`` param, when logged


@dataclass
class StoredStudy:
    """A study's parent run, read back: what it optimizes and how."""

    run_id: str
    experiment_id: str
    name: str
    status: str
    start_time: int | None
    end_time: int | None
    objective: str
    directions: list[str]
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    space: dict[str, Param] = field(default_factory=dict)

    @property
    def single(self) -> bool:
        return len(self.directions) == 1

    @property
    def maximize(self) -> bool:
        return self.directions == ["maximize"]

    def value_keys(self) -> list[str]:
        """The metric names of the objective values, as the tracker logs them."""
        if self.single:
            return [self.objective]
        return [f"{self.objective}_{index}" for index in range(len(self.directions))]


def read_study(store: RunStore, run_id: str) -> StoredStudy:
    """The study whose parent run is ``run_id``; :class:`NotFoundError` when there is no
    such run or the run is not a study's."""
    (row,) = store.runs([run_id])
    if row["kind"] != "tuning":
        raise NotFoundError(f"run {run_id} is not a study (it is a {row['kind']} run)")
    return study_from_row(row)


def study_from_row(row: dict[str, Any]) -> StoredStudy:
    """A study's parent run, from its run store row."""
    run_id = row["run_id"]
    params = _prefixed(row, "params.")
    tags = _prefixed(row, "tags.")
    metrics = _prefixed(row, "metrics.")
    directions = [d for d in params.get("direction", "minimize").split(",") if d]
    study = StoredStudy(
        run_id=row["run_id"],
        experiment_id=row["experiment_id"],
        name=tags.get(names.STUDY_TAG) or params.get("study_name") or row["run_name"] or run_id,
        status=row["status"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        objective=tags.get(names.OBJECTIVE_TAG) or params.get("metric") or "",
        directions=directions or ["minimize"],
        params=params,
        tags=tags,
        metrics=metrics,
    )
    study.space = {
        key.removeprefix("space."): _described_param(key.removeprefix("space."), text)
        for key, text in params.items()
        if key.startswith("space.")
    }
    return study


def trial_filter(parent_run_id: str) -> str:
    """The run filter (MLflow's syntax) for the runs whose parent is ``parent_run_id``."""
    if not parent_run_id.isalnum():  # MLflow's run ids are hex: nothing to quote
        raise NotFoundError(f"no study with run id {parent_run_id!r}")
    return f"tags.`{PARENT_TAG}` = '{parent_run_id}'"


def read_trials(store: RunStore, study: StoredStudy) -> list[dict[str, Any]]:
    """Every trial run of ``study`` as a record, by trial number: ``number``, ``state``,
    ``value`` (``values`` for several objectives), ``params`` typed by the search space,
    ``duration_s``, ``start_time`` and the run's id."""
    rows = search_all(
        store,
        [study.experiment_id],
        kind="trial",
        filter_string=trial_filter(study.run_id),
        tags=[names.TRIAL_NUMBER_TAG, names.TRIAL_STATE_TAG],
    )
    if not study.objective:
        study.objective = guess_objective(rows)
    # one pass over each row's columns: a study page reads thousands of them
    raw = [{key[7:]: value for key, value in row.items() if key[:7] == "params."} for row in rows]
    _complete_space(study, raw)
    trials = [trial_record(row, params, study) for row, params in zip(rows, raw, strict=True)]
    trials.sort(key=lambda trial: (trial["number"] is None, trial["number"] or 0))
    return trials


def trial_record(row: dict[str, Any], params: dict[str, str], study: StoredStudy) -> dict[str, Any]:
    """One trial run's row (and its ``params``, as MLflow keeps them) as the study page
    shows it."""
    status = row["status"]
    state = "RUNNING" if status == "RUNNING" else row.get(f"tags.{names.TRIAL_STATE_TAG}")
    state = state or names.TRIAL_STATE.get(status, "FAIL")
    # a pruned trial's value is its last report, as Optuna records it
    values = [_finite(row.get(f"metrics.{key}")) for key in study.value_keys()]
    duration = row.get(f"metrics.{names.DURATION_METRIC}")
    if duration is None and row["start_time"] and row["end_time"]:
        duration = (row["end_time"] - row["start_time"]) / 1000
    space = study.space
    return {
        "number": _number(
            row.get(f"tags.{names.TRIAL_NUMBER_TAG}"),
            row.get(f"metrics.{names.TRIAL_NUMBER_METRIC}"),
        ),
        "state": state,
        "value": values[0] if study.single else None,
        "values": None if study.single else values,
        "params": {name: typed(value, space.get(name)) for name, value in params.items()},
        "duration_s": duration,
        "start_time": row["start_time"],
        "run_id": row["run_id"],
    }


def best_trial(trials: list[dict[str, Any]], study: StoredStudy) -> dict[str, Any] | None:
    """The complete trial with the best value, the lowest number among equals (Optuna's
    ``best_trial`` of a study without ties); None for several objectives or none complete."""
    if not study.single:
        return None
    scored = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    if not scored:
        return None
    sign = -1.0 if study.maximize else 1.0
    return min(scored, key=lambda t: (sign * t["value"], t["number"] is None, t["number"] or 0))


def guess_objective(rows: list[dict[str, Any]]) -> str:
    """The objective's metric name of a study recorded before the parent named it: the
    name behind ``intermediate_<name>``, else the one metric trials have besides
    bookkeeping, else ``value`` (the tracker's default)."""
    keys = {key[8:] for row in rows for key in row if key.startswith("metrics.")}
    for key in sorted(keys):
        if key.startswith(names.INTERMEDIATE_PREFIX):
            return key.removeprefix(names.INTERMEDIATE_PREFIX)
    rest = sorted(keys - set(_BOOKKEEPING))
    return rest[0] if len(rest) == 1 else "value"


def typed(value: Any, param: Param | None) -> Any:
    """A parameter as MLflow keeps it (text) back as Optuna suggested it: a number unless
    the space says categorical (choices like ``[1, 2, 4]`` stay categories)."""
    if not isinstance(value, str) or (param is not None and param.kind == "categorical"):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    if param is not None and param.kind == "int" and number.is_integer():
        return int(number)
    return int(number) if number.is_integer() and "." not in value and "e" not in value else number


def space_from_json(data: Any) -> dict[str, Param]:
    """The parameters of a search space in Optuna's JSON form (the parent's
    ``tuning/search_space.json``, written at the end of a study whose space was not known
    up front); nothing for anything else."""
    from flowscope.tuning.space import describe_json

    if not isinstance(data, dict):
        return {}
    return {
        str(name): _described_param(str(name), describe_json(entry))
        for name, entry in data.items()
        if isinstance(entry, dict)
    }


def _described_param(name: str, text: str) -> Param:
    """A parameter from the tracker's one-line description (``float 0.01..0.3 log``)."""
    kind = text.split(" ", 1)[0]
    if kind not in ("int", "float", "categorical"):
        kind = "categorical"
    return Param(name, kind, log=text.endswith(" log") or " log " in text, described=text)


def _complete_space(study: StoredStudy, params: list[dict[str, str]]) -> None:
    """Parameters the parent does not describe (a study whose space was not known up
    front) are numbers where every trial's value reads as one, else categories."""
    seen: dict[str, set[str]] = {}
    for found in params:
        for name, value in found.items():
            if name not in study.space:
                seen.setdefault(name, set()).add(str(value))
    for name, values in sorted(seen.items()):
        numbers = [typed(value, None) for value in values]
        if all(isinstance(number, int | float) for number in numbers):
            kind = "int" if all(isinstance(number, int) for number in numbers) else "float"
        else:
            kind = "categorical"
        study.space[name] = Param(name, kind)


def _prefixed(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key[len(prefix) :]: value for key, value in row.items() if key.startswith(prefix)}


def _number(tag: str | None, metric: float | None) -> int | None:
    if tag is not None and tag.lstrip("-").isdigit():
        return int(tag)
    if metric is not None and math.isfinite(metric):
        return int(metric)
    return None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
