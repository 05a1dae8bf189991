"""Run detail, artifact downloads, the best run, and CSV export of a filtered run list."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from flowscope._output import to_csv
from flowscope.analysis.best_view import best_view
from flowscope.analysis.listing import RunsQuery, every_listed_run
from flowscope.analysis.run_detail import artifact_file, run_detail
from flowscope.web import charts
from flowscope.web.render import PAGE_RESPONSES, figure_json, page, wants_json

router = APIRouter()


@router.get("/experiments/{experiment_id}/runs.csv")
def export_runs(
    request: Request, experiment_id: str, tab: str = "all", filter: str = "", order: str = ""
) -> Response:
    """Every run of the filtered set as CSV, cells safe from spreadsheet formula injection."""
    query = RunsQuery(tab=tab, filter=filter.strip(), order=order.strip())
    rows = every_listed_run(request.app.state.store, experiment_id, query)
    return Response(
        to_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="runs-{experiment_id}.csv"'},
    )


@router.get("/experiments/{experiment_id}/best", responses=PAGE_RESPONSES)
def best(
    request: Request,
    experiment_id: str,
    metric: str = "",
    direction: str = "",
    value: str = "last",
    where: str = "",
    tab: str = "training",
) -> Response:
    data = best_view(
        request.app.state.settings,
        request.app.state.store,
        experiment_id,
        metric=metric.strip(),
        direction=direction,
        value=value,
        where=where.strip(),
        tab=tab,
    )
    return page(request, "best.html", data, status=400 if data.get("error") else 200)


@router.get("/runs/{run_id}", responses=PAGE_RESPONSES)
def run(request: Request, run_id: str) -> Response:
    explain = {k: v for k, v in request.query_params.items() if k.startswith("explain_")}
    data = run_detail(request.app.state.settings, run_id, explain)
    if not wants_json(request):
        figures = {**charts.run_figures(data), **charts.explain_figures(data)}
        data["figures"] = {name: figure_json(figure) for name, figure in figures.items()}
    return page(request, "run.html", data)


@router.get("/runs/{run_id}/artifacts/{path:path}")
def download(request: Request, run_id: str, path: str) -> FileResponse:
    """One artifact of the run; paths outside the run's artifacts are refused (400)."""
    folder = Path(tempfile.mkdtemp(prefix="flowscope-artifact-"))
    cleanup = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
    try:
        local = artifact_file(request.app.state.settings, run_id, path, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(local, filename=local.name, background=cleanup)
