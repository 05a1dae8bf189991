"""The prediction service's FastAPI app: ``/predict``, ``/predict/batch``, ``/health``,
``/model`` and ``/metrics``, and MLflow's scoring protocol (:mod:`~.scoring`):
``/invocations``, ``/ping`` and ``/version``.

Routes only read the request and shape the answer; admission, micro-batching, reloading
and monitoring live in :class:`~flowscope.serving.service.PredictionService`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response

from flowscope._output import frame_to_csv
from flowscope.config import Settings, load_settings
from flowscope.http_security import HostPolicy, secure_app, split_list
from flowscope.serving import request_input as inputs
from flowscope.serving import scoring
from flowscope.serving.explaining import ExplainRequest, RowExplanations, wants_explanation
from flowscope.serving.model import ModelRef, Predicted, ServedModel, load_served_model
from flowscope.serving.service import (
    PredictionService,
    error_body,
    json_body,
    parse_maybe_in_thread,
    prediction_answer,
    prediction_columns,
    prediction_rows,
    version_headers,
)

if TYPE_CHECKING:
    from flowscope.auth import AuthServices

logger = logging.getLogger(__name__)


def create_serving_app(
    settings: Settings | None = None,
    model_ref: str | ModelRef = "",
    *,
    model: ServedModel | None = None,
    monitor: bool | None = None,
    bind_host: str | None = None,
) -> FastAPI:
    """The prediction service for ``model_ref`` (``MODEL@ALIAS`` or ``MODEL/VERSION``).

    The model is loaded here, so a wrong name or alias fails before anything listens;
    ``monitor`` (default: the ``monitor`` setting) turns inference runs on or off. It
    answers the ``Host`` names of ``allowed_hosts`` besides loopback and ``bind_host`` (the
    address it listens on), and sends security headers (:mod:`flowscope.http_security`).
    With the ``auth`` setting, every route but ``/health`` needs READ on the model
    (:mod:`~flowscope.serving.guard`); its auth store is opened first, so one without
    MLflow's auth tables fails before the model is loaded.

    >>> app = create_serving_app(settings, "churn@champion")     # doctest: +SKIP
    >>> uvicorn.run(app, port=8080)
    """
    settings = settings or load_settings()
    ref = model_ref if isinstance(model_ref, ModelRef) else ModelRef.parse(model_ref)
    auth = _open_auth(settings)
    loaded = model or load_served_model(settings, ref)
    service = PredictionService(
        settings, ref, loaded, monitor=settings.monitor if monitor is None else monitor
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    # No interactive docs page: FastAPI's loads Swagger UI from a CDN with an inline
    # script, which the Content-Security-Policy refuses; the schema is at /openapi.json.
    app = FastAPI(title=f"flowscope serve {ref}", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service
    if auth is not None:
        from flowscope.serving.guard import ServiceGuard

        app.add_middleware(
            ServiceGuard,
            services=auth,
            model_name=ref.name,
            cache_seconds=settings.token_cache_seconds,
        )
    secure_app(
        app,
        HostPolicy.for_app(settings.allowed_hosts, bind_host),
        split_list(settings.cors_allowed_origins),
        # probes reach these by address, as MLflow's scoring server is probed
        exempt_from_host_check=("/health", "/ping", "/version"),
    )
    limit = settings.serve_max_body_bytes

    # Each body is parsed and checked in one step, in a thread when it is large.
    async def records(request: Request, model: ServedModel) -> tuple[dict, Any]:
        inputs.check_content_type(request, inputs.JSON_TYPES)
        body = await inputs.read_body(request, limit)
        columns = await parse_maybe_in_thread(
            body, lambda data: inputs.records_of(inputs.parse_json(data), model.schema)
        )
        if wants_explanation(request.query_params):
            return columns, ExplainRequest(columns)
        return columns, None

    async def mlflow_inputs(request: Request, model: ServedModel) -> tuple[dict, Any]:
        kind = inputs.check_content_type(request, scoring.CONTENT_TYPES)
        body = await inputs.read_body(request, limit)
        columns = await parse_maybe_in_thread(
            body, lambda data: scoring.columns_of(data, kind, model.schema)
        )
        return columns, None

    async def upload(request: Request, model: ServedModel) -> tuple[dict, Any]:
        kind = inputs.check_content_type(request, inputs.CSV_TYPES)
        _, options = inputs.media_type(request)
        body = await inputs.read_body(request, limit)
        data, filename = inputs.csv_upload(body, kind, options)
        frame = await parse_maybe_in_thread(data, lambda raw: inputs.read_csv(raw, model.schema))
        columns = await parse_maybe_in_thread(data, lambda _: model.schema.checked_frame(frame))
        name = inputs.clean_filename(filename or request.query_params.get("filename"))
        return columns, (name, inputs.wants_csv(request), frame)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        """One record (a JSON object) or a list of records; each answer has the prediction,
        class name, confidence and class probabilities."""
        return await service.handle(request, "predict", records, _answer)

    @app.post("/predict/batch")
    async def predict_batch(request: Request) -> Response:
        """A CSV file (``text/csv`` body or multipart field ``file``), answered as CSV when
        ``Accept: text/csv``, else as JSON; logged as one batch inference run."""
        return await service.handle(request, "predict_batch", upload, _batch_answer, batch=True)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        """MLflow's scoring protocol: ``dataframe_split``, ``dataframe_records``,
        ``instances`` or ``inputs`` (or CSV), answered as ``{"predictions": [...]}``;
        errors in MLflow's shape."""
        return await service.handle(
            request, "invocations", mlflow_inputs, scoring.answer, refuse=scoring.error_body
        )

    # Answered on the event loop, with no thread hop: a health check costs next to nothing.
    @app.get("/ping")
    async def ping() -> Response:
        """200 while the server runs, as MLflow's health check: the model is loaded first."""
        return scoring.ping()

    @app.get("/version")
    async def version() -> Response:
        """The MLflow version, as ``mlflow models serve`` answers it."""
        return scoring.version()

    @app.get("/health")
    def health() -> Response:
        model = service.holder.current
        return json_body({"ok": True, "model": model.name, "version": model.version})

    @app.get("/model")
    def model_info() -> Response:
        return json_body({"ok": True, "ref": str(ref), **service.holder.current.describe()})

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        current = service.holder.current
        text = service.metrics.render(
            model=current.name,
            version=current.version,
            in_flight=service.in_flight,
            monitor=service.monitor.stats() if service.monitor is not None else {},
        )
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = f"no endpoint at {request.url.path[:100]}"
        return error_body(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return error_body(400, "invalid request")

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("flowscope serve: unexpected error on %s", request.url.path)
        return error_body(500, "internal error; the server log has the details")

    return app


def _open_auth(settings: Settings) -> AuthServices | None:
    if not settings.auth:
        return None
    # imported only with auth on: the guard brings in the server's auth package
    from flowscope.serving.guard import open_service_auth

    return open_service_auth(settings)


def _answer(
    model: ServedModel, predicted: Predicted, request_id: str, latency: float, extra: Any
) -> Response:
    rows = prediction_rows(model, predicted)
    if isinstance(extra, RowExplanations):  # ?explain=true
        for row, explanation in zip(rows, extra.rows(), strict=True):
            row["explanation"] = explanation
    return json_body(
        prediction_answer(model, rows, request_id, latency), headers=version_headers(model)
    )


def _batch_answer(
    model: ServedModel, predicted: Predicted, request_id: str, latency: float, extra: Any
) -> Response:
    filename, as_csv, table = extra
    if not as_csv:
        return _answer(model, predicted, request_id, latency, None)
    table = table.assign(**prediction_columns(model, predicted))
    headers = {
        **version_headers(model),
        "Content-Disposition": f'attachment; filename="predictions-{filename}"',
    }
    return Response(frame_to_csv(table), media_type="text/csv", headers=headers)
