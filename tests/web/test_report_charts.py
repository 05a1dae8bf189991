"""The report page's figures on many runs, without a browser: above MAX_POINTS scored
runs a chart draws an evenly spaced sample of the ranking with the best run in it and
says so, while a category's box still comes from every run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flowscope.analysis.param_kinds import param_axes
from flowscope.reports.comparison_charts import MAX_POINTS
from flowscope.web.report_charts import report_figures

RUNS = 2 * MAX_POINTS + 1


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    """The parts of a report's data the figures read, for RUNS runs ranked by loss."""
    rows = [
        {
            "run_id": f"run{index}",
            "run_name": f"<b>run {index}</b>",
            "score": index / RUNS,
            "params.kind": "abc"[index % 3],
            "params.x": str(index * 0.5),
        }
        for index in range(RUNS)
    ]
    axes = [axis.as_dict() for axis in param_axes(rows, ["params.kind", "params.x"])]
    return {
        "charts": {
            "metric_per_run": {"value": "score", "label": "loss", "runs": RUNS},
            "params": axes,
            "parallel": {"axes": axes, "value": "score", "label": "loss"},
            "left_out": [],
        },
        "table": {"rows": rows},
        "counts": {"scored": RUNS},
        "metric": {"name": "loss", "direction": "min", "value": "last", "label": "loss"},
        "insights": {"importances": {}},
        "best": {"confusion": None},
    }


def test_many_runs_are_sampled_evenly_and_say_so(data: dict[str, Any]) -> None:
    figures = report_figures(data)
    assert set(figures) == {"metric", "params", "parallel"}
    note = f"({MAX_POINTS:,} of {RUNS:,} runs, evenly spaced)"
    for figure in figures.values():
        assert figure.layout.title.text.endswith(note)
    curve, best = figures["metric"].data
    ranks = np.asarray(curve.x)
    assert len(ranks) == MAX_POINTS and ranks[0] == 1 and ranks[-1] == RUNS
    assert list(best.y) == [0.0]
    assert figures["parallel"].data[0].dimensions[-1].values.size == MAX_POINTS
    # the box of each category from every run; its points a sample
    box = next(trace for trace in figures["params"].data if trace.type == "box")
    scores = np.asarray([row["score"] for row in data["table"]["rows"]])
    kinds = np.asarray([row["params.kind"] for row in data["table"]["rows"]])
    assert list(box.median) == pytest.approx(
        [float(np.median(scores[kinds == kind])) for kind in "abc"]
    )
    points = [t for t in figures["params"].data if t.type == "scatter" and t.name != "best run"]
    assert [len(t.y) for t in points] == [MAX_POINTS, MAX_POINTS]


def test_names_are_escaped_for_plotly(data: dict[str, Any]) -> None:
    curve = report_figures(data)["metric"].data[0]
    assert curve.hovertext[0] == "&lt;b&gt;run 0&lt;/b&gt;"
