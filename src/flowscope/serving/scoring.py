"""MLflow's scoring protocol, as ``mlflow models serve`` speaks it, so that MLflow's own
clients (``ScoringServerClient``, ``mlflow deployments``, a load balancer's health check)
take ``flowscope serve`` for it.

``/ping`` answers 200 whenever the server answers at all: the app is built around a
loaded model, so there is nothing to check, and a health check costs nothing.
``/version`` names the MLflow version, as MLflow's server does. ``/invocations`` takes a
JSON object with exactly one of ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs`` (and optionally ``params``), or a CSV body, and answers
``{"predictions": [...]}``, what ``mlflow.pyfunc.load_model(uri).predict(frame)``
gives. Bad input is refused in MLflow's error shape, ``{"error_code": "BAD_REQUEST",
"message": ...}``: a request that does not fit the signature is a 400 as with MLflow
(``/predict`` says 422), and the message names the problem without echoing the payload
(MLflow's quotes it).

Columns outside the signature are dropped, as MLflow drops them, so a client that sends
whole rows of the training table (target and ids included) gets the same answer from
either server; flowscope's own ``/predict`` refuses them instead. One difference is
deliberate: ``params`` must be a JSON object, and are not used: the pipelines flowscope
serves take none, and MLflow too ignores params that a model's signature does not
declare.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from flowscope.errors import FlowscopeError
from flowscope.serving.request_input import parse_json, read_csv
from flowscope.serving.service import error_headers, json_body, version_headers

if TYPE_CHECKING:
    from flowscope.serving.model import Predicted, ServedModel
    from flowscope.serving.schema import InputSchema

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CONTENT_TYPES = ("application/json", "text/csv")
PARAMS = "params"


def ping() -> Response:
    """What MLflow's ``/ping`` (and ``/health``) answers: 200 and a newline."""
    return Response("\n", media_type="application/json")


def version() -> Response:
    """What MLflow's ``/version`` answers: the MLflow version, as bare text."""
    from mlflow.version import VERSION

    return Response(VERSION, media_type="application/json")


def columns_of(body: bytes, media_type: str, schema: InputSchema) -> dict[str, list[Any]]:
    """The checked columns of an ``/invocations`` body of ``media_type`` (one of
    :data:`CONTENT_TYPES`); columns outside the signature are dropped, as MLflow does."""
    schema = schema.ignoring_extra_columns()
    if media_type == "text/csv":
        return schema.checked_frame(read_csv(body, schema))
    return inputs_of(parse_json(body), schema)


def inputs_of(payload: Any, schema: InputSchema) -> dict[str, list[Any]]:
    """A parsed JSON request as checked columns: exactly one of :data:`FORMATS`, and
    ``params`` that are an object if present. Other keys are left alone, as MLflow
    leaves them."""
    if not isinstance(payload, dict):
        raise FlowscopeError(f"send a JSON object with one of the keys {', '.join(FORMATS)}")
    formats = [key for key in FORMATS if key in payload]
    if len(formats) != 1:
        raise FlowscopeError(
            f"send a JSON object with exactly one of the keys {', '.join(FORMATS)}"
        )
    if not isinstance(payload.get(PARAMS) or {}, Mapping):
        raise FlowscopeError("params must be a JSON object of name: value")
    kind = formats[0]
    data = payload[kind]
    if kind == "dataframe_split":
        if not isinstance(data, Mapping):
            raise FlowscopeError("dataframe_split must be an object with columns and data")
        return schema.columns_from_split(data.get("columns", ()), data.get("data", ()))
    if isinstance(data, Mapping):
        if kind == "dataframe_records":
            raise FlowscopeError("dataframe_records must be a list of records")
        return schema.columns_from_mapping(data)
    if isinstance(data, list) and data and not isinstance(data[0], Mapping):
        raise FlowscopeError(f"{kind} must name its columns: a list of records")
    if not isinstance(data, list):
        raise FlowscopeError(f"{kind} must be a list of records")
    return schema.columns_from_records(data)


def answer(
    model: ServedModel, predicted: Predicted, request_id: str, latency: float, extra: Any
) -> Response:
    """``{"predictions": [...]}``: the model's ``predict`` output, one value per row."""
    return json_body({"predictions": predicted.labels}, headers=version_headers(model))


def error_code(status: int) -> str:
    """The MLflow error code of an HTTP status, as MLflow's REST errors name them."""
    if status == 503:
        return "TEMPORARILY_UNAVAILABLE"
    if status == 404:
        return "RESOURCE_DOES_NOT_EXIST"
    if status == 401:
        return "UNAUTHENTICATED"
    if status == 403:
        return "PERMISSION_DENIED"
    return "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST"


def error_body(status: int, message: str, request_id: str | None = None) -> Response:
    """MLflow's error shape, ``{"error_code", "message"}``; a request that does not fit
    the signature (flowscope's 422) is a 400, as MLflow answers it."""
    status = 400 if status == 422 else status
    data = {"error_code": error_code(status), "message": message}
    return json_body(data, status, error_headers(status, request_id))
