"""A study's page: its trials, best trial and Optuna's charts, read from the MLflow store."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flowscope.tuning.view import study_view
from flowscope.web.render import figure_json, page, wants_json
from flowscope.web.study_charts import study_figures

router = APIRouter()


@router.get("/studies/{run_id}")
def study(request: Request, run_id: str, sort: str = "", order: str = "") -> Response:
    """``run_id`` is the study's parent run; ``sort`` and ``order`` order the trials."""
    data = study_view(
        request.app.state.settings,
        request.app.state.store,
        run_id,
        sort=sort.strip(),
        order=order.strip(),
    )
    if not wants_json(request):
        data["figures"] = {name: figure_json(f) for name, f in study_figures(data).items()}
    return page(request, "study.html", data)
