"""The comparison report of an experiment's runs as a page (its JSON twin the report's
data), and the report's files to download: the self-contained HTML, every run as CSV, and
the Markdown with its charts and CSV as a zip. The query parameters are the options of
``flowscope report compare``."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.reports import CompareQuery, compare_experiment, markdown_zip, render_comparison
from flowscope.reports.comparison import KINDS
from flowscope.reports.comparison_output import TABLE_ROWS
from flowscope.web.render import PAGE_RESPONSES, figure_json, page, wants_json
from flowscope.web.report_charts import report_figures

if TYPE_CHECKING:
    from flowscope.analysis.query import RunStore

router = APIRouter()

# The report's files by extension, with their media types.
DOWNLOADS = {
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "zip": "application/zip",
}


def report_query(
    metric: str = "",
    direction: str = "",
    value: str = "last",
    where: str = "",
    filter: str = "",
    kind: str = "training",
    importance: str = "auto",
) -> CompareQuery:
    """The report's options from the query string; ``filter`` (the runs page's name for
    it) stands for ``where`` when that is not given."""
    return CompareQuery(
        metric=metric.strip(),
        direction=direction.strip(),
        value=value.strip(),
        where=(where or filter).strip(),
        kind=kind.strip(),
        importance=importance.strip(),
    )


ReportQuery = Annotated[CompareQuery, Depends(report_query)]


@router.get("/experiments/{experiment_id}/report", responses=PAGE_RESPONSES)
def report(request: Request, experiment_id: str, query: ReportQuery) -> Response:
    """The report page; a query the report cannot answer (a metric no run has, a filter
    MLflow rejects, no run left after it) is a 400 showing the form and what is wrong."""
    settings, store = request.app.state.settings, request.app.state.store
    try:
        data = compare_experiment(settings, store, experiment_id, query)
    except FlowscopeError as exc:
        if exc.status != 400 or wants_json(request):  # an unknown experiment, JSON: as usual
            raise
        data = {"experiment": store.experiment(experiment_id), "query": asdict(query)}
        data.update(_form(store, data), error=exc.message)
        return page(request, "report.html", data, status=400)
    if not wants_json(request):
        data["figures"] = {name: figure_json(f) for name, f in report_figures(data).items()}
        data.update(_form(store, data), table_rows=TABLE_ROWS)
    return page(request, "report.html", data)


@router.get("/experiments/{experiment_id}/report.{extension}")
def download(request: Request, experiment_id: str, extension: str, query: ReportQuery) -> Response:
    """``report.html`` (what ``flowscope report compare`` prints), ``report.csv`` (every
    run) or ``report.zip`` (the Markdown, its charts and the CSV), as an attachment."""
    media_type = DOWNLOADS.get(extension)
    if media_type is None:
        formats = ", ".join(f"report.{name}" for name in DOWNLOADS)
        raise NotFoundError(f"no report file report.{extension}; there are {formats}")
    settings, store = request.app.state.settings, request.app.state.store
    data = compare_experiment(settings, store, experiment_id, query)
    stem = f"comparison-{data['experiment']['experiment_id']}"
    if extension == "zip":
        body: str | bytes = markdown_zip(data, stem)
    else:
        body = render_comparison(data, extension)
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{stem}.{extension}"'},
    )


def _form(store: RunStore, data: dict[str, Any]) -> dict[str, Any]:
    """What the page's form offers: the metrics of the runs of the kind asked for."""
    kind = data["query"]["kind"]
    ids = [str(data["experiment"]["experiment_id"])]
    return {"metric_names": store.keys(ids, kind if kind in KINDS else None)["metrics"]}
