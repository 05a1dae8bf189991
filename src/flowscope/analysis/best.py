"""The best run: the one ranking rule, its checks and messages, and the result.

Every path that names a best run goes through here: :func:`best_run` ranks rows in Python
(the client store, reports, tests), and the SQL store ranks in the database in the order of
:func:`rank_key` and builds its answer with :func:`ranked_result`. The rule: runs without the
metric, or with NaN, are left out and counted; the best score wins; ties go to the run that
started first (it reached that value first; later runs with the same score add nothing), then
to the smaller run id, so that the answer never depends on the order rows come in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowscope.errors import FlowscopeError

DIRECTIONS = ("max", "min")
# What a run is scored by: its latest value of the metric, or the min or max over its steps.
BEST_VALUES = ("last", "min", "max")
# Metric names that are better when smaller; everything else is better when larger.
_SMALLER_IS_BETTER = ("loss", "error", "rmse", "mae", "mse", "mape", "pinball", "time", "latency")


def default_direction(metric: str) -> str:
    """``"min"`` for losses, errors and times (``log_loss``, ``rmse``, ``training_time_s``),
    ``"max"`` for the rest (``accuracy``, ``f1``, ``r2``)."""
    name = metric.lower()
    return "min" if any(part in name for part in _SMALLER_IS_BETTER) else "max"


def check_direction(metric: str, direction: str | None) -> str:
    """``direction``, or the metric's default when none is given; anything but max/min is
    a :class:`FlowscopeError`."""
    direction = direction or default_direction(metric)
    if direction not in DIRECTIONS:
        raise FlowscopeError(f"direction must be 'max' or 'min', not {direction!r}")
    return direction


def check_best(metric: str, direction: str | None, value: str, runners_up: int) -> str:
    """Check a best-run question; returns the direction to rank by."""
    direction = check_direction(metric, direction)
    if value not in BEST_VALUES:
        raise FlowscopeError(f"value must be one of {', '.join(BEST_VALUES)}, not {value!r}")
    if runners_up < 0:
        raise FlowscopeError(f"runners_up must be 0 or more, not {runners_up}")
    return direction


def is_score(value: Any) -> bool:
    """True for a value a run can be ranked by: a number, not NaN."""
    return isinstance(value, float | int) and not math.isnan(value)


def rank_key(score: float, start_time: int | None, run_id: str, direction: str) -> tuple[Any, ...]:
    """Where a run with this score stands: best score first, then the earliest start (none
    counts as 0), then the smaller run id. ``_sql.best_ranking`` orders by the same."""
    return (-score if direction == "max" else score, start_time or 0, run_id)


def no_metric_error(metric: str, constraints: str | None, looked_at: int) -> FlowscopeError:
    where = f" matching {constraints!r}" if constraints else ""
    return FlowscopeError(f"no run{where} has the metric {metric!r} ({looked_at} runs looked at)")


def tie_break_note(metric: str, value: float, sharing: int) -> str | None:
    """What decided between the ``sharing`` runs with the winning value, if more than one."""
    if sharing < 2:
        return None
    return f"{sharing} runs share {metric} = {value:g}; the earliest started wins"


@dataclass
class BestRun:
    """The winner among ``considered`` runs and what decided it.

    ``ranking`` lists the ranked runs best first (the winner and runners-up from a run
    store, every scored run from :func:`best_run`) and ``scores`` what each was ranked by:
    the rows show a metric's latest value, which is not the score when ranking by the min
    or max over steps. Not ``counted``, ``considered`` and ``without_metric`` are the
    lower bounds the ranking itself shows, and :meth:`as_dict` gives them as ``None``."""

    metric: str
    direction: str
    constraints: str | None
    winner: Mapping[str, Any]
    value: float
    runners_up: list[Mapping[str, Any]]
    considered: int
    without_metric: int
    tie_break: str | None = None
    ranking: list[Mapping[str, Any]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    counted: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "direction": self.direction,
            "constraints": self.constraints,
            "value": self.value,
            "winner": dict(self.winner),
            "runners_up": [dict(row) for row in self.runners_up],
            "considered": self.considered if self.counted else None,
            "without_metric": self.without_metric if self.counted else None,
            "tie_break": self.tie_break,
        }


def ranked_result(
    metric: str,
    direction: str,
    constraints: str | None,
    ranking: Sequence[Mapping[str, Any]],
    scores: Sequence[float],
    *,
    considered: int,
    scored: int,
    sharing: int,
    runners_up: int,
    counted: bool = True,
) -> BestRun:
    """The :class:`BestRun` for runs already ranked by :func:`rank_key`: ``considered`` runs
    looked at, ``scored`` of them with a score, ``sharing`` with the winner's score. No
    ranked run is the error naming the metric."""
    if not ranking:
        raise no_metric_error(metric, constraints, considered)
    return BestRun(
        metric=metric,
        direction=direction,
        constraints=constraints,
        winner=ranking[0],
        value=float(scores[0]),
        runners_up=list(ranking[1 : 1 + runners_up]),
        considered=considered,
        without_metric=considered - scored,
        tie_break=tie_break_note(metric, float(scores[0]), sharing),
        ranking=list(ranking),
        scores=[float(score) for score in scores],
        counted=counted,
    )


def best_run(
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    direction: str | None = None,
    *,
    constraints: str | None = None,
    runners_up: int = 3,
) -> BestRun:
    """Rank run rows (:func:`flowscope.analysis.run_row`) by their ``metrics.<metric>``
    column, by the rule in the module docstring. ``constraints`` only records what filtered
    ``rows``; ``ranking`` holds every scored row.

    >>> best_run(rows, "log_loss").winner["run_id"]  # doctest: +SKIP
    """
    direction = check_direction(metric, direction)
    column = f"metrics.{metric}"
    scored = [row for row in rows if is_score(row.get(column))]
    ranking = sorted(
        scored,
        key=lambda row: rank_key(
            row[column], row.get("start_time"), str(row.get("run_id", "")), direction
        ),
    )
    scores = [float(row[column]) for row in ranking]
    sharing = sum(1 for score in scores if scores and score == scores[0])
    return ranked_result(
        metric,
        direction,
        constraints,
        ranking,
        scores,
        considered=len(rows),
        scored=len(scored),
        sharing=sharing,
        runners_up=runners_up,
    )
