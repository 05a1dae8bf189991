"""Jobs: the JSON API a script drives (``POST /api/jobs``, ``GET /api/jobs/ID``), the
workbench's train form, and the ``/jobs`` and ``/jobs/ID`` pages that follow them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from flowscope.errors import FlowscopeError
from flowscope.jobs import TrainRequest, submit_training
from flowscope.jobs.view import job_view, jobs_view
from flowscope.os_user import os_user
from flowscope.serving import request_input as inputs
from flowscope.web.access import (
    access_of,
    authorize_registering,
    authorize_training,
    check_dataset,
    visible_job,
)
from flowscope.web.app_queue import job_queue
from flowscope.web.render import PAGE_RESPONSES, json_response, page
from flowscope.web.uploads import read_form

router = APIRouter()
MAX_WAIT = 60.0
# A training request is a few fields and parameters: far below this.
MAX_REQUEST_BYTES = 64 * 1024


def _user(request: Request) -> str:
    """Who asked: the authenticated user once there is one, else the server's OS user."""
    return str(request.scope.get("flowscope.user") or os_user() or "unknown")


@router.post("/api/jobs", status_code=201)
async def create_jobs(request: Request) -> Response:
    inputs.check_content_type(request, inputs.JSON_TYPES)
    body = inputs.parse_json(await inputs.read_body(request, MAX_REQUEST_BYTES))
    # off the event loop: it reads the data set and writes to the queue's storage
    ids = await run_in_threadpool(_submit, request, TrainRequest.from_json(body))
    return json_response({"ok": True, "job_ids": ids}, 201)


def _submit(request: Request, train: TrainRequest) -> list[str]:
    check_dataset(request, train.dataset_id)
    settings = request.app.state.settings
    return submit_training(
        settings,
        job_queue(request),
        train,
        user=_user(request),
        permit=lambda task, register: authorize_training(request, task, register),
    )


def _jobs(request: Request, batch: str) -> dict[str, Any]:
    visible = visible_job(request, access_of(request))
    return jobs_view(job_queue(request), batch=batch.strip(), visible=visible)


@router.get("/api/jobs")
def list_jobs(request: Request, batch: str = "") -> Response:
    return json_response({"ok": True, **_jobs(request, batch)})


@router.get("/api/jobs/{job_id}")
def get_job(request: Request, job_id: str, wait: float = 0.0) -> Response:
    """``wait`` (seconds, at most 60) answers once the job has ended, or then."""
    queue = job_queue(request)
    if wait > 0:
        queue.wait(job_id, min(wait, MAX_WAIT))
    return json_response({"ok": True, **job_view(request.app.state.settings, queue, job_id)})


@router.post("/api/jobs/{job_id}/cancel")
def cancel_job(request: Request, job_id: str) -> Response:
    _cancel(request, job_id)
    return json_response({"ok": True, "job_id": job_id, "state": "cancelled"})


def _cancel(request: Request, job_id: str) -> None:
    queue = job_queue(request)
    if not queue.cancel(job_id, _user(request)):
        state = queue.get(job_id).state
        raise FlowscopeError(
            f"job {job_id} is {state}: only a queued job can be cancelled", status=409
        )


@router.post("/workbench/train")
async def train_form(request: Request) -> Response:
    """The workbench's train form: one job per model type, then the job (or batch) page."""
    train = TrainRequest.from_form(await read_form(request, MAX_REQUEST_BYTES))
    location = await run_in_threadpool(_submit_and_locate, request, train)
    return RedirectResponse(location, status_code=303)


def _submit_and_locate(request: Request, train: TrainRequest) -> str:
    """Queue ``train``; the page of its job, or of its batch when it made several."""
    ids = _submit(request, train)
    if len(ids) == 1:
        return f"/jobs/{ids[0]}"
    return f"/jobs?batch={job_queue(request).get(ids[0]).batch}"


@router.get("/jobs", responses=PAGE_RESPONSES)
def jobs_page(request: Request, batch: str = "") -> Response:
    return page(request, "jobs.html", _jobs(request, batch))


@router.get("/jobs/{job_id}", responses=PAGE_RESPONSES)
def job_page(request: Request, job_id: str) -> Response:
    return page(
        request, "job.html", job_view(request.app.state.settings, job_queue(request), job_id)
    )


@router.post("/jobs/{job_id}/cancel")
def cancel_from_page(request: Request, job_id: str) -> Response:
    _cancel(request, job_id)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id}/register")
async def register_best(request: Request, job_id: str) -> Response:
    """Register the best run of the job's batch as a version of the name given."""
    from flowscope.jobs.view import best_of_batch
    from flowscope.registry.register import RegisteredVersion, register_run

    form = await read_form(request, MAX_REQUEST_BYTES)
    name = str(form.get("name") or "").strip()

    def register() -> RegisteredVersion:  # registry round-trips: off the event loop
        queue = job_queue(request)
        best = best_of_batch(queue, queue.get(job_id))
        if best is None:
            raise FlowscopeError(
                "no job of this batch succeeded: there is no run to register", status=409
            )
        authorize_registering(request, name)
        return register_run(request.app.state.settings, best["run_id"], name)

    version = await run_in_threadpool(register)
    return RedirectResponse(
        f"/models/{quote(version.name, safe='')}?registered={version.version}", status_code=303
    )
