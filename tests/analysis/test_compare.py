"""Comparing runs side by side: the parameters that differ, the metric table, the best runs."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from flowscope.analysis.compare import MAX_RUNS, compare_runs
from flowscope.errors import FlowscopeError


def _row(run_id: str, **columns: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": run_id,
        "run_name": f"name-{run_id}",
        "kind": "training",
        "status": "FINISHED",
        "start_time": 1,
    }
    row.update({key.replace("__", "."): value for key, value in columns.items()})
    return row


RUNS = [
    _row("r1", params__model="rf", params__seed="0", metrics__accuracy=0.9, metrics__log_loss=0.3),
    _row("r2", params__model="knn", params__seed="0", metrics__accuracy=0.8, metrics__log_loss=0.2),
    _row("r3", params__model="rf", params__seed="0", params__depth="4", metrics__log_loss=0.5),
]


def test_only_differences_hides_identical_params_and_counts_them() -> None:
    result = compare_runs(RUNS)
    assert [param["name"] for param in result["params"]] == ["depth", "model"]
    assert result["hidden_params"] == 1
    assert all(param["differs"] for param in result["params"])
    everything = compare_runs(RUNS, only_differences=False)
    assert [param["name"] for param in everything["params"]] == ["depth", "model", "seed"]
    assert everything["hidden_params"] == 0
    assert everything["params"][2] == {"name": "seed", "values": ["0", "0", "0"], "differs": False}
    json.dumps(result, allow_nan=False)


def test_missing_params_and_metrics_are_none() -> None:
    result = compare_runs(RUNS)
    depth = next(param for param in result["params"] if param["name"] == "depth")
    assert depth["values"] == [None, None, "4"]
    accuracy = next(metric for metric in result["metrics"] if metric["name"] == "accuracy")
    assert accuracy["values"] == [0.9, 0.8, None]
    with_nan = compare_runs([*RUNS[:2], _row("r4", metrics__accuracy=math.nan)])
    assert with_nan["metrics"][0]["values"] == [0.9, 0.8, None]  # NaN cannot go in JSON


def test_best_follows_the_direction_of_each_metric() -> None:
    metrics = {metric["name"]: metric for metric in compare_runs(RUNS)["metrics"]}
    assert (metrics["accuracy"]["direction"], metrics["accuracy"]["best"]) == ("max", [0])
    assert (metrics["log_loss"]["direction"], metrics["log_loss"]["best"]) == ("min", [1])
    overridden = compare_runs(RUNS, directions={"accuracy": "min"})["metrics"][0]
    assert (overridden["direction"], overridden["best"]) == ("min", [1])
    with pytest.raises(FlowscopeError, match="direction for 'accuracy' must be"):
        compare_runs(RUNS, directions={"accuracy": "up"})


def test_every_tied_run_is_best_and_a_metric_nobody_has_has_no_best() -> None:
    rows = [
        _row("a", metrics__f1=0.7, metrics__rmse=None),
        _row("b", metrics__f1=0.9),
        _row("c", metrics__f1=0.9),
    ]
    metrics = {metric["name"]: metric for metric in compare_runs(rows)["metrics"]}
    assert metrics["f1"]["best"] == [1, 2]
    assert metrics["rmse"]["best"] == [] and metrics["rmse"]["values"] == [None, None, None]


def test_runs_are_described_and_duplicates_removed() -> None:
    result = compare_runs([RUNS[0], RUNS[1], RUNS[0]])
    assert result["runs"] == [
        {"run_id": "r1", "run_name": "name-r1", "kind": "training", "status": "FINISHED"},
        {"run_id": "r2", "run_name": "name-r2", "kind": "training", "status": "FINISHED"},
    ]
    assert result["metrics"][0]["values"] == [0.9, 0.8]


def test_fewer_than_two_or_more_than_fifty_runs_are_refused() -> None:
    with pytest.raises(FlowscopeError, match="got 1 \\(after removing 1 duplicate") as error:
        compare_runs([RUNS[0], RUNS[0]])
    assert error.value.status == 400
    with pytest.raises(FlowscopeError, match="got 0"):
        compare_runs([])
    many = [_row(f"r{index}") for index in range(MAX_RUNS + 1)]
    with pytest.raises(FlowscopeError, match=f"2 to 50 runs, got {MAX_RUNS + 1}"):
        compare_runs(many)
    assert len(compare_runs(many[:MAX_RUNS])["runs"]) == MAX_RUNS
