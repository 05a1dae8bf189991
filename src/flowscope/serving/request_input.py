"""Reading prediction requests: content type, size limit, JSON and CSV bodies, each
format's rows as checked columns. Every refusal is a FlowscopeError with its status."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    from starlette.requests import Request

    from flowscope.serving.schema import InputSchema

JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "multipart/form-data")
_REQUEST_ID = re.compile(r"^[\w\-.:]{1,64}$")
# What a request whose client went away before the end of its body is answered (if the
# answer reaches anyone): a client error, never the "internal error" of a crash.
BODY_CUT_SHORT = "the request body ended before its declared length"


def request_id_of(request: Request) -> str | None:
    """The caller's ``X-Request-ID`` when it is a sane token, else None (one is made)."""
    given = request.headers.get("x-request-id")
    return given if given and _REQUEST_ID.match(given) else None


def media_type(request: Request) -> tuple[str, dict[str, str]]:
    raw = request.headers.get("content-type", "")
    kind, *parameters = (part.strip() for part in raw.split(";"))
    options = {}
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        options[key.strip().lower()] = value.strip().strip('"')
    return kind.lower(), options


def check_content_type(request: Request, accepted: tuple[str, ...]) -> str:
    """The request's media type if ``accepted``; 415 otherwise (and for a charset other
    than UTF-8)."""
    kind, options = media_type(request)
    if kind not in accepted:
        shown = kind or "none"
        raise FlowscopeError(
            f"content type {shown[:60]!r} is not accepted here; send {' or '.join(accepted)}",
            status=415,
        )
    if options.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
        raise FlowscopeError("only UTF-8 bodies are accepted", status=415)
    return kind


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed ``limit`` bytes:
    from ``Content-Length`` before reading, or while reading a chunked body."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise FlowscopeError("invalid Content-Length header")
        if int(declared) > limit:
            raise FlowscopeError(f"the body is larger than the limit of {limit} bytes", status=413)
    from starlette.requests import ClientDisconnect

    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise FlowscopeError(
                    f"the body is larger than the limit of {limit} bytes", status=413
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise FlowscopeError(BODY_CUT_SHORT) from None
    body = b"".join(chunks)
    if not body.strip():
        raise FlowscopeError("the request body is empty")
    return body


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise FlowscopeError(
            f"the body is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (ValueError, RecursionError):  # not UTF-8, a number too long, nesting too deep
        raise FlowscopeError("the body is not valid JSON") from None


def records_of(payload: Any, schema: InputSchema) -> dict[str, list[Any]]:
    """``POST /predict``: one record (a JSON object) or a list of them."""
    if isinstance(payload, dict):
        return schema.columns_from_records([payload])
    if isinstance(payload, list):
        return schema.columns_from_records(payload)
    raise FlowscopeError("send one record as a JSON object, or a list of records")


def csv_upload(body: bytes, kind: str, options: Mapping[str, str]) -> tuple[bytes, str | None]:
    """The CSV bytes of a ``text/csv`` body or of a multipart upload's first file field,
    and the file's name when the upload gave one."""
    if kind == "text/csv":
        return body, None
    boundary = options.get("boundary")
    if not boundary:
        raise FlowscopeError("a multipart upload needs a boundary")
    header = f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(header + body)
    for part in message.iter_parts() if message.is_multipart() else []:
        filename = part.get_filename()
        if filename is not None or part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return (payload if isinstance(payload, bytes) else b""), filename
    raise FlowscopeError("the upload holds no file; send the CSV as the form field 'file'")


def read_csv(data: bytes, schema: InputSchema | None = None) -> Any:
    """A CSV as a DataFrame; text that does not parse is a 400. The ``schema``'s text
    columns are read as text, as MLflow reads them: a category coded ``"7"`` stays the
    text the model was trained on, not a number the check refuses."""
    import pandas as pd

    if not data.strip():
        raise FlowscopeError("the CSV file is empty")
    text = {c.name: object for c in schema.columns if c.numpy_dtype == "object"} if schema else {}
    try:
        return pd.read_csv(io.BytesIO(data), encoding="utf-8", dtype=text or None)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise FlowscopeError(f"the CSV cannot be read: {first}") from None


def wants_csv(request: Request) -> bool:
    """Whether ``Accept`` prefers ``text/csv`` to JSON."""
    accept = request.headers.get("accept", "").lower()
    if "text/csv" not in accept:
        return False
    return "application/json" not in accept or accept.index("text/csv") < accept.index(
        "application/json"
    )


def clean_filename(name: str | None) -> str:
    """An uploaded file's base name, safe as a parameter value."""
    if not name:
        return "upload.csv"
    base = re.split(r"[\\/]", name)[-1]
    return re.sub(r"[^\w.\- ]", "_", base)[:200] or "upload.csv"
