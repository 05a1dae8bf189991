"""The prediction service behind the routes: admission, micro-batched prediction, answers,
metrics and monitoring, with one path every prediction endpoint shares."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from flowscope.errors import FlowscopeError
from flowscope.serving.batching import MicroBatcher
from flowscope.serving.explaining import ExplainRequest, explain_rows
from flowscope.serving.metrics import ServiceMetrics
from flowscope.serving.packing import Observation
from flowscope.serving.reload import AliasWatcher, ModelHolder
from flowscope.serving.request_input import request_id_of

if TYPE_CHECKING:
    from starlette.requests import Request

    from flowscope.config import Settings
    from flowscope.serving.model import ModelRef, Predicted, ServedModel
    from flowscope.serving.monitor import InferenceMonitor

logger = logging.getLogger(__name__)

# Parsing a body this large would hold up the event loop; it is parsed in a thread.
_PARSE_IN_THREAD = 256 * 1024

Parse = Callable[["Request", "ServedModel"], Awaitable[tuple[dict[str, list[Any]], Any]]]
Answer = Callable[["ServedModel", "Predicted", str, float, Any], Response]
Refuse = Callable[[int, str, str | None], Response]  # status, message, request id


def json_body(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Compact JSON, NumPy scalars as plain numbers."""
    text = json.dumps(data, default=_plain, allow_nan=False, separators=(",", ":"))
    return Response(text, status_code=status, media_type="application/json", headers=headers)


def error_body(status: int, message: str, request_id: str | None = None) -> Response:
    """The one error shape: ``{"ok": false, "error", "status"}`` (and the request id)."""
    data: dict[str, Any] = {"ok": False, "error": message, "status": status}
    if request_id:
        data["request_id"] = request_id
    return json_body(data, status, error_headers(status, request_id))


def error_headers(status: int, request_id: str | None) -> dict[str, str]:
    """The request id, and ``Retry-After`` when the service is busy (503)."""
    headers = {"X-Request-ID": request_id} if request_id else {}
    if status == 503:
        headers["Retry-After"] = "1"
    return headers


def version_headers(model: ServedModel) -> dict[str, str]:
    """Every answer names the model version that made it."""
    return {"X-Model-Name": model.name, "X-Model-Version": model.version}


def prediction_rows(model: ServedModel, predicted: Predicted) -> list[dict[str, Any]]:
    """Each row's answer: ``prediction``, ``class_name`` (the name training gave the class,
    else the label as text), ``confidence`` and ``probabilities`` (label as text →
    probability; None for a regression model)."""
    if predicted.probabilities is None or predicted.confidence is None:
        return [
            {"prediction": value, "class_name": None, "confidence": None, "probabilities": None}
            for value in predicted.labels
        ]
    names = model.class_names
    return [
        {
            "prediction": label,
            "class_name": model.name_of(label),
            "confidence": confidence,
            "probabilities": dict(zip(names, probabilities, strict=True)),
        }
        for label, confidence, probabilities in zip(
            predicted.labels,
            predicted.confidence.tolist(),
            predicted.probabilities.tolist(),
            strict=True,
        )
    ]


def prediction_answer(
    model: ServedModel, rows: list[dict[str, Any]], request_id: str, latency: float
) -> dict[str, Any]:
    """What ``POST /predict`` answers: the model version, the request id, the latency and
    each row's answer (:func:`prediction_rows`)."""
    return {
        "ok": True,
        "model": model.name,
        "version": model.version,
        "request_id": request_id,
        "latency_ms": round(latency * 1000, 3),
        "predictions": rows,
    }


def prediction_columns(model: ServedModel, predicted: Predicted) -> dict[str, Any]:
    """The columns a predictions table adds to its input rows: ``prediction``, and for a
    classifier ``confidence`` and ``proba_<class>`` for each class."""
    columns: dict[str, Any] = {"prediction": predicted.labels}
    if predicted.probabilities is not None:
        columns["confidence"] = predicted.confidence
        for index, name in enumerate(model.class_names):
            columns[f"proba_{name}"] = predicted.probabilities[:, index]
    return columns


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


