"""SQL-looking filters, orderings and names in every parameter that reaches a query: each
is a 4xx whose message names the problem, and MLflow's tables are as they were."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security import payloads as p
from tests.security.conftest import Hostile, assert_refused, nothing_written
from tests.security.routes import fill

BEST = {"metric": "accuracy"}
# (route, parameter, other parameters) of every filter and ordering the dashboard takes
FILTERS = (
    ("/api/experiments/{experiment_id}/runs", "filter", {}),
    ("/api/experiments/{experiment_id}/summary", "filter", {}),
    ("/api/experiments/{experiment_id}/best", "filter", BEST),
    ("/experiments/{experiment_id}", "filter", {}),
    ("/experiments/{experiment_id}.json", "filter", {}),
    ("/experiments/{experiment_id}/runs.csv", "filter", {}),
    ("/experiments/{experiment_id}/best", "where", BEST),
    ("/experiments/{experiment_id}/report", "where", BEST),
    ("/experiments/{experiment_id}/report", "filter", BEST),
    ("/experiments/{experiment_id}/report.json", "where", BEST),
    ("/experiments/{experiment_id}/report.csv", "where", BEST),
    ("/experiments/{experiment_id}/report.html", "filter", BEST),
)
ORDERS = (
    ("/api/experiments/{experiment_id}/runs", "order", {}),
    ("/experiments/{experiment_id}", "order", {}),
    ("/experiments/{experiment_id}/runs.csv", "order", {}),
)
# Names a query is built from: a metric, a kind, a tab, a direction, a value, columns.
NAMES = (
    ("/api/experiments/{experiment_id}/runs", "kind", {}),
    ("/api/experiments/{experiment_id}/summary", "metric", {}),
    ("/api/experiments/{experiment_id}/summary", "kind", {}),
    ("/api/experiments/{experiment_id}/summary", "direction", {"metric": "accuracy"}),
    ("/api/experiments/{experiment_id}/best", "metric", {}),
    ("/api/experiments/{experiment_id}/best", "value", BEST),
    ("/api/experiments/{experiment_id}/best", "direction", BEST),
    ("/experiments/{experiment_id}", "tab", {}),
    ("/experiments/{experiment_id}", "metric", {}),
    ("/experiments/{experiment_id}/runs.csv", "tab", {}),
    ("/experiments/{experiment_id}/best", "metric", {}),
    ("/experiments/{experiment_id}/best", "tab", BEST),
    ("/experiments/{experiment_id}/report", "metric", {}),
    ("/experiments/{experiment_id}/report", "kind", BEST),
    ("/experiments/{experiment_id}/report", "importance", BEST),
    ("/compare", "metric", {}),
    ("/compare", "param", {}),
)


def _cases(table: tuple[tuple[str, str, dict[str, str]], ...], values: dict[str, str]) -> list:
    return [
        pytest.param(route, parameter, given, value, id=f"{route} {parameter} {name}")
        for route, parameter, given in table
        for name, value in values.items()
    ]


def _ask(dashboard: Any, hostile: Hostile, route: str, query: dict[str, str]) -> Any:
    if route == "/compare":
        query = {"runs": ",".join(hostile.run_ids), **query}
    with nothing_written(hostile):
        return dashboard.get(fill(route, hostile), params=query)


@pytest.mark.parametrize(
    ("route", "parameter", "given", "value"),
    _cases(FILTERS, p.SQL_FILTERS) + _cases(ORDERS, p.SQL_ORDERS),
)
def test_sql_in_filter(
    dashboard: Any, hostile: Hostile, route: str, parameter: str, given: dict, value: str
) -> None:
    answer = _ask(dashboard, hostile, route, {**given, parameter: value})
    assert_refused(answer, statuses=(400,))


@pytest.mark.parametrize(
    ("route", "parameter", "given", "value"),
    _cases(NAMES, {"drop-table": p.SQL_FILTERS["drop-table"], "quote": "accuracy'"}),
)
def test_sql_in_name(
    dashboard: Any, hostile: Hostile, route: str, parameter: str, given: dict, value: str
) -> None:
    answer = _ask(dashboard, hostile, route, {**given, parameter: value})
    assert_refused(answer, statuses=(400, 404))


def test_tables_answer_after_the_attacks(dashboard: Any, hostile: Hostile) -> None:
    """The runs the attacks aimed at are all still listed."""
    answer = dashboard.get(f"/api/experiments/{hostile.experiment_id}/runs")
    assert answer.status_code == 200
    listed = {run["run_id"] for run in answer.json()["rows"]}
    assert {*hostile.run_ids, hostile.plain_run_id} <= listed
