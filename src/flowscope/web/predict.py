"""Predictions from the dashboard: the ``/models/NAME/predict`` page (one record from a form
generated from the signature, or a file of rows) and the JSON API a script drives, in
``flowscope serve``'s formats. Every prediction is logged as an inference run."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from flowscope._output import frame_to_csv
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.registry.versions import version_choices
from flowscope.serving import request_input as inputs
from flowscope.serving.cache import ModelCache, version_ref
from flowscope.serving.form import form_fields, record_from_form
from flowscope.serving.model import ServedModel
from flowscope.serving.predict import (
    PredictionResult,
    predict_frame,
    predict_payload,
    read_prediction_file,
    save_predictions,
    saved_predictions,
)
from flowscope.serving.service import json_body, prediction_answer, version_headers
from flowscope.web.render import PAGE_RESPONSES, page
from flowscope.web.uploads import read_form, receive_upload, safe_filename

router = APIRouter()
SHOWN_ROWS = 20  # rows of a predicted file shown on the page; the download has them all
MAX_FORM_BYTES = 256 * 1024


def _models(request: Request) -> ModelCache:
    return request.app.state.models


def _model(request: Request, name: str, ref: str) -> ServedModel:
    return _models(request).get(version_ref(name, ref))


def _answer(model: ServedModel, result: PredictionResult) -> dict[str, Any]:
    answer = prediction_answer(model, result.answers, result.request_id, result.latency)
    return {**answer, "run_id": result.run_id}


# -- the JSON API ---------------------------------------------------------------------


@router.post("/api/models/{name}/{ref}/predict")
async def api_predict(request: Request, name: str, ref: str) -> Response:
    """``flowscope serve``'s ``POST /predict`` for ``name`` at ``ref`` (a version number or
    ``@alias``): one record or a list of records, logged as a single inference run."""
    settings = request.app.state.settings
    model = await run_in_threadpool(_model, request, name, ref)
    inputs.check_content_type(request, inputs.JSON_TYPES)
    body = await inputs.read_body(request, settings.serve_max_body_bytes)
    payload = await run_in_threadpool(inputs.parse_json, body)
    result = await run_in_threadpool(predict_payload, settings, model, payload)
    return json_body(_answer(model, result), headers=_headers(model, result))


@router.post("/api/models/{name}/{ref}/predict/batch")
async def api_predict_batch(request: Request, name: str, ref: str, format: str = "") -> Response:
    """``flowscope serve``'s ``POST /predict/batch``: a CSV body, or a CSV or XLSX file in
    the multipart field ``file``; answered as JSON, or as CSV (every input row with its
    prediction columns, formula-safe) for ``?format=csv`` or ``Accept: text/csv``."""
    settings = request.app.state.settings
    model = await run_in_threadpool(_model, request, name, ref)
    frame, filename = await _uploaded_rows(request, model)
    result = await run_in_threadpool(predict_frame, settings, model, frame, filename)
    headers = _headers(model, result)
    if format.lower() == "csv" or inputs.wants_csv(request):
        text = await run_in_threadpool(frame_to_csv, result.table)
        disposition = f'attachment; filename="predictions-{filename}"'
        return Response(
            text, media_type="text/csv", headers={**headers, "Content-Disposition": disposition}
        )
    return json_body(_answer(model, result), headers=headers)


def _headers(model: ServedModel, result: PredictionResult) -> dict[str, str]:
    return {**version_headers(model), "X-Request-ID": result.request_id}


async def _uploaded_rows(request: Request, model: ServedModel) -> tuple[Any, str]:
    """The rows of a ``text/csv`` body or of a multipart upload (streamed to disk under
    ``upload_max_bytes`` first), and the file's name."""
    settings = request.app.state.settings
    kind = inputs.check_content_type(request, inputs.CSV_TYPES)
    if kind == "text/csv":
        body = await inputs.read_body(request, settings.upload_max_bytes)
        frame = await run_in_threadpool(inputs.read_csv, body, model.schema)
        return frame, inputs.clean_filename(request.query_params.get("filename"))
    upload = await receive_upload(
        request, settings.workbench_dir / "uploads", settings.upload_max_bytes
    )
    try:
        frame = await run_in_threadpool(
            read_prediction_file, upload.path, model.schema, settings.upload_max_bytes
        )
    finally:
        upload.discard()
    return frame, upload.filename