class PredictionService:
    """Holds the model, the batcher, the metrics and the monitor of one serving process."""

    def __init__(self, settings: Settings, ref: ModelRef, model: ServedModel, *, monitor: bool):
        self.settings = settings
        self.ref = ref
        self.holder = ModelHolder(model)
        self.metrics = ServiceMetrics()
        self.monitoring = monitor
        self.monitor: InferenceMonitor | None = None
        self.batcher: MicroBatcher | None = None
        self.watcher: AliasWatcher | None = None
        self.in_flight = 0
        # Called on the event loop as each prediction request takes its slot, before its
        # body is read: a test's hook to act while a request holds a slot.
        self.on_admit: Callable[[], None] | None = None

    async def start(self) -> None:
        from flowscope.serving.monitor import InferenceMonitor

        self.batcher = MicroBatcher(
            max_rows=self.settings.serve_max_batch_rows,
            max_wait=self.settings.serve_max_batch_wait_ms / 1000,
            metrics=self.metrics,
        )
        self.batcher.start()
        if self.monitoring:
            self.monitor = InferenceMonitor(self.settings)
        self.watcher = AliasWatcher(self.settings, self.ref, self.holder, on_swap=self._swapped)
        self.watcher.start()

    async def stop(self) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
        if self.batcher is not None:
            await self.batcher.stop()
        if self.monitor is not None:
            monitor = self.monitor
            self.monitor = None
            await asyncio.to_thread(monitor.close)

    def _swapped(self, old: ServedModel, new: ServedModel) -> None:
        self.metrics.reloads += 1

    async def handle(
        self,
        request: Request,
        endpoint: str,
        parse: Parse,
        answer: Answer,
        *,
        batch: bool = False,
        refuse: Refuse = error_body,
    ) -> Any:
        """Admit, parse, predict, answer and record one request; every failure becomes an
        error response (``refuse`` shapes it) with its status, and the service goes on.

        Requests are micro-batched; a ``batch`` upload (``extra`` is then its file name)
        is predicted on its own in a thread and gets an inference run of its own."""
        started = time.perf_counter()
        arrived = time.time()
        request_id = request_id_of(request) or uuid.uuid4().hex
        if self.in_flight >= self.settings.serve_max_concurrency or self.batcher is None:
            self.metrics.rejected_busy += 1
            self.metrics.request(endpoint, 503, 0.0)
            return refuse(503, "the service is at its concurrency limit; retry", request_id)
        self.in_flight += 1
        self.batcher.arriving += 1
        queued = False
        model = self.holder.current
        status = 200
        try:
            if self.on_admit is not None:
                self.on_admit()
            columns, extra = await parse(request, model)
            rows = len(next(iter(columns.values()))) if columns else 0
            self.batcher.arriving -= 1
            queued = True
            if batch:
                predicted = await asyncio.to_thread(_predict_table, model, columns)
            else:
                predicted = await self.batcher.predict(model, columns, rows)
            explained = None
            if isinstance(extra, ExplainRequest):
                explained = await asyncio.to_thread(explain_rows, model, columns, predicted)
                extra = explained
            latency = time.perf_counter() - started
            response = answer(model, predicted, request_id, latency, extra)
            observation = Observation(
                request_id,
                arrived,
                latency,
                predicted.batch or predicted,
                predicted.offset,
                len(predicted.labels),
                explained,
            )
            self.metrics.predicted(model.version, predicted.labels)
            self.record(model, observation, batch=extra[0] if batch else None)
        except FlowscopeError as exc:
            response = refuse(exc.status, exc.message, request_id)
            status = response.status_code
            if self.monitor is not None:
                self.monitor.observe_error(model)
        except Exception:
            status = 500
            logger.exception("flowscope serve: prediction failed (request %s)", request_id)
            response = refuse(500, "prediction failed; the server log has the details", request_id)
            if self.monitor is not None:
                self.monitor.observe_error(model)
        finally:
            if not queued:
                self.batcher.arriving -= 1
            self.in_flight -= 1
        self.metrics.request(endpoint, status, time.perf_counter() - started)
        response.headers["X-Request-ID"] = request_id
        return response

    def record(
        self, model: ServedModel, observation: Observation, batch: str | None = None
    ) -> None:
        if self.monitor is None:
            return
        if batch is not None:
            self.monitor.observe_batch(model, observation, batch)
        else:
            self.monitor.observe(model, observation)


def _predict_table(model: ServedModel, columns: dict[str, list[Any]]) -> Predicted:
    return model.predict_columns(columns)


async def parse_maybe_in_thread(body: bytes, function: Callable[[bytes], Any]) -> Any:
    """Run ``function(body)`` inline for small bodies and in a thread for large ones."""
    if len(body) > _PARSE_IN_THREAD:
        return await asyncio.to_thread(function, body)
    return function(body)
