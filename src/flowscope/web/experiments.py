"""Experiments, and the runs of one experiment with tabs, summary, filter, sort and paging;
the Tuning tab lists the experiment's studies."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from flowscope.analysis.listing import RunsQuery, experiments_overview, runs_listing
from flowscope.auth.access import EXPERIMENT
from flowscope.tuning.view import with_studies
from flowscope.web.access import access_of
from flowscope.web.render import PAGE_RESPONSES, page

router = APIRouter()


@router.get("/experiments", responses=PAGE_RESPONSES)
def experiments(request: Request) -> Response:
    access = access_of(request)
    visible = None if access.unrestricted else partial(access.allows, EXPERIMENT, need="read")
    return page(request, "experiments.html", experiments_overview(request.app.state.store, visible))


@router.get("/experiments/{experiment_id}", responses=PAGE_RESPONSES)
def experiment_runs(
    request: Request,
    experiment_id: str,
    tab: str = "all",
    filter: str = "",
    order: str = "",
    page_number: Annotated[int, Query(alias="page")] = 1,
    page_size: int = 50,
    columns: str = "",
    metric: str = "",
    direction: str = "",
) -> Response:
    query = RunsQuery(
        tab=tab,
        filter=filter.strip(),
        order=order.strip(),
        page=page_number,
        page_size=page_size,
        columns=[column for column in columns.split(",") if column],
        metric=metric.strip(),
        direction=direction,
    )
    store = request.app.state.store
    data = with_studies(store, runs_listing(store, experiment_id, query))
    return page(request, "runs.html", data, status=400 if data["error"] else 200)
