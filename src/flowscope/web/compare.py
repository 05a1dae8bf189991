"""Comparing runs: parameter differences, metrics, and charts across 2 to 50 runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from flowscope.analysis.compare_view import compare_view, parse_run_ids
from flowscope.web import charts
from flowscope.web.render import PAGE_RESPONSES, figure_json, page, wants_json

router = APIRouter()


@router.get("/compare", responses=PAGE_RESPONSES)
def compare(
    request: Request,
    runs: Annotated[list[str] | None, Query()] = None,
    metric: str = "",
    param: str = "",
    all_params: bool = False,
) -> Response:
    """``?runs=a,b,c`` or ``?runs=a&runs=b`` (what the runs page's checkboxes send)."""
    data = compare_view(
        request.app.state.settings,
        request.app.state.store,
        parse_run_ids(",".join(runs or [])),
        metric=metric.strip(),
        param=param.strip(),
        only_differences=not all_params,
    )
    if not wants_json(request):
        data["figures"] = {name: figure_json(f) for name, f in compare_figures(data).items()}
    return page(request, "compare.html", data)


def compare_figures(data: dict[str, Any]) -> dict[str, Any]:
    """Bars per metric, overlaid histories, parallel coordinates and a scatter."""
    figures: dict[str, Any] = {}
    for entry in data["metrics"][:12]:
        figures[f"bar:{entry['name']}"] = charts.bar_figure(
            entry["name"], data["labels"], entry["values"]
        )
    for metric, series in data["histories"].items():
        figures[f"history:{metric}"] = charts.history_figure(metric, series)
    if data["metric"] and data["parallel"]["dimensions"]:
        figures["parallel"] = charts.parallel_figure(
            data["parallel"]["dimensions"], data["parallel"]["metric"], data["metric"]
        )
    if data.get("importances"):
        figures["importances"] = charts.importance_comparison_figure(data["importances"])
    if data["metric"] and data["param"]:
        figures["scatter"] = charts.scatter_figure(
            data["param"],
            data["metric"],
            data["scatter"]["x"],
            data["scatter"]["y"],
            data["labels"],
        )
    return figures
