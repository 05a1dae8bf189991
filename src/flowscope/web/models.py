"""Registered models, their versions, and versions side by side."""

from __future__ import annotations

from functools import partial
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from flowscope.auth.access import REGISTERED_MODEL
from flowscope.registry.history import decision_history
from flowscope.registry.promotion import apply_promotion, preview_promotion
from flowscope.registry.versions import compare_versions, model_detail, models_overview
from flowscope.serving import request_input as inputs
from flowscope.web.access import access_of
from flowscope.web.render import PAGE_RESPONSES, json_response, page, wants_json

_MAX_POLICY_BYTES = 64 * 1024

router = APIRouter()


@router.get("/models", responses=PAGE_RESPONSES)
def models(request: Request) -> Response:
    access = access_of(request)
    visible = None if access.unrestricted else partial(access.allows, REGISTERED_MODEL, need="read")
    return page(request, "models.html", models_overview(request.app.state.settings, visible))


@router.get("/models/{name}/compare", responses=PAGE_RESPONSES)
def compare(request: Request, name: str, versions: str = "") -> Response:
    numbers = [part for part in versions.replace(" ", ",").split(",") if part]
    data = compare_versions(request.app.state.settings, name, numbers)
    return page(request, "model_compare.html", data)


@router.get("/models/{name}/history", responses=PAGE_RESPONSES)
def history(request: Request, name: str) -> Response:
    return page(request, "model_history.html", decision_history(request.app.state.settings, name))


async def _policy_text(request: Request) -> str:
    """The policy in the body: raw YAML, or the ``policy`` field of a form."""
    body = await inputs.read_body(request, _MAX_POLICY_BYTES)
    text = body.decode("utf-8", errors="replace")
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        text = parse_qs(text).get("policy", [""])[0]
    return text


@router.post("/models/{name}/preview", responses=PAGE_RESPONSES)
async def preview(request: Request, name: str) -> Response:
    """A dry run of the policy in the body."""
    text = await _policy_text(request)
    # the dry run reads the store and bootstraps: keep it off the event loop
    data = await run_in_threadpool(preview_promotion, request.app.state.settings, name, text)
    return page(request, "model_preview.html", {**data, "policy_text": text})


@router.post("/models/{name}/promote")
async def apply_policy(request: Request, name: str) -> Response:
    """Apply the policy in the body, as ``flowscope promote`` does: the aliases move, the
    decision is recorded; the model's history page (or its JSON) shows the outcome."""
    text = await _policy_text(request)
    result = await run_in_threadpool(apply_promotion, request.app.state.settings, name, text)
    if wants_json(request):
        return json_response({"ok": True, **result})
    return RedirectResponse(f"/models/{quote(name, safe='')}/history", status_code=303)


@router.get("/models/{name}", responses=PAGE_RESPONSES)
def model(request: Request, name: str) -> Response:
    return page(request, "model.html", model_detail(request.app.state.settings, name))
