"""The best-run page: the winner, its runners-up, what decided it, and whether it is
significantly better than the runner-up on the same held-out data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowscope.analysis.best import BEST_VALUES, default_direction
from flowscope.analysis.listing import TABS, main_metric
from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    from flowscope.analysis.query import RunStore
    from flowscope.config import Settings


def best_view(
    settings: Settings,
    store: RunStore,
    experiment_id: str,
    *,
    metric: str = "",
    direction: str = "",
    value: str = "last",
    where: str = "",
    tab: str = "training",
) -> dict[str, Any]:
    """The best run of an experiment by ``metric`` (its ``value``: last, or min/max over
    its steps) in ``direction``, among the runs matching ``where``.

    A bad constraint or a metric no run has comes back as ``error`` for the page to show.
    """
    if value not in BEST_VALUES:
        raise FlowscopeError(f"value must be one of {', '.join(BEST_VALUES)}, not {value!r}")
    if direction not in ("", "max", "min"):
        raise FlowscopeError(f"direction must be max or min, not {direction!r}")
    if tab not in TABS:
        raise FlowscopeError(f"unknown tab {tab!r}; use one of {', '.join(TABS)}")
    experiment = store.experiment(experiment_id)
    metrics = store.keys([experiment_id])["metrics"]
    chosen = metric or main_metric(metrics) or ""
    chosen_direction = direction or (default_direction(chosen) if chosen else "max")
    data: dict[str, Any] = {
        "experiment": experiment,
        "metric": chosen,
        "direction": chosen_direction,
        "value": value,
        "where": where,
        "tab": tab,
        "metrics": metrics,
        "winner": None,
        "runners_up": [],
        "error": None,
        "significance": None,
    }
    if not chosen:
        data["error"] = "no run of this experiment has metrics"
        return data
    try:
        result = store.best(
            [experiment_id],
            metric=chosen,
            direction=chosen_direction,
            value=value,
            kind=None if tab == "all" else tab,
            filter_string=where,
        )
    except FlowscopeError as exc:
        if exc.status >= 500:
            raise
        data["error"] = exc.message
        return data
    data.update(
        winner=dict(result.winner),
        value_of_winner=result.value,
        runners_up=[dict(row) for row in result.runners_up],
        considered=result.considered,
        without_metric=result.without_metric,
        tie_break=result.tie_break,
        statement=_statement(result.considered, chosen, chosen_direction, value, where, tab),
    )
    if result.runners_up:
        from flowscope.analysis.significance import paired_verdict

        data["significance"] = paired_verdict(
            settings, str(result.winner["run_id"]), str(result.runners_up[0]["run_id"]), chosen
        )
    return data


def _statement(count: int, metric: str, direction: str, value: str, where: str, tab: str) -> str:
    which = {"last": "last value", "min": "minimum over steps", "max": "maximum over steps"}[value]
    runs = "runs" if tab == "all" else f"{tab} runs"
    condition = f" where {where}" if where else ""
    return (
        f"{'highest' if direction == 'max' else 'lowest'} {metric} ({which}) among "
        f"{count} {runs}{condition}"
    )
