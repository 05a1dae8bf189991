"""Registered models, their versions, and versions side by side."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flowscope.registry.versions import compare_versions, model_detail, models_overview
from flowscope.web.render import page

router = APIRouter()


@router.get("/models")
def models(request: Request) -> Response:
    return page(request, "models.html", models_overview(request.app.state.settings))


@router.get("/models/{name}/compare")
def compare(request: Request, name: str, versions: str = "") -> Response:
    numbers = [part for part in versions.replace(" ", ",").split(",") if part]
    data = compare_versions(request.app.state.settings, name, numbers)
    return page(request, "model_compare.html", data)


@router.get("/models/{name}")
def model(request: Request, name: str) -> Response:
    return page(request, "model.html", model_detail(request.app.state.settings, name))
