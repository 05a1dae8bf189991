"""Side-by-side comparison of 2 to 50 runs: the parameters that differ and the metric table
with the best run per metric (what the compare page and its JSON show)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from flowscope.analysis.best import default_direction
from flowscope.errors import FlowscopeError

__all__ = ["MAX_RUNS", "MIN_RUNS", "compare_runs"]

MIN_RUNS = 2
# Beyond this a table of columns stops being readable, and the significance matrix on the
# same page grows with the square of the count.
MAX_RUNS = 50


def _unique_runs(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    runs: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        run_id = row.get("run_id")
        if not run_id:
            raise FlowscopeError("every run row needs a run_id")
        runs.setdefault(str(run_id), row)
    if not MIN_RUNS <= len(runs) <= MAX_RUNS:
        duplicates = len(rows) - len(runs)
        note = f" (after removing {duplicates} duplicate(s))" if duplicates else ""
        raise FlowscopeError(
            f"comparing needs {MIN_RUNS} to {MAX_RUNS} runs, got {len(runs)}{note}", status=400
        )
    return list(runs.values())


def _columns(runs: Sequence[Mapping[str, Any]], prefix: str) -> list[str]:
    names = {key[len(prefix) :] for run in runs for key in run if key.startswith(prefix)}
    return sorted(names)


def _number(value: Any) -> float | None:
    """A metric value as a float, None when missing or NaN (which JSON cannot carry)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _best(values: Sequence[float | None], direction: str) -> list[int]:
    present = [value for value in values if value is not None]
    if not present:
        return []
    target = max(present) if direction == "max" else min(present)
    return [index for index, value in enumerate(values) if value == target]


def compare_runs(
    rows: Sequence[Mapping[str, Any]],
    *,
    only_differences: bool = True,
    directions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Compare flat run rows (``run_id``, ``run_name``, ``params.*``, ``metrics.*`` as
    :func:`flowscope.analysis.run_row` gives them) column by column.

    Duplicate runs are dropped; fewer than 2 or more than 50 distinct runs is a
    :class:`FlowscopeError`. Each parameter lists one value per run (None where a run lacks
    it) and whether they differ; with ``only_differences`` the identical ones are left out and
    counted in ``hidden_params``. Each metric lists its values, its ``direction``
    (``directions`` overrides :func:`~flowscope.analysis.best.default_direction`) and
    ``best``: the indices of every run holding the best value, so ties list them all, and
    an empty list when no run has the metric.

    >>> compare_runs(store.runs(run_ids), directions={"margin": "min"})["metrics"]  # doctest: +SKIP
    """
    runs = _unique_runs(rows)
    directions = directions or {}
    for name, direction in directions.items():
        if direction not in ("max", "min"):
            raise FlowscopeError(
                f"direction for {name!r} must be 'max' or 'min', not {direction!r}"
            )
    params = []
    hidden = 0
    for name in _columns(runs, "params."):
        values = [run.get(f"params.{name}") for run in runs]
        differs = any(value != values[0] for value in values[1:])
        if only_differences and not differs:
            hidden += 1
            continue
        params.append({"name": name, "values": values, "differs": differs})
    metrics = []
    for name in _columns(runs, "metrics."):
        numbers = [_number(run.get(f"metrics.{name}")) for run in runs]
        direction = directions.get(name) or default_direction(name)
        metrics.append(
            {
                "name": name,
                "values": numbers,
                "direction": direction,
                "best": _best(numbers, direction),
            }
        )
    return {
        "runs": [
            {
                "run_id": str(run["run_id"]),
                "run_name": run.get("run_name"),
                "kind": run.get("kind"),
                "status": run.get("status"),
            }
            for run in runs
        ],
        "params": params,
        "hidden_params": hidden,
        "only_differences": only_differences,
        "metrics": metrics,
    }
