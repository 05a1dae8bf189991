"""The best run: by which metric, in which direction, under which constraints, and why."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowscope.errors import FlowscopeError

# Metric names that are better when smaller; everything else is better when larger.
_SMALLER_IS_BETTER = ("loss", "error", "rmse", "mae", "mse", "mape", "pinball", "time", "latency")


def default_direction(metric: str) -> str:
    """``"min"`` for losses, errors and times (``log_loss``, ``rmse``, ``training_time_s``),
    ``"max"`` for the rest (``accuracy``, ``f1``, ``r2``)."""
    name = metric.lower()
    return "min" if any(part in name for part in _SMALLER_IS_BETTER) else "max"


@dataclass
class BestRun:
    """The winner among ``considered`` runs and what decided it."""

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "direction": self.direction,
            "constraints": self.constraints,
            "value": self.value,
            "winner": dict(self.winner),
            "runners_up": [dict(row) for row in self.runners_up],
            "considered": self.considered,
            "without_metric": self.without_metric,
            "tie_break": self.tie_break,
        }


def best_run(
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    direction: str | None = None,
    *,
    constraints: str | None = None,
    runners_up: int = 3,
) -> BestRun:
    """Rank run rows (from :func:`flowscope.analysis.runs.run_row`) by ``metric``.

    Runs without the metric (or with NaN) are left out and counted. Ties on the value go
    to the run that started first: it reached that value first, and later runs with the
    same score add nothing. ``constraints`` only records what filtered ``rows``.
    """
    direction = direction or default_direction(metric)
    if direction not in ("max", "min"):
        raise FlowscopeError(f"direction must be 'max' or 'min', not {direction!r}")
    column = f"metrics.{metric}"
    scored = [
        row
        for row in rows
        if isinstance(row.get(column), float | int) and not math.isnan(row[column])
    ]
    if not scored:
        where = f" matching {constraints!r}" if constraints else ""
        raise FlowscopeError(
            f"no run{where} has the metric {metric!r} ({len(rows)} runs looked at)"
        )
    sign = -1.0 if direction == "max" else 1.0
    ranking = sorted(scored, key=lambda row: (sign * row[column], row.get("start_time") or 0))
    winner = ranking[0]
    tied = [row for row in ranking[1:] if row[column] == winner[column]]
    tie_break = None
    if tied:
        tie_break = (
            f"{len(tied) + 1} runs share {metric} = {winner[column]:g}; the earliest started wins"
        )
    return BestRun(
        metric=metric,
        direction=direction,
        constraints=constraints,
        winner=winner,
        value=float(winner[column]),
        runners_up=list(ranking[1 : 1 + runners_up]),
        considered=len(rows),
        without_metric=len(rows) - len(scored),
        tie_break=tie_break,
        ranking=ranking,
    )
