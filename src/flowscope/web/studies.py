"""A study's page: its trials, best trial and Optuna's charts, read from the MLflow store."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flowscope.tuning.view import study_view
from flowscope.web.render import PAGE_RESPONSES, figure_json, page, wants_json
from flowscope.web.study_charts import study_figures

router = APIRouter()


@router.get("/studies/{run_id}", responses=PAGE_RESPONSES)
def study(request: Request, run_id: str, sort: str = "", order: str = "") -> Response:
    """``run_id`` is the study's parent run; ``sort`` and ``order`` order the trials."""
    data = study_view(
        request.app.state.settings,
        request.app.state.store,
        run_id,
        sort=sort.strip(),
        order=order.strip(),
    )
    data["report_url"] = _report_url(data["study"])
    if not wants_json(request):
        data["figures"] = {name: figure_json(f) for name, f in study_figures(data).items()}
    return page(request, "study.html", data)


def _report_url(study: dict[str, Any]) -> str | None:
    """The comparison report over this study's trial runs (one objective only: the report
    ranks by one metric)."""
    if len(study["directions"]) != 1 or not study["objective"]:
        return None
    query = {
        "kind": "trial",
        "where": f"tags.mlflow.parentRunId = '{study['run_id']}'",
        "metric": study["objective"],
        "direction": "max" if study["directions"][0] == "maximize" else "min",
    }
    return f"/experiments/{study['experiment_id']}/report?{urlencode(query)}"
