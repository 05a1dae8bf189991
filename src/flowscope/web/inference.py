"""Inference monitoring of a registered model: volume, confidence, classes, latency, drift."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flowscope.serving.history import inference_history
from flowscope.web.inference_charts import inference_figures
from flowscope.web.render import PAGE_RESPONSES, figure_json, page, wants_json

router = APIRouter()


@router.get("/models/{name}/inference", responses=PAGE_RESPONSES)
def inference(request: Request, name: str, limit: int = 200) -> Response:
    data = inference_history(request.app.state.settings, name, limit=max(1, min(limit, 1000)))
    if not wants_json(request):
        data["figures"] = {key: figure_json(fig) for key, fig in inference_figures(data).items()}
    return page(request, "inference.html", data)
