"""The dashboard's answers alone, as JSON for scripts: one page of an experiment's runs,
its summary, its best run. Each is what one ``MlflowClient.search_runs`` call (or
``mlflow.search_runs`` into pandas) would answer, without the rest of a page (tabs,
columns, studies) that the HTML pages compute around it.

Filters and orderings take MLflow's syntax; ``kind`` picks runs of one kind (all when
absent). A bad filter, kind or metric is a 400 naming it, an unknown experiment a 404.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from flowscope.web.render import json_response

router = APIRouter()

MAX_PAGE_SIZE = 1000


@router.get("/api/experiments/{experiment_id}/runs")
async def runs_page(
    request: Request,
    experiment_id: str,
    filter: str = "",
    order: Annotated[list[str] | None, Query()] = None,
    kind: str | None = None,
    page: int = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> Response:
    """One page of runs in MLflow's order for ``order`` (repeatable), and the total."""
    found = await run_in_threadpool(
        request.app.state.store.search,
        [experiment_id],
        kind=kind or None,
        filter_string=filter.strip(),
        order_by=[item.strip() for item in order or [] if item.strip()],
        page=page,
        page_size=page_size,
    )
    return json_response({"ok": True, **asdict(found)})


@router.get("/api/experiments/{experiment_id}/summary")
async def summary(
    request: Request,
    experiment_id: str,
    metric: str = "",
    direction: str = "",
    filter: str = "",
    kind: str | None = None,
) -> Response:
    """How many runs match, by kind, and count/mean/min/max/best of ``metric``."""
    found = await run_in_threadpool(
        request.app.state.store.summary,
        [experiment_id],
        kind=kind or None,
        filter_string=filter.strip(),
        metric=metric.strip() or None,
        direction=direction or None,
    )
    return json_response({"ok": True, **found})


@router.get("/api/experiments/{experiment_id}/best")
async def best_run(
    request: Request,
    experiment_id: str,
    metric: str,
    direction: str = "",
    value: str = "last",
    filter: str = "",
    kind: str | None = None,
    runners_up: Annotated[int, Query(ge=0, le=20)] = 3,
    counts: bool = True,
) -> Response:
    """The best run by ``metric`` (``value`` last, min or max over its steps) among those
    matching, with its runners-up and what decided it; ``counts=false`` leaves out how many
    runs were considered (``null``) when counting them would cost more than the ranking."""
    found = await run_in_threadpool(
        request.app.state.store.best,
        [experiment_id],
        metric=metric.strip(),
        direction=direction or None,
        value=value,
        kind=kind or None,
        filter_string=filter.strip(),
        runners_up=runners_up,
        counts=counts,
    )
    return json_response({"ok": True, **found.as_dict()})
