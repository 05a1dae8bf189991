"""The bulk ingest endpoint: metric points written with the SQL fast path's rules
(MLflow's validation, NaN and infinity, the latest value, duplicates dropped, deleted runs
refused), so that a flowscope SDK behind a tracking server delivers as fast as it does to
the database itself. The body is MLflow's own ``log-batch`` shape, metrics only::

    POST /flowscope/api/ingest/runs/RUN_ID/metrics
    {"metrics": [{"key": "loss", "value": 0.5, "timestamp": 1700000000000, "step": 3}, ...]}

A value may be a number or MLflow's JSON spellings ``"NaN"``, ``"Infinity"``,
``"-Infinity"``. The whole body is checked before anything is written; a bad point is a 400
naming it, and nothing of the request is stored.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.serving import request_input as inputs

INGEST_VERSION = 1
MAX_POINTS = 100_000  # one request; the SDK sends batches of a thousand or so
# MAX_POINTS points of a long key and every field spelled out fit well within this.
MAX_BODY_BYTES = 32 * 1024 * 1024
# MLflow keeps timestamps and steps as 64-bit integers.
_INT64 = range(-(2**63), 2**63)
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

logger = logging.getLogger(__name__)
router = APIRouter()


@router.get("/api/ingest")
def ingest_info() -> Response:
    """What the SDK probes to know it may use this endpoint."""
    return JSONResponse({"ok": True, "ingest": INGEST_VERSION, "max_points": MAX_POINTS})


@router.post("/api/ingest/runs/{run_id}/metrics")
async def ingest_metrics(request: Request, run_id: str) -> Response:
    inputs.check_content_type(request, inputs.JSON_TYPES)
    body = await inputs.read_body(request, MAX_BODY_BYTES)
    metrics = parse_metrics(await run_in_threadpool(inputs.parse_json, body))
    try:
        await run_in_threadpool(write_metrics, _access(request), run_id, metrics)
    except FlowscopeError:
        raise
    except Exception as exc:  # the database away: the SDK keeps the points and retries
        logger.warning("ingest into run %s failed: %s", run_id, exc, exc_info=True)
        return JSONResponse(
            {
                "ok": False,
                "error": f"the store is unavailable: {type(exc).__name__}",
                "status": 503,
            },
            status_code=503,
            headers={"Retry-After": "1"},
        )
    return JSONResponse({"ok": True, "run_id": run_id, "points": len(metrics)})


def parse_metrics(body: Any) -> list[Any]:
    """MLflow ``Metric`` objects from the body; a 400 naming the first bad field."""
    from mlflow.entities import Metric

    if not isinstance(body, dict) or not isinstance(body.get("metrics"), list):
        raise FlowscopeError(
            'the body must be {"metrics": [{"key", "value", "timestamp", "step"}]}'
        )
    points = body["metrics"]
    if len(points) > MAX_POINTS:
        raise FlowscopeError(f"at most {MAX_POINTS:,} points a request, not {len(points):,}")
    parsed = []
    for index, point in enumerate(points):
        where = f"metrics[{index}]"
        if not isinstance(point, dict):
            raise FlowscopeError(f"{where} must be an object")
        key = point.get("key")
        if not isinstance(key, str) or not key:
            raise FlowscopeError(f"{where}.key must be a non-empty string")
        parsed.append(
            Metric(
                key,
                _value(point.get("value"), f"{where}.value"),
                _integer(point.get("timestamp"), f"{where}.timestamp", None),
                _integer(point.get("step", 0), f"{where}.step", 0),
            )
        )
    return parsed


def _value(value: Any, where: str) -> float:
    if isinstance(value, str) and value in _SPECIAL:
        return _SPECIAL[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FlowscopeError(f'{where} must be a number (or "NaN", "Infinity", "-Infinity")')
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        raise FlowscopeError(f"{where} is too large for a metric value") from None


def _integer(value: Any, where: str, default: int | None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise FlowscopeError(f"{where} must be an integer")
    if value not in _INT64:
        raise FlowscopeError(f"{where} must fit in 64 bits (MLflow's integers)")
    return value


def write_metrics(access: Any, run_id: str, metrics: list[Any]) -> None:
    """Write through the fast path (MLflow's ``log_batch`` on a store it does not know)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    from flowscope.tracking.store import is_permanent

    try:
        access.log_batch(run_id, metrics, [], [])
    except MlflowException as exc:
        if not is_permanent(exc):
            raise  # the database away: a 503 the SDK retries
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise NotFoundError(f"no run {run_id!r}") from None
        raise FlowscopeError(exc.message) from None


def _access(request: Request) -> Any:
    from flowscope.tracking.store import StoreAccess

    state = request.app.state
    access = getattr(state, "ingest_access", None)
    if access is None:
        access = state.ingest_access = StoreAccess(state.settings)
    return access
