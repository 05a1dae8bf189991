"""The workbench's data: upload a data set (page form and JSON API), list them, and show
one with its preview, profile, target and the train form."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from flowscope.config import Settings
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.modeling.uploads import (
    dataset_view,
    list_datasets,
    staging_dir,
    store_upload,
)
from flowscope.web.access import access_of, check_dataset, dataset_user
from flowscope.web.render import PAGE_RESPONSES, json_response, page
from flowscope.web.uploads import receive_upload

router = APIRouter()


async def _accept_upload(request: Request) -> dict[str, Any]:
    """The request's file, streamed under the size cap, then checked and kept."""
    settings: Settings = request.app.state.settings
    identity = access_of(request).identity
    upload = await receive_upload(request, staging_dir(settings), settings.upload_max_bytes)
    try:
        return await run_in_threadpool(
            store_upload,
            settings,
            upload.path,
            upload.filename,
            upload.sha256,
            identity.username if identity is not None else None,
        )
    finally:
        upload.discard()


@router.post("/api/datasets", status_code=201)
async def upload_dataset(request: Request) -> Response:
    """Multipart field ``file``: answers the data set's id, meta, profile and preview."""
    meta = await _accept_upload(request)
    view = await run_in_threadpool(dataset_view, request.app.state.settings, meta["dataset_id"])
    return json_response({"ok": True, "dataset_id": meta["dataset_id"], **view}, 201)


@router.get("/api/datasets")
def datasets(request: Request) -> Response:
    found = list_datasets(request.app.state.settings, dataset_user(request))
    return json_response({"ok": True, "datasets": found})


@router.get("/api/datasets/{dataset_id}")
def dataset(request: Request, dataset_id: str, target: str | None = None) -> Response:
    check_dataset(request, dataset_id)
    view = dataset_view(request.app.state.settings, dataset_id, target or None)
    return json_response({"ok": True, "dataset_id": dataset_id, **view})


@router.get("/workbench", responses=PAGE_RESPONSES)
def workbench(request: Request, dataset: str | None = None, target: str | None = None) -> Response:
    if dataset:
        check_dataset(request, dataset)
    data, status = _workbench_data(
        request.app.state.settings, dataset, target or None, dataset_user(request)
    )
    return page(request, "workbench.html", data, status)


@router.post("/workbench/upload")
async def upload_page(request: Request) -> Response:
    """The page's upload form: on to the new data set, or the page again with the error."""
    try:
        meta = await _accept_upload(request)
    except FlowscopeError as exc:
        data, _ = await run_in_threadpool(
            _workbench_data, request.app.state.settings, None, None, dataset_user(request)
        )
        return page(request, "workbench.html", {**data, "error": exc.message}, exc.status)
    query = urlencode({"dataset": meta["dataset_id"]})
    return RedirectResponse(f"/workbench?{query}", status_code=303)


def _workbench_data(
    settings: Settings, dataset_id: str | None, target: str | None, user: str | None = None
) -> tuple[dict[str, Any], int]:
    """The page's dict and status: a target that cannot be trained on shows the data set
    without it, and the reason, with the error's status."""
    data: dict[str, Any] = {
        "datasets": list_datasets(settings, user),
        "upload_max_bytes": settings.upload_max_bytes,
        "view": None,
        "error": None,
        "target_error": None,
        "chosen_target": target,
    }
    if not dataset_id:
        return data, 200
    try:
        data["view"] = dataset_view(settings, dataset_id, target)
    except NotFoundError:
        raise
    except FlowscopeError as exc:
        if target is None:
            raise
        data["view"] = dataset_view(settings, dataset_id, "")
        data["target_error"] = exc.message
        return data, exc.status
    return data, 200