# -- the page -------------------------------------------------------------------------


def _page_data(request: Request, name: str, ref: str) -> tuple[dict[str, Any], ServedModel]:
    """The page's dict: the versions and aliases to pick from, the chosen one, and the
    form's fields; the loaded model beside it."""
    choices = version_choices(request.app.state.settings, name)
    ref = ref.strip() or choices["default"]
    if not ref:
        raise NotFoundError(f"model {name!r} has no versions to predict with")
    model = _model(request, name, ref)
    data = {
        "model": choices,
        "ref": ref,
        "version": model.version,
        "problem": "classification" if model.classes is not None else "regression",
        "class_names": [model.name_of(label) for label in model.classes or []],
        "fields": form_fields(model),
        "values": {},
        "single": None,
        "batch": None,
        "error": None,
    }
    return data, model


@router.get("/models/{name}/predict", responses=PAGE_RESPONSES)
def predict_page(request: Request, name: str, ref: str = "") -> Response:
    data, _ = _page_data(request, name, ref)
    return page(request, "predict.html", data)


@router.post("/models/{name}/predict", responses=PAGE_RESPONSES)
async def predict_one(request: Request, name: str, ref: str = "") -> Response:
    """The form's record predicted; a wrong value is shown beside the form with its 4xx."""
    data, model = await run_in_threadpool(_page_data, request, name, ref)
    form = await read_form(request, MAX_FORM_BYTES)
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    data["values"] = values
    status = 200
    try:
        record = record_from_form(model.schema, values)
        settings = request.app.state.settings
        result = await run_in_threadpool(predict_payload, settings, model, record)
        data["single"] = _answer(model, result)
    except FlowscopeError as exc:
        data["error"], status = exc.message, exc.status
    return page(request, "predict.html", data, status)


@router.post("/models/{name}/predict/batch", responses=PAGE_RESPONSES)
async def predict_batch(request: Request, name: str, ref: str = "") -> Response:
    """An uploaded CSV or XLSX file predicted: the first rows shown, all of them saved for
    the download; a bad file is shown beside the form with its 4xx."""
    settings = request.app.state.settings
    data, model = await run_in_threadpool(_page_data, request, name, ref)
    status = 200
    try:
        frame, filename = await _uploaded_rows(request, model)
        result = await run_in_threadpool(predict_frame, settings, model, frame, filename)
        folder = settings.workbench_dir / "predictions"
        saved = await run_in_threadpool(save_predictions, folder, result.table, filename)
        shown = result.table.head(SHOWN_ROWS)
        data["batch"] = {
            "filename": filename,
            "rows": result.rows,
            "columns": [str(column) for column in shown.columns],
            "head": shown.astype(object).where(shown.notna(), None).values.tolist(),
            "class_counts": result.class_counts,
            "run_id": result.run_id,
            "download": f"/models/{quote(name, safe='')}/predict/download/{saved}",
        }
    except FlowscopeError as exc:
        data["error"], status = exc.message, exc.status
    return page(request, "predict.html", data, status)


@router.get("/models/{name}/predict/download/{download_id}")
def download(request: Request, name: str, download_id: str) -> FileResponse:
    """A predicted file's rows with their predictions, as formula-safe CSV."""
    path = saved_predictions(request.app.state.settings.workbench_dir / "predictions", download_id)
    return FileResponse(path, media_type="text/csv", filename=safe_filename(path.name))
